//! Light files into the `light_events`, `light_waveforms` and `light_matches` streams, matched
//! by time to the run's charge triggers, and the light channel map they are read with.

use larmon_calibrate::DetectorConfig;
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

/// The light channel map of a file — larmon's JSON records (a list of {adc, channel, tpc, det,
/// det_type}) or an ndlar_flow `light_module_desc-*.yaml` — or the default of the detector
/// in force: the simulation fixtures' module (`sim-module`) has the nominal pattern (4.0.0),
/// every other detector the 2x2's validated map (5.0.0).
pub fn load_channel_map(path: Option<&Path>, detector: &DetectorConfig) -> Result<ChannelMap> {
    let Some(path) = path else { return Ok(default_channel_map(detector)) };
    let text = std::fs::read_to_string(path).at(path)?;
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let map = if is_yaml {
        ChannelMap::from_light_module_desc(&text)
    } else {
        serde_json::from_str::<Vec<LightChannel>>(&text)
            .map_err(|e| e.to_string())
            .and_then(|records| ChannelMap::from_records(&records))
    };
    map.map_err(|reason| PipelineError::Config { path: path.into(), reason })
}

/// The light channel map that goes with a detector description (see [`load_channel_map`]).
pub fn default_channel_map(detector: &DetectorConfig) -> ChannelMap {
    if detector.modules.is_empty() && detector.detector == "sim-module" {
        ChannelMap::nominal_2x2()
    } else {
        ChannelMap::validated_2x2()
    }
}

/// One line on the light channel map a detector uses by default.
pub fn default_channel_map_name(detector: &DetectorConfig) -> &'static str {
    if detector.modules.is_empty() && detector.detector == "sim-module" {
        "nominal pattern (light_module_desc 4.0.0), as the simulation fixtures"
    } else {
        "the 2x2's validated map (light_module_desc 5.0.0 = 5.0.1)"
    }
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
