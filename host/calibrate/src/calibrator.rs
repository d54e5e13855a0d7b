//! The streaming calibrator: packet batches in, hits and events out.
//!
//! 1. **Timing** (per io_group, in file order): timestamps masked to 31 bits; +`pps_ticks` after
//!    every sync row of type 'S' (83); data read out after the PPS that follows them
//!    (`receipt_timestamp < timestamp`) get −`pps_ticks`. `ts` counts ticks from the first PPS
//!    of the stream; an optional per-io_group clock-drift correction
//!    `(ts − offset)/(1 + slope)` follows.
//! 2. **Triggers**: type-7 rows with `trigger_type & trigger_mask`; triggers of several io_groups
//!    within `trigger_coincidence_ticks` are one trigger; `t0 = ts + t0_offset_ticks`.
//! 3. **Hits**: valid-parity data packets, ADC → mV → ke⁻ with the channel's constants, pixel
//!    position from the geometry.
//! 4. **Events**, swept in time order: a hit with `0 ≤ ts − t0 ≤ window` of the latest trigger
//!    belongs to it (drift time and coordinate known); other hits form self-triggered clusters
//!    (gap ≤ `self_trigger_gap_ticks`, ≥ `self_trigger_min_hits` hits; no t0) or stay
//!    unassociated. Within an event, hits of one channel closer than `hit_merge_ticks` merge
//!    (charge summed, time charge-weighted).
//!
//! Packets arrive in readout order, not time order, so hits wait until the data time of every
//! io_group has passed them by `max_lateness_ticks`; an event that straddles two batches is
//! therefore built whole. [`Calibrator::finish`] flushes everything at the end of a stream.

use larmon_decode::PacketColumns;
use rayon::prelude::*;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use crate::channels::{ChannelTable, unique_id};
use crate::config::DetectorConfig;
use crate::error::CalibrationError;
use crate::geometry::Geometry;
use crate::output::{CalibratedBatch, EventKind, EventRow, HitColumns, HitRow};
use crate::tracks::{EventTracks, TrackConfig, find_tracks};

const SYNC_ROW: u8 = 6;
const TRIGGER_ROW: u8 = 7;
const PPS_SYNC_TYPE: u8 = b'S';
const TIMESTAMP_MASK: u64 = 0x7FFF_FFFF;

/// A data packet turned into charge, before event building. Kept to 24 bytes because pending
/// hits are sorted by time on every batch: the channel fields derive from `unique_id`, the
/// position is looked up again when the hit is emitted.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct PendingHit {
    ts: i64,
    unique_id: u32,
    /// Unix time of the packet's message (fits u32 until 2106).
    unix_time: u32,
    q_ke: f32,
    trigger_type: u8,
    /// Whether the geometry knows the channel.
    has_pixel: bool,
}

impl PendingHit {
    fn channel(&self) -> (u8, u8, u8, u8) {
        let id = self.unique_id;
        ((id >> 22) as u8, (id >> 14) as u8, (id >> 6) as u8, (id & 63) as u8)
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct PendingTrigger {
    ts: i64,
    unix_time: u64,
    count: u32,
}

/// Counts of what the calibrator saw, for reports and checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationStats {
    /// Packet rows seen.
    pub rows: u64,
    /// Valid-parity data packets turned into hits (before merging).
    pub data_packets: u64,
    /// Data packets (types 0–3) skipped for bad parity.
    pub bad_parity_packets: u64,
    /// Data packets whose channel the geometry does not know (kept, without position).
    pub packets_outside_geometry: u64,
    /// PPS sync rows.
    pub pps_syncs: u64,
    /// External-trigger rows (before merging across io_groups).
    pub trigger_rows: u64,
    /// Hits emitted (after merging).
    pub hits: u64,
    /// Events emitted, by kind.
    pub triggered_events: u64,
    /// Self-triggered events emitted.
    pub self_triggered_events: u64,
    /// Tracks found.
    pub tracks: u64,
}

/// Everything a calibrator carries from one batch to the next — PPS rollovers, data time per
/// io_group, hits and triggers waiting for their event, id counters, statistics — so a stream
/// can be resumed in another process (`larmon watch` after a restart) with the same output.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CalibratorState {
    rollover: Vec<i64>,
    latest_ts: Vec<Option<i64>>,
    hits: Vec<PendingHit>,
    triggers: Vec<PendingTrigger>,
    cluster: Vec<PendingHit>,
    next_event_id: u64,
    next_track_id: u64,
    stats: CalibrationStats,
}

/// Turns packet batches into calibrated hits and events.
pub struct Calibrator {
    config: DetectorConfig,
    /// Shared (read-only) by every calibrator of a run: ~10 MB each for the 2x2.
    geometry: Arc<Geometry>,
    channels: Arc<ChannelTable>,
    mm_per_tick: f64,
    rollover: Box<[i64; 256]>,
    /// Per io_group (offset, 1 + slope); `None` when no io_group is corrected.
    clock: Option<Box<[(f64, f64); 256]>>,
    latest_ts: Box<[Option<i64>; 256]>,
    hits: Vec<PendingHit>,
    triggers: Vec<PendingTrigger>,
    cluster: Vec<PendingHit>,
    next_event_id: u64,
    next_track_id: u64,
    stats: CalibrationStats,
    /// Triggered events of the batch being built whose tracks are still to find: (event id,
    /// range of its hits in the output). Found together at the end of the batch, on every
    /// core, and numbered in event order, so the output is the single-threaded one.
    track_searches: Vec<TrackSearch>,
    /// Whether tracks are searched while the next batch is calibrated
    /// ([`Calibrator::with_tracks_in_background`]).
    background_tracks: bool,
    /// The batch whose tracks are being searched in the background.
    in_flight: Option<Receiver<std::thread::Result<SearchedBatch>>>,
    /// Hits made but not yet in the output's columns: they go over in blocks of
    /// [`ROWS_PER_BLOCK`], column by column, while still in the cache ([`HitColumns::extend_rows`]).
    rows: Vec<HitRow>,
    /// Scratch of [`sort_in_time_order`], kept from batch to batch.
    time_order_scratch: Vec<PendingHit>,
}

/// Hits handed to the output's columns at a time (16 kB of rows: they stay in the L1 cache
/// while the 20 columns are copied out of them; blocks of 1024 rows, in L2 only, took 8.1 %
/// of `larmon calibrate` instead of 6.6 %).
const ROWS_PER_BLOCK: usize = 128;

/// A triggered event whose tracks are to be found: (event id, range of its hits in the batch).
type TrackSearch = (u64, std::ops::Range<usize>);

/// A batch whose tracks were found but not numbered yet.
struct SearchedBatch {
    batch: CalibratedBatch,
    searches: Vec<TrackSearch>,
    found: Vec<EventTracks>,
}

impl Calibrator {
    /// Builds a calibrator: reads the layouts and channel files the configuration names.
    pub fn new(config: DetectorConfig) -> Result<Self, CalibrationError> {
        let geometry = config.geometry()?;
        let channels = config.channels(&geometry)?;
        Self::with_tables(config, geometry, channels)
    }

    /// Builds a calibrator from tables already loaded (shared, not copied, when given as
    /// `Arc`s); fails only on an invalid clock correction.
    pub fn with_tables(
        config: DetectorConfig,
        geometry: impl Into<Arc<Geometry>>,
        channels: impl Into<Arc<ChannelTable>>,
    ) -> Result<Self, CalibrationError> {
        let (geometry, channels) = (geometry.into(), channels.into());
        let mm_per_tick = config.drift_mm_per_tick();
        let clock = if config.clock_correction.is_empty() {
            None
        } else {
            Some(config.clock_correction_table()?)
        };
        Ok(Self {
            clock,
            config,
            geometry,
            channels,
            mm_per_tick,
            rollover: Box::new([0; 256]),
            latest_ts: Box::new([None; 256]),
            hits: Vec::new(),
            triggers: Vec::new(),
            cluster: Vec::new(),
            next_event_id: 0,
            next_track_id: 0,
            stats: CalibrationStats::default(),
            track_searches: Vec::new(),
            background_tracks: false,
            in_flight: None,
            rows: Vec::with_capacity(ROWS_PER_BLOCK),
            time_order_scratch: Vec::new(),
        })
    }

    /// Numbers events and tracks from `base` on (files of one run get disjoint ranges).
    pub fn starting_ids_at(mut self, base: u64) -> Self {
        self.next_event_id = base;
        self.next_track_id = base;
        self
    }

    /// Searches a batch's tracks on other threads while the next batch is calibrated: each
    /// [`Calibrator::push`] then returns the batch before it, and [`Calibrator::finish`] the
    /// rest. The batches joined end to end are the same as without (tracks numbered in event
    /// order), one batch later. Not for a stream to resume: [`Calibrator::state`] does not hold
    /// the batch in flight.
    pub fn with_tracks_in_background(mut self) -> Self {
        self.background_tracks = true;
        self
    }

    /// The state to resume this stream later (see [`CalibratorState`]); for a calibrator without
    /// [`Calibrator::with_tracks_in_background`].
    pub fn state(&self) -> CalibratorState {
        debug_assert!(self.in_flight.is_none(), "a batch in flight is not in the state");
        CalibratorState {
            rollover: self.rollover.to_vec(),
            latest_ts: self.latest_ts.to_vec(),
            hits: self.hits.clone(),
            triggers: self.triggers.clone(),
            cluster: self.cluster.clone(),
            next_event_id: self.next_event_id,
            next_track_id: self.next_track_id,
            stats: self.stats.clone(),
        }
    }

    /// Continues a stream from a saved state; fails if the state is not one this version wrote.
    pub fn resume(&mut self, state: CalibratorState) -> Result<(), CalibrationError> {
        let (Ok(rollover), Ok(latest_ts)) = (state.rollover.try_into(), state.latest_ts.try_into())
        else {
            return Err(CalibrationError::Config("a calibrator state needs 256 io_groups".into()));
        };
        *self.rollover = rollover;
        *self.latest_ts = latest_ts;
        self.hits = state.hits;
        self.triggers = state.triggers;
        self.cluster = state.cluster;
        self.next_event_id = state.next_event_id;
        self.next_track_id = state.next_track_id;
        self.stats = state.stats;
        Ok(())
    }

    /// The geometry in use.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// What has been seen so far.
    pub fn stats(&self) -> &CalibrationStats {
        &self.stats
    }

    /// Consumes one batch of packet rows (in file order) and returns what is complete.
    pub fn push(&mut self, packets: &PacketColumns) -> CalibratedBatch {
        self.ingest(packets);
        let horizon = self.latest_ts.iter().flatten().min().copied();
        let mut out = CalibratedBatch::default();
        if let Some(horizon) = horizon {
            self.drain(horizon - self.config.events.max_lateness_ticks, &mut out);
        }
        self.flush_rows(&mut out);
        if !self.background_tracks {
            self.find_batch_tracks(&mut out);
            return out;
        }
        let before = self.numbered_in_flight().unwrap_or_default();
        self.search_in_background(out);
        before
    }

    /// Flushes every pending hit and event at the end of the stream.
    pub fn finish(&mut self) -> CalibratedBatch {
        let mut out = CalibratedBatch::default();
        self.drain(i64::MAX, &mut out);
        self.close_cluster(&mut out);
        self.flush_rows(&mut out);
        let mut before = self.numbered_in_flight().unwrap_or_default();
        self.find_batch_tracks(&mut out);
        before.extend(out);
        before
    }

    /// Finds the tracks of the batch's triggered events (queued only when tracking is on),
    /// events in parallel (each search is seeded by its event id), then numbers them in event
    /// order from `next_track_id`.
    fn find_batch_tracks(&mut self, out: &mut CalibratedBatch) {
        let searches = std::mem::take(&mut self.track_searches);
        let tracks = (&self.config.tracks, self.config.clock_mhz);
        let found = search_tracks(tracks, &self.geometry, &out.hits, &searches);
        self.number_tracks(out, searches, found);
    }

    /// Starts the search of `batch`'s tracks on the thread pool.
    fn search_in_background(&mut self, batch: CalibratedBatch) {
        let searches = std::mem::take(&mut self.track_searches);
        let (tracks, clock_mhz) = (self.config.tracks.clone(), self.config.clock_mhz);
        let geometry = self.geometry.clone();
        let (done, in_flight) = sync_channel(1);
        rayon::spawn(move || {
            // A panic is handed to the calibrator's thread (rayon would abort the process).
            let searched = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let found = search_tracks((&tracks, clock_mhz), &geometry, &batch.hits, &searches);
                SearchedBatch { batch, searches, found }
            }));
            let _ = done.send(searched);
        });
        self.in_flight = Some(in_flight);
    }

    /// The batch in flight with its tracks numbered, once its search is done.
    fn numbered_in_flight(&mut self) -> Option<CalibratedBatch> {
        let searched = match self.in_flight.take()?.recv() {
            Ok(Ok(searched)) => searched,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => unreachable!("the search sends its result before it ends"),
        };
        let SearchedBatch { mut batch, searches, found } = searched;
        self.number_tracks(&mut batch, searches, found);
        Some(batch)
    }

    /// Adds the tracks found to their batch, numbered in event order from `next_track_id`.
    fn number_tracks(
        &mut self,
        out: &mut CalibratedBatch,
        searches: Vec<TrackSearch>,
        found: Vec<EventTracks>,
    ) {
        // Room for them all at once: growing row by row copied the rows over and over.
        out.tracks.reserve(found.iter().map(|e| e.tracks.len()).sum());
        out.segments.reserve(found.iter().map(|e| e.segments.len()).sum());
        out.track_pixels.reserve(found.iter().map(|e| e.pixels.len()).sum());
        for ((_, range), event) in searches.into_iter().zip(found) {
            let count = event.add_to(out, range.start, self.next_track_id);
            self.next_track_id += count;
            self.stats.tracks += count;
        }
    }

    fn ingest(&mut self, p: &PacketColumns) {
        let pps = self.config.pps_ticks;
        let mask = self.config.events.trigger_mask;
        let gain = self.config.charge.gain_mv_per_ke;
        for i in 0..p.len() {
            self.stats.rows += 1;
            let io = p.io_group[i] as usize;
            match p.packet_type[i] {
                SYNC_ROW if p.trigger_type[i] == PPS_SYNC_TYPE => {
                    self.rollover[io] += pps;
                    self.stats.pps_syncs += 1;
                }
                TRIGGER_ROW if p.trigger_type[i] & mask != 0 => {
                    let ts = self.corrected(
                        io,
                        (p.timestamp[i] & TIMESTAMP_MASK) as i64 + self.rollover[io],
                    );
                    self.stats.trigger_rows += 1;
                    self.note_time(io, ts);
                    self.add_trigger(ts, p.unix_time[i]);
                }
                0..=3 if p.valid_parity[i] == 0 => self.stats.bad_parity_packets += 1,
                0 => {
                    let timestamp = p.timestamp[i] & TIMESTAMP_MASK;
                    let late = u64::from(p.receipt_timestamp[i]) & TIMESTAMP_MASK < timestamp;
                    let ts = self.corrected(
                        io,
                        timestamp as i64 + self.rollover[io] - if late { pps } else { 0 },
                    );
                    self.note_time(io, ts);
                    let (g, c, chip, ch) =
                        (p.io_group[i], p.io_channel[i], p.chip_id[i], p.channel_id[i]);
                    let id = unique_id(g, c, chip, ch);
                    let calibration = self.channels.lookup(&self.geometry, g, c, chip, ch);
                    let has_pixel = self.geometry.tile_index(g, c, chip).is_some();
                    if !has_pixel {
                        self.stats.packets_outside_geometry += 1;
                    }
                    self.stats.data_packets += 1;
                    self.hits.push(PendingHit {
                        ts,
                        unique_id: id,
                        unix_time: p.unix_time[i] as u32,
                        q_ke: calibration.q_ke(p.dataword[i], gain) as f32,
                        trigger_type: p.trigger_type[i],
                        has_pixel,
                    });
                }
                _ => {}
            }
        }
    }

    /// Applies the io_group's clock-drift correction, if configured (rounded to whole ticks).
    #[inline]
    fn corrected(&self, io: usize, ts: i64) -> i64 {
        match &self.clock {
            Some(table) => {
                let (offset, scale) = table[io];
                ((ts as f64 - offset) / scale).round() as i64
            }
            None => ts,
        }
    }

    fn note_time(&mut self, io: usize, ts: i64) {
        let latest = &mut self.latest_ts[io];
        *latest = Some(latest.map_or(ts, |t| t.max(ts)));
    }

    fn add_trigger(&mut self, ts: i64, unix_time: u64) {
        let window = self.config.events.trigger_coincidence_ticks;
        let at = self.triggers.partition_point(|t| t.ts < ts);
        for k in [at.wrapping_sub(1), at] {
            if let Some(t) = self.triggers.get_mut(k).filter(|t| (t.ts - ts).abs() <= window) {
                t.ts = t.ts.min(ts);
                t.count += 1;
                return;
            }
        }
        self.triggers.insert(at, PendingTrigger { ts, unix_time, count: 1 });
    }

    /// Emits everything that can no longer change: hits and triggers before `cutoff`, except
    /// those of a trigger window still open at `cutoff`.
    fn drain(&mut self, cutoff: i64, out: &mut CalibratedBatch) {
        let window = self.config.events.trigger_window_ticks;
        let limit = self
            .triggers
            .iter()
            .find(|t| t.ts.saturating_add(window) >= cutoff)
            .map_or(cutoff, |t| t.ts.min(cutoff));
        let closing = self.triggers.partition_point(|t| t.ts < limit);
        let triggers: Vec<PendingTrigger> = self.triggers.drain(..closing).collect();

        // Each ready hit belongs to the latest trigger at or before it, if within its window
        // (pending hits need no sorting). `k` is the number of closing triggers at or before
        // the hit: readout order is nearly time order, so the previous hit's `k` is usually
        // the answer, checked with two comparisons; else a binary search finds it.
        let mut members: Vec<Vec<PendingHit>> = vec![Vec::new(); triggers.len()];
        let mut untriggered = Vec::new();
        let pending = self.hits.len();
        let mut k = 0;
        self.hits.retain(|hit| {
            if hit.ts >= limit {
                return true;
            }
            let after_previous = k == 0 || triggers[k - 1].ts <= hit.ts;
            let before_next = triggers.get(k).is_none_or(|t| t.ts > hit.ts);
            if !(after_previous && before_next) {
                k = triggers.partition_point(|t| t.ts <= hit.ts);
            }
            match k.checked_sub(1) {
                Some(k) if hit.ts - triggers[k].ts <= window => members[k].push(*hit),
                _ => untriggered.push(*hit),
            }
            false
        });
        // Every ready hit becomes a row now, and the open cluster's perhaps.
        out.hits.reserve(pending - self.hits.len() + self.cluster.len());

        // Emit in time order: untriggered hits cluster between triggers; a trigger ends the open
        // cluster.
        sort_in_time_order(&mut untriggered, &mut self.time_order_scratch);
        let mut untriggered = untriggered.into_iter().peekable();
        for (trigger, hits) in triggers.into_iter().zip(members) {
            while let Some(hit) = untriggered.next_if(|h| h.ts < trigger.ts) {
                self.add_to_cluster(hit, out);
            }
            self.close_cluster(out);
            self.emit_triggered(trigger, hits, out);
        }
        for hit in untriggered {
            self.add_to_cluster(hit, out);
        }
        if self
            .cluster
            .last()
            .is_some_and(|h| h.ts + self.config.events.self_trigger_gap_ticks < limit)
        {
            self.close_cluster(out);
        }
    }

    fn add_to_cluster(&mut self, hit: PendingHit, out: &mut CalibratedBatch) {
        let gap = self.config.events.self_trigger_gap_ticks;
        if self.cluster.last().is_some_and(|last| hit.ts - last.ts > gap) {
            self.close_cluster(out);
        }
        self.cluster.push(hit);
    }

    fn close_cluster(&mut self, out: &mut CalibratedBatch) {
        if self.cluster.is_empty() {
            return;
        }
        if self.cluster.len() >= self.config.events.self_trigger_min_hits {
            let members = std::mem::take(&mut self.cluster);
            let id = self.take_event_id();
            let hits = self.merge(members);
            let unix_time = hits.first().map_or(0, |(h, _)| u64::from(h.unix_time));
            self.emit_event(id, EventKind::SelfTriggered, None, 0, unix_time, hits, out);
            self.stats.self_triggered_events += 1;
        } else {
            // Unassociated hits (most noise is a "cluster" of one): the cluster's buffer is
            // kept for the next one, not allocated afresh for each.
            let members = std::mem::take(&mut self.cluster);
            for h in &members {
                let row = self.hit_row(None, None, h, 1);
                self.add_row(row, out);
                self.stats.hits += 1;
            }
            self.cluster = members;
            self.cluster.clear();
        }
    }

    fn emit_triggered(
        &mut self,
        t: PendingTrigger,
        members: Vec<PendingHit>,
        out: &mut CalibratedBatch,
    ) {
        let id = self.take_event_id();
        let t0 = t.ts as f64 + self.config.events.t0_offset_ticks;
        let hits = self.merge(members);
        self.emit_event(id, EventKind::Triggered, Some(t0), t.count, t.unix_time, hits, out);
        self.stats.triggered_events += 1;
    }

    /// Adds a hit after those made before it (see `rows`).
    #[inline]
    fn add_row(&mut self, row: HitRow, out: &mut CalibratedBatch) {
        self.rows.push(row);
        if self.rows.len() >= ROWS_PER_BLOCK {
            self.flush_rows(out);
        }
    }

    /// Hits of the batch made so far: those in the output's columns and those waiting.
    fn hits_made(&self, out: &CalibratedBatch) -> usize {
        out.hits.len() + self.rows.len()
    }

    /// Moves the hits made so far into the output's columns.
    fn flush_rows(&mut self, out: &mut CalibratedBatch) {
        out.hits.extend_rows(&self.rows);
        self.rows.clear();
    }

    fn take_event_id(&mut self) -> u64 {
        self.next_event_id += 1;
        self.next_event_id - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_event(
        &mut self,
        id: u64,
        kind: EventKind,
        t0: Option<f64>,
        n_triggers: u32,
        unix_time: u64,
        hits: Vec<(PendingHit, u16)>,
        out: &mut CalibratedBatch,
    ) {
        let mut event = EventRow {
            event_id: id,
            kind,
            unix_time,
            t0_ticks: t0,
            n_triggers,
            n_hits: hits.len() as u32,
            q_ke: 0.0,
            ts_start: t0.unwrap_or(f64::INFINITY),
            ts_end: t0.unwrap_or(f64::NEG_INFINITY),
        };
        for (h, _) in &hits {
            event.q_ke += f64::from(h.q_ke);
            event.ts_start = event.ts_start.min(h.ts as f64);
            event.ts_end = event.ts_end.max(h.ts as f64);
        }
        if hits.is_empty() && t0.is_none() {
            (event.ts_start, event.ts_end) = (0.0, 0.0);
        }
        let first_hit = self.hits_made(out);
        for (h, n) in &hits {
            let row = self.hit_row(Some(id), t0, h, *n);
            self.add_row(row, out);
        }
        if t0.is_some() && self.config.tracks.enabled {
            let end = self.hits_made(out);
            self.track_searches.push((id, first_hit..end));
        }
        self.stats.hits += hits.len() as u64;
        out.events.push(event);
    }

    /// Merges hits of one channel closer than `hit_merge_ticks`; returns hits with the number of
    /// packets merged into each, ordered by channel, then time. A merged hit's `ts` is the charge-weighted mean
    /// (plain mean if the summed charge is not positive), rounded to the nearest tick.
    fn merge(&self, mut hits: Vec<PendingHit>) -> Vec<(PendingHit, u16)> {
        let merge_ticks = self.config.events.hit_merge_ticks;
        hits.sort_unstable_by_key(|h| (h.unique_id, h.ts));
        if merge_ticks <= 0 {
            return hits.into_iter().map(|h| (h, 1)).collect();
        }
        let mut merged: Vec<(PendingHit, u16, f64, f64, f64, i64)> = Vec::with_capacity(hits.len());
        for h in hits {
            let q = f64::from(h.q_ke);
            if let Some((m, n, qsum, wsum, tsum, last)) = merged.last_mut() {
                if m.unique_id == h.unique_id && h.ts - *last <= merge_ticks {
                    *n += 1;
                    *qsum += q;
                    *wsum += q;
                    *tsum += q * h.ts as f64;
                    *last = h.ts;
                    continue;
                }
            }
            merged.push((h, 1, q, q, q * h.ts as f64, h.ts));
        }
        let result: Vec<(PendingHit, u16)> = merged
            .into_iter()
            .map(|(mut h, n, qsum, wsum, tsum, last)| {
                if n > 1 {
                    let mean = if wsum > 0.0 { tsum / wsum } else { (h.ts + last) as f64 / 2.0 };
                    h.ts = mean.round() as i64;
                    h.q_ke = qsum as f32;
                }
                (h, n)
            })
            .collect();
        result
    }

    fn hit_row(
        &self,
        event_id: Option<u64>,
        t0: Option<f64>,
        h: &PendingHit,
        n_packets: u16,
    ) -> HitRow {
        let (io_group, io_channel, chip_id, channel_id) = h.channel();
        let pixel = h
            .has_pixel
            .then(|| self.geometry.pixel(io_group, io_channel, chip_id, channel_id))
            .flatten();
        let tile = pixel.map(|p| &self.geometry.tiles[p.tile_index as usize]);
        let drift_ticks = t0.map(|t0| h.ts as f64 - t0);
        let drift_mm = drift_ticks.map(|d| d * self.mm_per_tick);
        HitRow {
            event_id,
            track_id: None,
            io_group,
            io_channel,
            chip_id,
            channel_id,
            tile: tile.map(|t| t.id),
            tpc: tile.map(|t| t.tpc),
            ts_ticks: h.ts,
            unix_time: u64::from(h.unix_time),
            trigger_type: h.trigger_type,
            n_packets,
            q_mv: (f64::from(h.q_ke) * self.config.charge.gain_mv_per_ke) as f32,
            q_ke: h.q_ke,
            x_mm: pixel.map(|p| p.x as f32),
            y_mm: pixel.map(|p| p.y as f32),
            t0_ticks: t0,
            drift_ticks: drift_ticks.map(|d| d as f32),
            drift_mm: drift_mm.map(|d| d as f32),
            z_mm: tile.zip(drift_mm).map(|(t, d)| (t.anode_z + t.drift_dir * d) as f32),
        }
    }
}

/// Sorts hits by (time, channel) into exactly the order a stable sort by that key gives, and
/// faster on readout order. Each io_group's hits arrive nearly in time order (its PACMAN's
/// messages one after another), the io_groups' messages interleaved: on the 2x2, 98 % of
/// neighbours are in order, but the disorder spans hundreds of hits (~180 per hit), which a
/// merge sort pays for at every level. So the hits are put in io_group order first (stably),
/// each io_group's few inversions are mended by insertion (hits move past greater keys only),
/// and the stable sort then merges one run per io_group. Equal keys are of one channel, hence
/// of one io_group, and keep their arrival order throughout, as in the stable sort. When
/// mending costs more than a few moves per hit, the stable sort does all the work.
fn sort_in_time_order(hits: &mut Vec<PendingHit>, scratch: &mut Vec<PendingHit>) {
    let key = |h: &PendingHit| (h.ts, h.unique_id);
    let io_group = |h: &PendingHit| (h.unique_id >> 22) as usize;
    let Some(first) = hits.first().copied() else { return };
    let mut starts = [0usize; 257];
    for h in hits.iter() {
        starts[io_group(h) + 1] += 1;
    }
    let groups = starts.iter().filter(|n| **n > 0).count();
    for g in 0..256 {
        starts[g + 1] += starts[g];
    }
    if groups > 1 {
        scratch.clear();
        scratch.resize(hits.len(), first);
        let mut next = starts;
        for h in hits.iter() {
            let g = io_group(h);
            scratch[next[g]] = *h;
            next[g] += 1;
        }
        std::mem::swap(hits, scratch);
    }
    let mut budget = 4 * hits.len();
    'groups: for g in 0..256 {
        let (start, end) = (starts[g], starts[g + 1]);
        for i in start + 1..end {
            let h = hits[i];
            let mut j = i;
            while j > start && key(&h) < key(&hits[j - 1]) {
                hits[j] = hits[j - 1];
                j -= 1;
                budget = budget.saturating_sub(1);
            }
            hits[j] = h;
            if budget == 0 {
                break 'groups;
            }
        }
    }
    hits.sort_by_key(key);
}

/// The tracks of each search's event, events in parallel (each search is seeded by its event
/// id, so the result does not depend on the threads).
fn search_tracks(
    (config, clock_mhz): (&TrackConfig, f64),
    geometry: &Geometry,
    hits: &HitColumns,
    searches: &[TrackSearch],
) -> Vec<EventTracks> {
    let pitch = |tpc| geometry.tpc_pitch_mm(tpc);
    searches
        .par_iter()
        .with_max_len(1)
        .map(|(event_id, range)| {
            find_tracks(config, *event_id, hits.slice(range.clone()), clock_mhz, &pitch, 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use larmon_decode::PacketRow;

    fn row(packet_type: u8, timestamp: u64, receipt: u32, trigger_type: u8) -> PacketRow {
        PacketRow {
            io_group: 1,
            io_channel: 1,
            chip_id: 11,
            packet_type,
            valid_parity: u8::from(packet_type == 0),
            timestamp,
            dataword: 100,
            trigger_type,
            receipt_timestamp: receipt,
            unix_time: 1_700_000_000,
            ..Default::default()
        }
    }

    fn run(config: DetectorConfig, rows: &[PacketRow]) -> CalibratedBatch {
        let mut columns = PacketColumns::default();
        columns.extend_from_rows(rows);
        let mut c = Calibrator::new(config).unwrap();
        let mut out = c.push(&columns);
        out.extend(c.finish());
        out
    }

    #[test]
    fn pps_rollover_late_readout_and_clock_correction() {
        let rows = [
            row(TRIGGER_ROW, 9_999_000, 0, 2),
            row(0, 9_999_500, 9_999_600, 0),   // same second
            row(SYNC_ROW, 9_999_999, 0, b'S'), // PPS: +1e7 from here on
            row(0, 9_999_800, 300, 0),         // read out after the PPS: belongs before it
            row(0, 200, 400, 0),               // after the PPS
            row(SYNC_ROW, 5_000_000, 0, b'H'), // heartbeat: no rollover
        ];
        let out = run(DetectorConfig::default(), &rows);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].t0_ticks, Some(9_999_000.0));
        let mut ts: Vec<i64> = out.hits.iter().map(|h| h.ts_ticks).collect();
        ts.sort();
        assert_eq!(ts, [9_999_500, 9_999_800, 10_000_200]);
        assert!(out.hits.iter().all(|h| h.event_id == Some(0)), "all within the 2000-tick window");

        let mut invalid = DetectorConfig::default();
        invalid.clock_correction.insert("one".into(), [100.0, 0.0]);
        assert!(
            Calibrator::new(invalid).is_err(),
            "an invalid io_group key is refused, not ignored"
        );

        let mut corrected = DetectorConfig::default();
        corrected.clock_correction.insert("1".into(), [100.0, 0.0]);
        let out = run(corrected, &rows);
        assert_eq!(out.events[0].t0_ticks, Some(9_998_900.0));
        let mut ts: Vec<i64> = out.hits.iter().map(|h| h.ts_ticks).collect();
        ts.sort();
        assert_eq!(ts, [9_999_400, 9_999_700, 10_000_100]);
    }

    #[test]
    fn triggers_on_two_io_groups_are_one_event_and_far_hits_are_not_in_it() {
        let mut second = row(TRIGGER_ROW, 1_003, 0, 2);
        second.io_group = 2;
        let rows = [
            row(TRIGGER_ROW, 1_000, 0, 2),
            second,
            row(0, 2_500, 2_600, 0),
            row(0, 4_000, 4_100, 0),
        ];
        let out = run(DetectorConfig::default(), &rows);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].n_triggers, 2);
        assert_eq!(out.events[0].t0_ticks, Some(1_000.0));
        let in_event: Vec<i64> =
            out.hits.iter().filter(|h| h.event_id.is_some()).map(|h| h.ts_ticks).collect();
        assert_eq!(in_event, [2_500]);
        let drift = out.hits.iter().find(|h| h.event_id.is_some()).unwrap().drift_ticks;
        assert_eq!(drift, Some(1_500.0));
    }

    #[test]
    fn untriggered_activity_becomes_self_triggered_events() {
        // 12 hits 50 ticks apart (a cluster), then 3 isolated hits far apart; no trigger.
        let mut rows: Vec<PacketRow> = (0..12u64)
            .map(|k| {
                let mut r = row(0, 100_000 + 50 * k, (100_100 + 50 * k) as u32, 0);
                r.channel_id = k as u8;
                r
            })
            .collect();
        rows.extend(
            (0..3u64).map(|k| row(0, 500_000 + 100_000 * k, (500_100 + 100_000 * k) as u32, 0)),
        );
        let out = run(DetectorConfig::default(), &rows);
        assert_eq!(out.events.len(), 1);
        let event = out.events[0];
        assert_eq!(event.kind, EventKind::SelfTriggered);
        assert_eq!((event.t0_ticks, event.n_hits), (None, 12));
        assert_eq!((event.ts_start, event.ts_end), (100_000.0, 100_550.0));
        let in_event = out.hits.iter().filter(|h| h.event_id == Some(event.event_id)).count();
        assert_eq!(in_event, 12);
        let alone: Vec<_> = out.hits.iter().filter(|h| h.event_id.is_none()).collect();
        assert_eq!(alone.len(), 3);
        assert!(out.hits.iter().all(|h| h.z_mm.is_none()), "no t0, no drift coordinate");
        assert!(out.tracks.is_empty());
    }

    /// Hits sorted in time order are in exactly the order of a stable sort by (time, channel):
    /// readout-like orders (io_groups interleaved, each nearly in time order), random orders
    /// that exhaust the mending budget, one io_group, ties of one channel (told apart by
    /// their charge), and the empty and one-hit cases.
    #[test]
    fn hits_in_time_order_are_those_of_a_stable_sort() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut scratch = Vec::new();
        for case in 0..400 {
            let len = [0, 1, 2, 63, 64, 500, 5000][case % 7];
            let groups = 1 + next(if case % 3 == 0 { 1 } else { 8 });
            let disorder = [0, 3, 1_000_000][case / 3 % 3];
            let mut clock = [0i64; 8];
            let hits: Vec<PendingHit> = (0..len)
                .map(|k| {
                    let g = next(groups) as usize;
                    clock[g] += next(5) as i64; // repeats: ties when the channel repeats too
                    let jitter = next(disorder + 1) as i64;
                    let unique_id = unique_id(g as u8 + 1, 1 + next(2) as u8, 11, next(3) as u8);
                    PendingHit {
                        ts: clock[g] - jitter,
                        unique_id,
                        unix_time: 0,
                        q_ke: k as f32, // tells equal keys apart
                        trigger_type: 0,
                        has_pixel: true,
                    }
                })
                .collect();
            let mut expected = hits.clone();
            expected.sort_by_key(|h| (h.ts, h.unique_id));
            let mut sorted = hits;
            sort_in_time_order(&mut sorted, &mut scratch);
            let order = |v: &[PendingHit]| v.iter().map(|h| h.q_ke).collect::<Vec<_>>();
            assert_eq!(
                order(&sorted),
                order(&expected),
                "case {case}: {len} hits, {groups} io_groups"
            );
        }
    }
}
