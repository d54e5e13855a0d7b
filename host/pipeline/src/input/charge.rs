//! Charge files through calibration: the detector's calibration inputs read once per run, a
//! [`ChargeSource`] per file — a raw or packet file through larmon's calibrator, or an
//! ndlar_flow file mapped onto the same streams ([`super::flow`]) — with ids unique across the
//! run's files, and the charge triggers that light events are matched to.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use larmon_calibrate::channels::ChannelTable;
use larmon_calibrate::geometry::Geometry;
use larmon_calibrate::output::{CalibratedBatch, EventRow, pixels_record_batch};
use larmon_calibrate::{CalibrationStats, Calibrator, DetectorConfig};
use larmon_ingest::PacketColumns;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::channel_activity::ChannelActivity;
use larmon_ingest::light::streams::TICKS_PER_S as LIGHT_TICKS_PER_S;
use larmon_ingest::read::{
    DecodeAhead, FileKind, FlowFileReader, LarpixReader, ReadOptions, is_flow_file,
};

use super::flow::{FlowCalibration, mark_batch};
use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::streams::{Stream, calibrated_batch, calibrated_batches};

/// Flow events calibrated per step (a few MB of hits).
const FLOW_EVENTS_PER_STEP: usize = 256;

/// Ids of events and tracks of file k start at k << 40, unique across the files of a run.
pub const FILE_ID_SHIFT: u32 = 40;

/// The detector's calibration inputs, read once per run; a fresh calibrator per file.
pub struct RunCalibration {
    detector: DetectorConfig,
    /// The pixel layout (also what the plugins get as the `pixels` stream).
    pub geometry: Arc<Geometry>,
    channel_table: Arc<ChannelTable>,
    /// [`description_sha256`] of `detector`.
    sha256: String,
}

/// SHA-256 of a detector description ([`DetectorConfig::description_sha256`]).
pub fn description_sha256(detector: &DetectorConfig) -> Result<String> {
    detector.description_sha256().map_err(|source| PipelineError::Calibration {
        what: "hashing the detector description",
        source,
    })
}

impl RunCalibration {
    /// Reads the layout and channel constants the configuration names.
    pub fn new(detector: DetectorConfig) -> Result<Self> {
        let geometry = detector.geometry().map_err(|source| PipelineError::Calibration {
            what: "reading the detector layout",
            source,
        })?;
        let channel_table = detector.channels(&geometry).map_err(|source| {
            PipelineError::Calibration { what: "reading the channel constants", source }
        })?;
        let sha256 = description_sha256(&detector)?;
        Ok(Self {
            detector,
            geometry: geometry.into(),
            channel_table: channel_table.into(),
            sha256,
        })
    }

    /// The SHA-256 of the detector description in force ([`description_sha256`]).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the run's report records of the detector: which description (name, modules,
    /// io_groups, pitches, pixels) and where the channel constants came from (per file: key
    /// format, keys applied and unknown; channels with file constants and with defaults).
    pub fn summary(&self) -> serde_json::Value {
        let d = &self.detector;
        let name = if d.modules.is_empty() { d.detector.clone() } else { "[[modules]]".into() };
        let io_groups: std::collections::BTreeSet<u8> =
            self.geometry.channels().iter().map(|c| c.io_group).collect();
        let table = &self.channel_table;
        serde_json::json!({
            "name": name,
            "modules": self.geometry.tiles.iter().map(|t| t.module).collect::<std::collections::BTreeSet<_>>(),
            "io_groups": io_groups,
            "pitches_mm": self.geometry.pitches_mm(),
            "pixels": self.geometry.channels().len(),
            "channel_files": table.files(),
            "channels_with_file_constants": table.channels_from_files(),
            "channels_with_default_constants":
                self.geometry.channels().len().saturating_sub(table.channels_from_files()),
        })
    }

    /// The calibrator of the run's `index`-th file: its event and track ids start at
    /// `index << 40`, unique across the run.
    pub fn for_file(&self, index: usize) -> Result<Calibrator> {
        let calibrator = Calibrator::with_tables(
            self.detector.clone(),
            self.geometry.clone(),
            self.channel_table.clone(),
        )
        .map_err(|source| PipelineError::Calibration {
            what: "setting up the calibration",
            source,
        })?;
        Ok(calibrator.starting_ids_at((index as u64) << FILE_ID_SHIFT))
    }

    /// Opens the run's `index`-th charge file for calibration: an ndlar_flow file (events and
    /// calibrated hits) or a raw/packet file (packets through larmon's calibrator).
    pub fn open_file(
        &self,
        path: &Path,
        index: usize,
        options: &ReadOptions,
    ) -> Result<ChargeSource> {
        let context = |source| PipelineError::File {
            path: path.into(),
            what: "opening the charge file",
            source: Box::new(source),
        };
        if is_flow_file(path) {
            let reader = FlowFileReader::open(path).map_err(context)?;
            let calibration = FlowCalibration::new(
                self.detector.clone(),
                self.geometry.clone(),
                self.channel_table.clone(),
                &reader,
                (index as u64) << FILE_ID_SHIFT,
            );
            return Ok(ChargeSource::Flow {
                reader: Box::new(reader),
                calibration: Box::new(calibration),
            });
        }
        let reader = LarpixReader::open(path, options).map_err(context)?;
        Ok(ChargeSource::Packets {
            reader: Box::new(DecodeAhead::start(reader)),
            calibrator: Box::new(self.for_file(index)?.with_tracks_in_background()),
        })
    }
}

/// One charge file being calibrated, whatever its kind.
pub enum ChargeSource {
    /// Raw or packet file: packets through larmon's calibrator.
    Packets {
        /// The file, read and decoded on its own thread.
        reader: Box<DecodeAhead>,
        /// Its calibrator.
        calibrator: Box<Calibrator>,
    },
    /// ndlar_flow file: flow's events and hits mapped onto larmon's streams.
    Flow {
        /// The file.
        reader: Box<FlowFileReader>,
        /// Its mapping.
        calibration: Box<FlowCalibration>,
    },
}

/// One step of a charge file: what calibration completed, and the packets read (raw and
/// packet files).
pub struct ChargeStep {
    /// Hits, events and tracks completed.
    pub calibrated: CalibratedBatch,
    /// The packet rows this step read.
    pub packets: Option<PacketColumns>,
}

impl ChargeSource {
    /// What the file is: `raw`, `packets` or `ndlar_flow`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Packets { reader, .. } => match reader.kind() {
                FileKind::Raw => "raw",
                FileKind::Packets => "packets",
            },
            Self::Flow { .. } => "ndlar_flow",
        }
    }

    /// What progress is counted in.
    pub fn progress_unit(&self) -> &'static str {
        match self {
            Self::Packets { reader, .. } => match reader.kind() {
                FileKind::Raw => "messages",
                FileKind::Packets => "rows",
            },
            Self::Flow { .. } => "events",
        }
    }

    /// Units of progress in the file.
    pub fn progress_total(&self) -> u64 {
        match self {
            Self::Packets { reader, .. } => reader.progress_total(),
            Self::Flow { reader, .. } => reader.events() as u64,
        }
    }

    /// Units of progress done.
    pub fn progress_done(&self) -> u64 {
        match self {
            Self::Packets { reader, .. } => reader.progress_done(),
            Self::Flow { reader, .. } => reader.events_read() as u64,
        }
    }

    /// The next step, or `None` at the end of the file.
    pub fn next_step(&mut self) -> Result<Option<ChargeStep>> {
        match self {
            Self::Packets { reader, calibrator } => {
                let Some(batch) = reader.next_batch()? else { return Ok(None) };
                Ok(Some(ChargeStep { calibrated: calibrator.push(&batch), packets: Some(batch) }))
            }
            Self::Flow { reader, calibration } => {
                let Some(events) = reader.next_events(FLOW_EVENTS_PER_STEP)? else {
                    return Ok(None);
                };
                Ok(Some(ChargeStep { calibrated: calibration.calibrate(&events), packets: None }))
            }
        }
    }

    /// Everything still pending at the end of the file.
    pub fn finish(&mut self) -> CalibratedBatch {
        match self {
            Self::Packets { calibrator, .. } => calibrator.finish(),
            Self::Flow { .. } => CalibratedBatch::default(),
        }
    }

    /// The Unix seconds a flow file's events span (raw and packet files: from their timestamp
    /// rows, see [`super::widen_by_timestamps`]).
    pub fn span(&self) -> Option<(u64, u64)> {
        match self {
            Self::Packets { .. } => None,
            Self::Flow { reader, .. } => reader.unix_span(),
        }
    }

    /// The calibration's counts.
    pub fn stats(&self) -> &CalibrationStats {
        match self {
            Self::Packets { calibrator, .. } => calibrator.stats(),
            Self::Flow { calibration, .. } => calibration.stats(),
        }
    }

    /// The statistics a run report sums for this file.
    pub fn host_stats(&self) -> serde_json::Value {
        match self {
            Self::Packets { calibrator, .. } => {
                serde_json::to_value(calibrator.stats()).expect("plain statistics")
            }
            Self::Flow { calibration, .. } => calibration.host_stats(),
        }
    }

    /// What produced the calibrated streams (`larmon` or the flow product), as the schema
    /// metadata `larmon.calibration` of flow batches says.
    pub fn calibration_mark(&self) -> &str {
        match self {
            Self::Packets { .. } => "larmon",
            Self::Flow { calibration, .. } => calibration.mark(),
        }
    }

    /// The calibrated streams of a step, empty ones dropped (flow batches marked).
    pub fn batches(&self, done: CalibratedBatch) -> Vec<(Stream, Arc<RecordBatch>)> {
        match self {
            Self::Packets { .. } => calibrated_batches(done),
            Self::Flow { calibration, .. } => calibration.batches(done),
        }
    }

    /// One calibrated stream of a step (flow batches marked).
    pub fn batch(&self, done: CalibratedBatch, stream: Stream) -> Option<RecordBatch> {
        let batch = calibrated_batch(done, stream)?;
        Some(match self {
            Self::Packets { .. } => batch,
            Self::Flow { calibration, .. } => mark_batch(&batch, calibration.mark()),
        })
    }
}

/// A charge trigger: (time on the 10 MHz light clock, event id, the event's charge in ke⁻:
/// `light_matches` carries it, so a plugin needs no table of every event's charge).
pub type ChargeTrigger = (i64, u64, f64);

/// The charge triggers of calibrated events: Unix second × 1e7 + (t0 mod 1e7).
pub fn charge_triggers_of(events: &[EventRow]) -> Vec<ChargeTrigger> {
    events
        .iter()
        .filter_map(|e| {
            let t0 = e.t0_ticks?;
            let in_second = (t0.round() as i64).rem_euclid(LIGHT_TICKS_PER_S);
            Some((e.unix_time as i64 * LIGHT_TICKS_PER_S + in_second, e.event_id, e.q_ke))
        })
        .collect()
}

/// The charge triggers of the run's `index`-th charge file, as a full pass over it (same event
/// ids) would find them.
pub fn triggers_of_charge_file(
    file: &Path,
    calibration: &RunCalibration,
    index: usize,
    progress: &dyn Progress,
) -> Result<Vec<ChargeTrigger>> {
    let context = |source| PipelineError::File {
        path: file.into(),
        what: "charge triggers for light matching",
        source,
    };
    let mut source = calibration.open_file(file, index, &ReadOptions::default())?;
    let bar = progress.bar(
        &format!("charge triggers of {}", file.display()),
        source.progress_total(),
        source.progress_unit(),
    );
    let mut triggers = Vec::new();
    while let Some(step) = source.next_step().map_err(|e| match e {
        PipelineError::Ingest(source) => context(source),
        other => other,
    })? {
        triggers.extend(charge_triggers_of(&step.calibrated.events));
        bar.set_position(source.progress_done());
    }
    triggers.extend(charge_triggers_of(&source.finish().events));
    bar.finish();
    Ok(triggers)
}

/// What [`stream_charge_file`] saw besides the stream it handed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Calibrated hits.
    pub hits: usize,
    /// Events.
    pub events: usize,
    /// The calibration's counts.
    pub stats: CalibrationStats,
    /// What the file was: `raw`, `packets` or `ndlar_flow`.
    pub kind: &'static str,
    /// What produced the calibrated streams.
    pub calibration: String,
}

/// Reads the run's `index`-th charge file (0 for a file on its own) through calibration and
/// hands every non-empty batch of `stream` to `sink`: packets as read, a calibrated stream as
/// calibration completes it, or the detector's pixels once. What `larmon calibrate --export` and
/// the Python module's `read`/`calibrate` do.
pub fn stream_charge_file<E: From<PipelineError>>(
    file: &Path,
    calibration: &RunCalibration,
    stream: Stream,
    progress: &dyn Progress,
    mut sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<StreamCounts, E> {
    let mut put = |batch: RecordBatch| if batch.num_rows() > 0 { sink(batch) } else { Ok(()) };
    if stream == Stream::Pixels {
        put(pixels_record_batch(&calibration.geometry))?;
    }
    let mut source = calibration.open_file(file, 0, &ReadOptions::default())?;
    let bar = progress.bar("calibrating", source.progress_total(), source.progress_unit());
    let (mut hits, mut events) = (0, 0);
    let mut activity = ChannelActivity::new();
    let mut hand_over =
        |source: &ChargeSource, done: CalibratedBatch, packets: Option<PacketColumns>| {
            hits += done.hits.len();
            events += done.events.len();
            match (stream, packets) {
                (Stream::Packets, Some(packets)) => put(packets_record_batch(packets)),
                (Stream::Channels, Some(packets)) => {
                    activity.add(&packets).into_iter().try_for_each(&mut put)
                }
                (Stream::Channels, None) => activity.flush().into_iter().try_for_each(&mut put),
                _ => source.batch(done, stream).map_or(Ok(()), &mut put),
            }
        };
    while let Some(step) = source.next_step()? {
        hand_over(&source, step.calibrated, step.packets)?;
        bar.set_position(source.progress_done());
    }
    let rest = source.finish();
    hand_over(&source, rest, None)?;
    bar.finish();
    Ok(StreamCounts {
        hits,
        events,
        stats: source.stats().clone(),
        kind: source.kind_name(),
        calibration: source.calibration_mark().into(),
    })
}
