//! Charge files through calibration: the detector's calibration inputs read once per run, a
//! calibrator per file (ids unique across the run's files), and the charge triggers that light
//! events are matched to.

use std::path::Path;

use arrow::array::RecordBatch;
use larmon_calibrate::channels::ChannelTable;
use larmon_calibrate::geometry::Geometry;
use larmon_calibrate::output::{CalibratedBatch, EventRow, pixels_record_batch};
use larmon_calibrate::{Calibrator, DetectorConfig};
use larmon_ingest::PacketColumns;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::light::streams::TICKS_PER_S as LIGHT_TICKS_PER_S;
use larmon_ingest::read::{FileKind, LarpixReader, ReadOptions};

use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::streams::{Stream, calibrated_batch};

/// Ids of events and tracks of file k start at k << 40, unique across the files of a run.
pub const FILE_ID_SHIFT: u32 = 40;

/// The detector's calibration inputs, read once per run; a fresh calibrator per file.
pub struct RunCalibration {
    detector: DetectorConfig,
    /// The pixel layout (also what the plugins get as the `pixels` stream).
    pub geometry: Geometry,
    channel_table: ChannelTable,
}

impl RunCalibration {
    /// Reads the layout and channel constants the configuration names.
    pub fn new(detector: DetectorConfig) -> Result<Self> {
        let geometry = detector.geometry().map_err(|source| PipelineError::Calibration {
            what: "reading the detector layout",
            source,
        })?;
        let channel_table = detector.channels(&geometry).map_err(|source| PipelineError::Calibration {
            what: "reading the channel constants",
            source,
        })?;
        Ok(Self { detector, geometry, channel_table })
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
}

/// A charge trigger: (time on the 10 MHz light clock, event id).
pub type ChargeTrigger = (i64, u64);

/// The charge triggers of calibrated events: Unix second × 1e7 + (t0 mod 1e7).
pub fn charge_triggers_of(events: &[EventRow]) -> Vec<ChargeTrigger> {
    events
        .iter()
        .filter_map(|e| {
            let t0 = e.t0_ticks?;
            let in_second = (t0.round() as i64).rem_euclid(LIGHT_TICKS_PER_S);
            Some((e.unix_time as i64 * LIGHT_TICKS_PER_S + in_second, e.event_id))
        })
        .collect()
}

/// The charge triggers of a charge file, as a full pass over it with `calibrator` (the file's
/// own: same event ids) would find them.
pub fn triggers_of_charge_file(
    file: &Path,
    mut calibrator: Calibrator,
    progress: &dyn Progress,
) -> Result<Vec<ChargeTrigger>> {
    let context = |source| PipelineError::File {
        path: file.into(),
        what: "charge triggers for light matching",
        source: Box::new(source),
    };
    let mut reader = LarpixReader::open(file, &ReadOptions::default()).map_err(context)?;
    let unit = match reader.kind() {
        FileKind::Raw => "messages",
        FileKind::Packets => "rows",
    };
    let bar = progress.bar(
        &format!("charge triggers of {}", file.display()),
        reader.progress_total(),
        unit,
    );
    let mut triggers = Vec::new();
    while let Some(batch) = reader.next_batch().map_err(context)? {
        triggers.extend(charge_triggers_of(&calibrator.push(&batch).events));
        bar.set_position(reader.progress_done());
    }
    triggers.extend(charge_triggers_of(&calibrator.finish().events));
    bar.finish();
    Ok(triggers)
}

/// What [`stream_charge_file`] saw besides the stream it handed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Calibrated hits.
    pub hits: usize,
    /// Events.
    pub events: usize,
}

/// Reads a charge file through `calibrator` and hands every non-empty batch of `stream` to
/// `sink`: packets as read, a calibrated stream as calibration completes it, or the detector's
/// pixels once. What `larmon calibrate --export` and the Python module's `read`/`calibrate` do.
pub fn stream_charge_file<E: From<PipelineError>>(
    file: &Path,
    calibrator: &mut Calibrator,
    stream: Stream,
    progress: &dyn Progress,
    mut sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<StreamCounts, E> {
    let mut put = |batch: RecordBatch| if batch.num_rows() > 0 { sink(batch) } else { Ok(()) };
    if stream == Stream::Pixels {
        put(pixels_record_batch(calibrator.geometry()))?;
    }
    let mut reader =
        LarpixReader::open(file, &ReadOptions::default()).map_err(PipelineError::from)?;
    let bar = progress.bar("calibrating", reader.progress_total(), "units");
    let mut counts = StreamCounts::default();
    let mut hand_over = |done: &CalibratedBatch, packets: Option<PacketColumns>| {
        counts.hits += done.hits.len();
        counts.events += done.events.len();
        match (stream, packets) {
            (Stream::Packets, Some(packets)) => put(packets_record_batch(packets)),
            _ => calibrated_batch(done, stream).map_or(Ok(()), &mut put),
        }
    };
    while let Some(batch) = reader.next_batch().map_err(PipelineError::from)? {
        let done = calibrator.push(&batch);
        hand_over(&done, (stream == Stream::Packets).then_some(batch))?;
        bar.set_position(reader.progress_done());
    }
    hand_over(&calibrator.finish(), None)?;
    bar.finish();
    Ok(counts)
}
