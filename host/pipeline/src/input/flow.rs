//! ndlar_flow files as charge input: flow's events, t0 and calibrated hits mapped onto larmon's
//! `hits`, `events`, `tracks`, `track_segments` and `track_pixels` streams.
//!
//! What comes from flow and what from larmon:
//! - **positions** are flow's (larmon x = flow z, y = y, larmon z = flow x; cm → mm), so every
//!   hit is where flow put it; the tile and TPC are larmon's identification of the channel;
//! - **t0** is flow's (`combined/t0`) for events with an external trigger; events without one
//!   are self-triggered in larmon's sense: no t0, no drift coordinate (flow places their hits
//!   with t0 = first hit, which is not a position);
//! - **charge** is larmon's from the hit's raw ADC (`charge/raw_hits`) with larmon's channel
//!   constants, so it differs from flow's `Q_raw` only by the per-channel pedestal; without a raw
//!   ADC (flow's merged final hits) it is flow's `Q_raw`;
//! - **tracks** are larmon's track finder on those hits.
//!
//! Every batch carries the schema metadata [`CALIBRATION_KEY`] naming the flow product.

use std::sync::Arc;

use arrow::array::RecordBatch;
use larmon_calibrate::CalibrationStats;
use larmon_calibrate::channels::ChannelTable;
use larmon_calibrate::config::DetectorConfig;
use larmon_calibrate::geometry::Geometry;
use larmon_calibrate::output::{CalibratedBatch, EventKind, EventRow, HitRow};
use larmon_calibrate::tracks::add_event_tracks;
use larmon_ingest::read::{FlowEvent, FlowFileReader};

use crate::streams::{Stream, calibrated_batches};

/// Schema metadata key naming the calibration that produced a batch.
pub const CALIBRATION_KEY: &str = "larmon.calibration";

/// Ticks of the 10 MHz LArPix clock per second (flow's `rollover_ticks`).
const TICKS_PER_S: i64 = 10_000_000;

/// External-trigger t0 type of flow's `combined/t0`.
const T0_EXTERNAL: u8 = 1;

/// Turns a flow file's events into larmon's calibrated rows.
pub struct FlowCalibration {
    config: DetectorConfig,
    geometry: Arc<Geometry>,
    channels: Arc<ChannelTable>,
    id_base: u64,
    next_track_id: u64,
    origin_unix: u64,
    mark: String,
    stats: CalibrationStats,
    /// Hits whose charge came from the raw ADC / from flow's Q_raw.
    charge_from_adc: u64,
    charge_from_q_raw: u64,
}

impl FlowCalibration {
    /// The calibration of one flow file: ids from `id_base`, times relative to the file's
    /// earliest event second.
    pub fn new(
        config: DetectorConfig,
        geometry: Arc<Geometry>,
        channels: Arc<ChannelTable>,
        reader: &FlowFileReader,
        id_base: u64,
    ) -> Self {
        let product = reader.hits_kind().group();
        let mark = if reader.has_raw_adc() {
            format!(
                "ndlar_flow {product} (positions, t0); charge by larmon from charge/raw_hits ADC"
            )
        } else {
            format!("ndlar_flow {product} (positions, t0, charge Q_raw)")
        };
        Self {
            config,
            geometry,
            channels,
            id_base,
            next_track_id: id_base,
            origin_unix: reader.first_unix_ts().unwrap_or(0),
            mark,
            stats: CalibrationStats::default(),
            charge_from_adc: 0,
            charge_from_q_raw: 0,
        }
    }

    /// What produced the rows (the value of [`CALIBRATION_KEY`]).
    pub fn mark(&self) -> &str {
        &self.mark
    }

    /// Counts of what was read, in the calibrator's terms (hits read are its rows).
    pub fn stats(&self) -> &CalibrationStats {
        &self.stats
    }

    /// The statistics a run report sums: the calibrator's, and where the charge came from.
    pub fn host_stats(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.stats).expect("plain statistics");
        value["flow_files"] = 1.into();
        value["flow_hits_charge_from_adc"] = self.charge_from_adc.into();
        value["flow_hits_charge_from_q_raw"] = self.charge_from_q_raw.into();
        value
    }

    /// The calibrated rows of a block of flow events.
    pub fn calibrate(&mut self, events: &[FlowEvent]) -> CalibratedBatch {
        let mut out = CalibratedBatch::default();
        for event in events {
            self.add_event(event, &mut out);
        }
        out
    }

    fn add_event(&mut self, e: &FlowEvent, out: &mut CalibratedBatch) {
        let gain = self.config.charge.gain_mv_per_ke;
        let second = (e.unix_ts as i64 - self.origin_unix as i64) * TICKS_PER_S;
        let t0 =
            e.t0.filter(|&(_, kind)| kind == T0_EXTERNAL || e.n_ext_trigs > 0)
                .map(|(ts, _)| second as f64 + ts);
        let event_id = self.id_base + e.id;
        let first_hit = out.hits.len();
        let mut row = EventRow {
            event_id,
            kind: if t0.is_some() { EventKind::Triggered } else { EventKind::SelfTriggered },
            unix_time: e.unix_ts,
            t0_ticks: t0,
            n_triggers: e.n_ext_trigs,
            n_hits: e.hits.len() as u32,
            q_ke: 0.0,
            ts_start: t0.unwrap_or(f64::INFINITY),
            ts_end: t0.unwrap_or(f64::NEG_INFINITY),
        };
        for (k, h) in e.hits.iter().enumerate() {
            self.stats.rows += 1;
            let (g, c, chip, ch) =
                (h.io_group as u8, h.io_channel as u8, h.chip_id as u8, h.channel_id as u8);
            let pixel = self.geometry.pixel(g, c, chip, ch);
            if pixel.is_none() {
                self.stats.packets_outside_geometry += 1;
            }
            let tile = pixel.map(|p| &self.geometry.tiles[p.tile_index as usize]);
            let q_ke = match e.adc.as_ref().and_then(|adc| adc.get(k)) {
                Some(&adc) => {
                    self.charge_from_adc += 1;
                    self.channels.lookup(&self.geometry, g, c, chip, ch).q_ke(adc, gain)
                }
                None => {
                    self.charge_from_q_raw += 1;
                    h.q_raw
                }
            };
            let ts = second + h.ts_pps as i64;
            let z_mm = t0.map(|_| 10.0 * h.x);
            let drift_mm = tile.zip(z_mm).map(|(t, z)| (z - t.anode_z) * t.drift_dir);
            row.q_ke += q_ke;
            row.ts_start = row.ts_start.min(ts as f64);
            row.ts_end = row.ts_end.max(ts as f64);
            out.hits.push(HitRow {
                event_id: Some(event_id),
                track_id: None,
                io_group: g,
                io_channel: c,
                chip_id: chip,
                channel_id: ch,
                tile: tile.map(|t| t.id),
                tpc: tile.map(|t| t.tpc),
                ts_ticks: ts,
                unix_time: e.unix_ts,
                trigger_type: 0,
                n_packets: 1,
                q_mv: (q_ke * gain) as f32,
                q_ke: q_ke as f32,
                x_mm: Some((10.0 * h.z) as f32),
                y_mm: Some((10.0 * h.y) as f32),
                t0_ticks: t0,
                drift_ticks: t0.map(|_| h.t_drift as f32),
                drift_mm: drift_mm.map(|d| d as f32),
                z_mm: z_mm.map(|z| z as f32),
            });
        }
        if e.hits.is_empty() && t0.is_none() {
            (row.ts_start, row.ts_end) = (0.0, 0.0);
        }
        self.stats.hits += e.hits.len() as u64;
        self.stats.data_packets += e.hits.len() as u64;
        if t0.is_some() {
            self.stats.triggered_events += 1;
            self.stats.trigger_rows += u64::from(e.n_ext_trigs);
            let found = add_event_tracks(
                &self.config.tracks,
                event_id,
                out,
                first_hit,
                self.config.clock_mhz,
                &|tpc| self.geometry.tpc_pitch_mm(tpc),
                self.next_track_id,
            );
            self.next_track_id += found;
            self.stats.tracks += found;
        } else {
            self.stats.self_triggered_events += 1;
        }
        out.events.push(row);
    }

    /// The streams of a calibration step, each batch marked with what produced it.
    pub fn batches(&self, done: CalibratedBatch) -> Vec<(Stream, Arc<RecordBatch>)> {
        calibrated_batches(done)
            .into_iter()
            .map(|(stream, batch)| (stream, Arc::new(mark_batch(&batch, &self.mark))))
            .collect()
    }
}

/// `batch` with [`CALIBRATION_KEY`] = `mark` in its schema's metadata.
pub fn mark_batch(batch: &RecordBatch, mark: &str) -> RecordBatch {
    let schema = batch.schema();
    let mut metadata = schema.metadata().clone();
    metadata.insert(CALIBRATION_KEY, mark);
    let schema = Arc::new(schema.as_ref().clone().with_metadata(metadata));
    batch.clone().with_schema(schema).expect("only the metadata changes")
}
