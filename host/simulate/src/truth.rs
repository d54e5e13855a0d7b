//! What the simulator put into a run, written beside the data as `<run>-truth.json`. Field
//! names follow the reference fixtures' truth files (../shared/fixtures), so the same physics
//! tests read both.

use std::collections::BTreeMap;

use serde::Serialize;

/// A channel as `[io_group, io_channel, chip_id, channel_id]`.
pub type ChannelKey = [u8; 4];

/// The whole truth of a simulated run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Truth {
    /// Generator name, version and settings.
    pub generator: serde_json::Value,
    /// Run number, duration and Unix times.
    pub run: RunTruth,
    /// Physics constants used.
    pub physics: PhysicsTruth,
    /// Channel faults.
    pub faults: FaultTruth,
    /// Row and word counts as a packet file of the run holds them.
    pub counts: CountTruth,
    /// The raw files written, in order.
    pub files: Vec<String>,
    /// Every simulated muon.
    pub tracks: Vec<TrackTruth>,
}

/// Run-level truth.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunTruth {
    /// Run number.
    pub run: u32,
    /// Seed of the random streams.
    pub seed: u64,
    /// Seconds of data.
    pub duration_s: u32,
    /// Unix time of tick 0 (a PPS edge).
    pub unix_start: u64,
    /// `unix_start + duration_s`.
    pub unix_end: u64,
    /// First and last Unix time of a message header.
    pub message_unix_min: u64,
    /// Last message Unix time.
    pub message_unix_max: u64,
}

/// Physics truth.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhysicsTruth {
    /// Electron lifetime, µs.
    pub electron_lifetime_us: f64,
    /// Drift velocity, mm/µs.
    pub drift_velocity_mm_per_us: f64,
    /// Full drift length, mm.
    pub max_drift_mm: f64,
    /// Full drift time, µs.
    pub max_drift_us: f64,
    /// Most probable dQ/dx before attenuation, ke⁻/mm (one Moyal draw per pixel crossing).
    pub dqdx_mpv_ke_per_mm: f64,
    /// Moyal width, ke⁻/mm.
    pub dqdx_moyal_scale_ke_per_mm: f64,
    /// Muon rate, Hz.
    pub muon_rate_hz: f64,
    /// Pedestal of every channel, mV (the calibration's default).
    pub pedestal_mv: f64,
}

/// Channel faults.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultTruth {
    /// Channels that never send data.
    pub dead_channels: Vec<ChannelKey>,
    /// Channels firing at `hot_rate_hz` with above-threshold charge.
    pub hot_channels: Vec<ChannelKey>,
    /// Hot-channel rate, Hz.
    pub hot_rate_hz: f64,
    /// Channels sending pedestal-level (periodic-trigger) packets at `noisy_rate_hz`.
    pub noisy_channels: Vec<ChannelKey>,
    /// Noisy-channel rate, Hz.
    pub noisy_rate_hz: f64,
    /// Data packets with one flipped bit (invalid parity).
    pub n_bad_parity: u64,
}

/// Counts of the rows a packet file of the run holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CountTruth {
    /// Rows by packet type ("0" data … "4" timestamp, "6" sync, "7" trigger).
    pub packet_rows_by_type: BTreeMap<String, u64>,
    /// Valid-parity data rows by FIFO flag value: {"local_fifo": {"0": n, …}, "shared_fifo": …}.
    pub fifo_flag_rows_valid_parity: BTreeMap<String, BTreeMap<String, u64>>,
    /// Data packets by origin: track, noise, hot.
    pub data_packets_by_origin: BTreeMap<String, u64>,
    /// Track packets not written because their channel is dead.
    pub track_packets_suppressed_dead: u64,
    /// PACMAN messages.
    pub messages: u64,
}

/// One muon.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrackTruth {
    /// Index in the run.
    pub id: u32,
    /// Crossing time: ticks since tick 0 of the run.
    pub t0_tick: u64,
    /// Unix second of t0.
    pub t0_unix_s: u64,
    /// Entry point in the active volume, mm.
    pub start_mm: [f64; 3],
    /// Exit point, mm.
    pub end_mm: [f64; 3],
    /// Length in the active volume, mm.
    pub length_mm: f64,
    /// Data packets it produced (after dead channels).
    pub n_data_packets: u64,
}
