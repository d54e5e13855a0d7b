//! Light files into the `light_events`, `light_waveforms` and `light_matches` streams, matched
//! by time to the run's charge triggers, and the light channel map they are read with.

use std::path::Path;

use arrow::array::RecordBatch;
use larmon_ingest::light::LightFile;
use larmon_ingest::light::channel_map::{ChannelMap, LightChannel};
use larmon_ingest::light::streams::{LightBatchBuilder, Matcher, event_time_ticks};

use crate::error::{IoContext, PipelineError, Result};
use crate::input::charge::ChargeTrigger;
use crate::streams::Stream;

/// Light events and charge triggers closer than this (10 MHz ticks) are one event (ndlar_flow
/// uses 30).
pub const LIGHT_MATCH_WINDOW_TICKS: i64 = 30;
/// Leading samples of a light waveform used for its baseline (2x2: 80 of 96 pre-trigger).
pub const LIGHT_BASELINE_SAMPLES: usize = 80;
/// Light events per batch handed to the plugins.
pub const LIGHT_EVENTS_PER_BATCH: usize = 64;

/// What a light file adds to the run's host statistics.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug, PartialEq)]
pub struct LightStats {
    /// Light events read.
    pub light_events: u64,
    /// Waveforms read.
    pub light_waveforms: u64,
    /// Boards missing from events, summed over the events.
    pub light_missing_boards: u64,
    /// Light events paired with a charge trigger.
    pub light_matched_events: u64,
}

impl LightStats {
    /// Adds another part of the same file.
    pub fn add(&mut self, other: &LightStats) {
        self.light_events += other.light_events;
        self.light_waveforms += other.light_waveforms;
        self.light_missing_boards += other.light_missing_boards;
        self.light_matched_events += other.light_matched_events;
    }
}

/// The light channel map of a JSON file (a list of {adc, channel, tpc, det, det_type}), or
/// the 2x2 default.
pub fn load_channel_map(path: Option<&Path>) -> Result<ChannelMap> {
    let Some(path) = path else { return Ok(ChannelMap::nominal_2x2()) };
    let text = std::fs::read_to_string(path).at(path)?;
    let records: Vec<LightChannel> = serde_json::from_str(&text)
        .map_err(|e| PipelineError::Config { path: path.into(), reason: e.to_string() })?;
    ChannelMap::from_records(&records)
        .map_err(|reason| PipelineError::Config { path: path.into(), reason })
}

/// Reads a light file from `position` into the `light_events`, `light_waveforms` and
/// `light_matches` streams, matching against the run's charge triggers; the last
/// `light_matches` batch holds the charge triggers inside this part's time span that no light
/// event matched. Returns the statistics and the position to continue from.
pub fn process_light_file(
    file: &Path,
    position: u64,
    map: &ChannelMap,
    charge_triggers: Vec<ChargeTrigger>,
    emit: &mut dyn FnMut(Stream, RecordBatch),
) -> Result<(LightStats, u64)> {
    let mut light = LightFile::open(file)?;
    light.seek(position)?;
    let mut matcher = Matcher::new(charge_triggers, LIGHT_MATCH_WINDOW_TICKS);
    let mut builder = LightBatchBuilder::new(map.clone(), LIGHT_BASELINE_SAMPLES);
    let mut stats = LightStats::default();
    let mut times: Vec<(u64, i64)> = Vec::new();
    let mut flush = |builder: &mut LightBatchBuilder,
                     times: &mut Vec<(u64, i64)>,
                     stats: &mut LightStats,
                     emit: &mut dyn FnMut(Stream, RecordBatch)| {
        if builder.pending_events == 0 {
            return;
        }
        let (events, waveforms) = builder.finish();
        let matches = matcher.match_events(times);
        stats.light_matched_events += (matches.num_rows() - matches.column(1).null_count()) as u64;
        times.clear();
        emit(Stream::LightEvents, events);
        emit(Stream::LightWaveforms, waveforms);
        emit(Stream::LightMatches, matches);
    };
    light.for_each_event(|event| {
        builder.add(event);
        stats.light_events += 1;
        stats.light_waveforms += event.waveforms.len() as u64;
        stats.light_missing_boards += u64::from(event.missing_boards());
        times.push((event.event, event_time_ticks(event).unwrap_or(0)));
        if builder.pending_events >= LIGHT_EVENTS_PER_BATCH {
            flush(&mut builder, &mut times, &mut stats, emit);
        }
    })?;
    flush(&mut builder, &mut times, &mut stats, emit);
    let unmatched = matcher.unmatched_charge();
    if unmatched.num_rows() > 0 {
        emit(Stream::LightMatches, unmatched);
    }
    Ok((stats, light.position()))
}
