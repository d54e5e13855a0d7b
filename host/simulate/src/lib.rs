//! larmon's own run generator: the detector in force (by default the real 2x2: four modules,
//! io_groups 1–8, the layouts_v5 tile swaps, module 3's 3.87975 mm pitch) crossed by cosmic
//! muons, with noise, hot and dead pixels, FIFO flags, parity errors, external triggers and
//! PPS, written in the real raw PACMAN HDF5 format the DAQ writes — plus the truth of what
//! went in. As on the real 2x2, a third of the chips are read on another UART of their tile
//! than the layout lists (truth channel keys use the layout's io_channel).
//!
//! The model (all our own, checked against the reference fixtures' statistics):
//! - muons with intensity ∝ cos²θ per solid angle through a plane above the module, one per
//!   external trigger, clipped to the active volume; stepped every ≤ 0.3 mm;
//! - dQ/dx drawn once per pixel crossing as MPV + width · Moyal, attenuated by
//!   exp(−t_drift / τ); drift time from the calibration's drift velocity;
//! - per pixel a 24-tick integration window and a 5 ke⁻ discriminator; ADC from the nominal
//!   gain, pedestal, VREF and VCM (the calibration's defaults, so `larmon run` needs no config);
//! - noisy channels send pedestal-level periodic-trigger packets, hot channels fire
//!   above threshold at a high rate, dead channels send nothing;
//! - the PACMAN side: one trigger word per muon on every io_group, a PPS sync word ('S',
//!   timestamp 9 999 999) and a heartbeat ('H') per second, data words with receipt timestamps
//!   50–400 ticks after the packet, messages of ≤ 256 words cut at second boundaries.
//!
//! Every random stream has its own seed, so changing one rate leaves the muons unchanged.

pub mod detector;
pub mod encode;
pub mod light;
pub mod truth;

use std::path::{Path, PathBuf};

use larmon_calibrate::DetectorConfig;
use larmon_ingest::write::RawFileWriter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal, Poisson};
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::encode::{DataPacket, data_word, message, sync_word, trigger_word};
use crate::truth::{ChannelKey, TrackTruth, Truth};

/// Clock ticks between PPS resets (10 MHz).
pub const PPS_TICKS: u64 = 10_000_000;
const TICK_US: f64 = 0.1;
const STEP_MM: f64 = 0.3;
const WINDOW_TICKS: u64 = 24;
const THRESHOLD_KE: f64 = 5.0;
const DQDX_CLIP_KE_PER_MM: (f64, f64) = (1.0, 40.0);
const ADC_NOISE_KE: f64 = 0.5;
const NOISE_PACKET_SIGMA_KE: f64 = 0.6;
const HOT_Q_MIN_KE: f64 = 5.0;
const HOT_Q_MEAN_ABOVE_KE: f64 = 2.5;
const RECEIPT_DELAY_TICKS: (u64, u64) = (50, 400);
const HEARTBEAT_OFFSET_TICKS: u64 = 5_000_000;
const EXTERNAL_TRIGGER: u8 = 2;
const PERIODIC_TRIGGER: u8 = 3;
const MAX_WORDS_PER_MESSAGE: usize = 256;
const T0_MIN_SEPARATION_TICKS: u64 = 4000;
const T0_START_MARGIN_TICKS: u64 = 1000;
const T0_END_MARGIN_TICKS: u64 = 3000;
const MIN_TRACK_LENGTH_MM: f64 = 30.0;
const TRACK_PLANE_MARGIN_MM: f64 = 400.0;

/// What to simulate. Every field has a 2x2-like default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Run number (goes into the file names).
    pub run: u32,
    /// Seed of every random stream.
    pub seed: u64,
    /// Seconds of data (whole PPS periods).
    pub duration_s: u32,
    /// Unix time of the first PPS edge.
    pub unix_start: u64,
    /// Triggered cosmic muons per second.
    pub muon_rate_hz: f64,
    /// Electron lifetime, µs.
    pub electron_lifetime_us: f64,
    /// Most probable dQ/dx before attenuation, ke⁻/mm.
    pub dqdx_mpv_ke_per_mm: f64,
    /// Width of its Moyal fluctuation, ke⁻/mm.
    pub dqdx_moyal_scale_ke_per_mm: f64,
    /// Fraction of channels that are noisy.
    pub noisy_fraction: f64,
    /// Packet rate of a noisy channel, Hz.
    pub noisy_rate_hz: f64,
    /// Number of hot channels.
    pub hot_channels: usize,
    /// Packet rate of a hot channel, Hz.
    pub hot_rate_hz: f64,
    /// Number of dead channels.
    pub dead_channels: usize,
    /// Fraction of data packets with one flipped bit.
    pub bad_parity_fraction: f64,
    /// Data packets with FIFO flags: local half, local full, shared half, shared full.
    pub fifo_flags: [usize; 4],
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            run: 1,
            seed: 1,
            duration_s: 10,
            unix_start: 1_678_848_000,
            muon_rate_hz: 60.0,
            electron_lifetime_us: 2200.0,
            dqdx_mpv_ke_per_mm: 5.0,
            dqdx_moyal_scale_ke_per_mm: 0.35,
            noisy_fraction: 0.05,
            noisy_rate_hz: 0.5,
            hot_channels: 5,
            hot_rate_hz: 200.0,
            dead_channels: 20,
            bad_parity_fraction: 0.001,
            fifo_flags: [12, 4, 8, 3],
        }
    }
}

/// Why a simulation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The settings contradict each other.
    #[error("invalid simulation settings: {0}")]
    Settings(String),
    /// The detector layout could not be read.
    #[error(transparent)]
    Detector(#[from] larmon_calibrate::CalibrationError),
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] larmon_ingest::IngestError),
    /// Writing the truth failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One PACMAN message of the run, in DAQ order.
#[derive(Clone, Debug)]
pub struct Message {
    /// IO group it was read from.
    pub io_group: u8,
    /// Second of the run (0-based) its last word belongs to.
    pub second: u32,
    /// The bytes: header and words.
    pub bytes: Vec<u8>,
}

/// A simulated run: its messages and its truth.
#[derive(Clone, Debug)]
pub struct SimulatedRun {
    /// Messages in the order a DAQ writes them.
    pub messages: Vec<Message>,
    /// What went in.
    pub truth: Truth,
}

/// A data packet before encoding.
#[derive(Clone, Copy)]
struct Hit {
    channel: u32,
    tick: u64,
    charge_ke: f64,
    origin: Origin,
    track: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Track,
    Noise,
    Hot,
}

/// An independent random stream of the run.
fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

fn settings(condition: bool, message: impl FnOnce() -> String) -> Result<(), SimulationError> {
    if condition { Ok(()) } else { Err(SimulationError::Settings(message())) }
}

/// Simulates a run on the detector of `detector_config` (its first module's layout).
pub fn simulate(
    config: &SimulationConfig,
    detector_config: &DetectorConfig,
) -> Result<SimulatedRun, SimulationError> {
    settings(config.duration_s >= 1, || "the duration must be at least 1 s".into())?;
    settings(config.electron_lifetime_us > 0.0, || "the electron lifetime must be > 0".into())?;
    for (name, value) in [
        ("muon rate", config.muon_rate_hz),
        ("noisy rate", config.noisy_rate_hz),
        ("hot rate", config.hot_rate_hz),
    ] {
        settings(value.is_finite() && value >= 0.0, || format!("the {name} must be ≥ 0"))?;
    }
    for (name, value) in [
        ("noisy fraction", config.noisy_fraction),
        ("bad-parity fraction", config.bad_parity_fraction),
    ] {
        settings((0.0..=1.0).contains(&value), || format!("the {name} must be in [0, 1]"))?;
    }
    let geometry = detector_config.geometry()?;
    let detector = Detector::new(&geometry);
    let channel_count = detector.channels.len();
    let n_noisy = (config.noisy_fraction * channel_count as f64).round() as usize;
    settings(config.dead_channels + config.hot_channels + n_noisy <= channel_count, || {
        format!("more dead, hot and noisy channels than the {channel_count} the layout has")
    })?;
    let velocity = detector_config.drift_velocity();
    let duration_ticks = u64::from(config.duration_s) * PPS_TICKS;

    // Muon crossing times: sorted, at least 4000 ticks apart (> 2 full drifts).
    let n_tracks = (config.muon_rate_hz * f64::from(config.duration_s)).round() as u64;
    let free = (duration_ticks - T0_START_MARGIN_TICKS - T0_END_MARGIN_TICKS)
        .checked_sub(n_tracks * T0_MIN_SEPARATION_TICKS)
        .filter(|free| *free > 0)
        .ok_or_else(|| {
            SimulationError::Settings(format!(
                "{n_tracks} muons do not fit in {} s with {T0_MIN_SEPARATION_TICKS} ticks between them",
                config.duration_s
            ))
        })?;
    let mut rng_t0 = stream(config.seed, 1);
    let mut offsets: Vec<u64> = (0..n_tracks).map(|_| rng_t0.random_range(0..free)).collect();
    offsets.sort_unstable();
    let t0s: Vec<u64> = offsets
        .iter()
        .enumerate()
        .map(|(i, u)| T0_START_MARGIN_TICKS + u + i as u64 * T0_MIN_SEPARATION_TICKS)
        .collect();

    // Tracks → charge deposits → discriminator.
    let (mut rng_geo, mut rng_q) = (stream(config.seed, 2), stream(config.seed, 3));
    let mut deposits: Vec<(u32, u64, f64, u32)> = Vec::new();
    let mut tracks = Vec::with_capacity(t0s.len());
    for (id, &t0) in t0s.iter().enumerate() {
        let (start, end) = track_line(&detector, &mut rng_geo);
        let track = deposit_track(
            &detector,
            config,
            velocity,
            (start, end),
            t0,
            id as u32,
            &mut rng_q,
            &mut deposits,
        );
        tracks.push(TrackTruth {
            id: id as u32,
            t0_tick: t0,
            t0_unix_s: config.unix_start + t0 / PPS_TICKS,
            start_mm: start.map(round3),
            end_mm: end.map(round3),
            length_mm: round3(track),
            n_data_packets: 0,
        });
    }
    let mut hits = discriminate(deposits);

    // Channel faults from one permutation: dead, hot, noisy are disjoint.
    let mut rng_select = stream(config.seed, 4);
    let chosen = rand::seq::index::sample(
        &mut rng_select,
        channel_count,
        config.dead_channels + config.hot_channels + n_noisy,
    )
    .into_vec();
    let (dead, rest) = chosen.split_at(config.dead_channels);
    let (hot, noisy) = rest.split_at(config.hot_channels);
    let mut is_dead = vec![false; channel_count];
    for &c in dead {
        is_dead[c] = true;
    }
    let before = hits.len();
    hits.retain(|h| !is_dead[h.channel as usize]);
    let suppressed = (before - hits.len()) as u64;

    let last_noise_tick = duration_ticks - 1000;
    let mut rng_noise = stream(config.seed, 5);
    let noise_charge = Normal::new(0.0, NOISE_PACKET_SIGMA_KE).expect("sigma > 0");
    push_random_hits(
        &mut hits,
        noisy,
        config.noisy_rate_hz,
        config,
        last_noise_tick,
        Origin::Noise,
        &mut rng_noise,
        |r| noise_charge.sample(r),
    );
    let mut rng_hot = stream(config.seed, 6);
    let above = Exp::new(1.0 / HOT_Q_MEAN_ABOVE_KE).expect("rate > 0");
    push_random_hits(
        &mut hits,
        hot,
        config.hot_rate_hz,
        config,
        last_noise_tick,
        Origin::Hot,
        &mut rng_hot,
        |r| HOT_Q_MIN_KE + above.sample(r),
    );
    let mut rng_adc = stream(config.seed, 7);
    let adc_noise = Normal::new(0.0, ADC_NOISE_KE).expect("sigma > 0");
    for hit in hits.iter_mut().filter(|h| h.origin != Origin::Noise) {
        hit.charge_ke += adc_noise.sample(&mut rng_adc);
    }
    hits.sort_by_key(|h| h.tick); // stable: ties keep track, noise, hot order

    // Words: packets with FIFO flags and parity faults, then PACMAN words per io_group.
    let mut rng_fault = stream(config.seed, 8);
    let mut rng_delay = stream(config.seed, 9);
    let flagged_total: usize = config.fifo_flags.iter().sum();
    let flagged =
        rand::seq::index::sample(&mut rng_fault, hits.len(), flagged_total.min(hits.len()))
            .into_vec();
    let mut fifo = vec![(0u8, 0u8); hits.len()];
    let mut k = 0;
    for (kind, &count) in config.fifo_flags.iter().enumerate() {
        for &i in flagged.iter().skip(k).take(count) {
            let value = if kind % 2 == 0 { 1 } else { 2 };
            if kind < 2 { fifo[i].0 = value } else { fifo[i].1 = value }
        }
        k += count;
    }
    let charge = &detector_config.charge;
    let adc_per_mv = 256.0 / (charge.vref_mv - charge.vcm_mv);
    let mut counts = truth::CountTruth::default();
    for column in ["local_fifo", "shared_fifo"] {
        counts
            .fifo_flag_rows_valid_parity
            .insert(column.into(), (0..4).map(|value| (value.to_string(), 0)).collect());
    }
    let mut n_bad_parity = 0;
    let mut entries: Vec<WordEntry> = Vec::with_capacity(hits.len() + 4 * t0s.len());
    for (i, hit) in hits.iter().enumerate() {
        let channel = &detector.channels[hit.channel as usize];
        let adc = ((hit.charge_ke * charge.gain_mv_per_ke + charge.pedestal_mv - charge.vcm_mv)
            * adc_per_mv)
            .round()
            .clamp(0.0, 255.0) as u8;
        let packet = DataPacket {
            chip_id: channel.chip_id,
            channel_id: channel.channel_id,
            timestamp: (hit.tick % PPS_TICKS) as u32,
            dataword: adc,
            trigger_type: if hit.origin == Origin::Noise { PERIODIC_TRIGGER } else { 0 },
            local_fifo: fifo[i].0,
            shared_fifo: fifo[i].1,
        };
        let mut word = packet.word();
        let faulty = fifo[i] == (0, 0) && rng_fault.random_bool(config.bad_parity_fraction);
        if faulty {
            word ^= 1 << rng_fault.random_range(0..64);
            n_bad_parity += 1;
        }
        *counts.packet_rows_by_type.entry((word & 3).to_string()).or_default() += 1;
        if !faulty && word & 3 == 0 {
            let (local, shared) = ((word >> 58) & 3, (word >> 60) & 3);
            let by_flag = &mut counts.fifo_flag_rows_valid_parity;
            *by_flag
                .entry("local_fifo".into())
                .or_default()
                .entry(local.to_string())
                .or_default() += 1;
            *by_flag
                .entry("shared_fifo".into())
                .or_default()
                .entry(shared.to_string())
                .or_default() += 1;
        }
        let origin = match hit.origin {
            Origin::Track => {
                tracks[hit.track as usize].n_data_packets += 1;
                "track"
            }
            Origin::Noise => "noise",
            Origin::Hot => "hot",
        };
        *counts.data_packets_by_origin.entry(origin.into()).or_default() += 1;
        let receipt =
            hit.tick + rng_delay.random_range(RECEIPT_DELAY_TICKS.0..=RECEIPT_DELAY_TICKS.1);
        entries.push(WordEntry {
            time: receipt,
            order: 2,
            io_group: channel.io_group,
            word: data_word(
                detector.read_io_channel[hit.channel as usize],
                (receipt % PPS_TICKS) as u32,
                word,
            ),
        });
    }
    let mut io_groups: Vec<u8> = detector.channels.iter().map(|c| c.io_group).collect();
    io_groups.sort_unstable();
    io_groups.dedup();
    for &io_group in &io_groups {
        for &t0 in &t0s {
            let word = trigger_word(EXTERNAL_TRIGGER, (t0 % PPS_TICKS) as u32);
            entries.push(WordEntry { time: t0, order: 1, io_group, word });
        }
        for second in 0..u64::from(config.duration_s) {
            if second > 0 {
                let word = sync_word(b'S', 0, (PPS_TICKS - 1) as u32);
                entries.push(WordEntry { time: second * PPS_TICKS, order: 0, io_group, word });
            }
            let time = second * PPS_TICKS + HEARTBEAT_OFFSET_TICKS;
            let word = sync_word(b'H', 0, HEARTBEAT_OFFSET_TICKS as u32);
            entries.push(WordEntry { time, order: 1, io_group, word });
        }
    }
    let triggers = (io_groups.len() * t0s.len()) as u64;
    let syncs = io_groups.len() as u64 * (2 * u64::from(config.duration_s) - 1);
    let messages = pack_messages(entries, config.unix_start);
    counts.packet_rows_by_type.insert("4".into(), messages.len() as u64);
    counts.packet_rows_by_type.insert("6".into(), syncs);
    counts.packet_rows_by_type.insert("7".into(), triggers);
    counts.track_packets_suppressed_dead = suppressed;
    counts.messages = messages.len() as u64;

    let key = |c: &usize| -> ChannelKey {
        let c = &detector.channels[*c];
        [c.io_group, c.io_channel, c.chip_id, c.channel_id]
    };
    let sorted_keys = |list: &[usize]| {
        let mut keys: Vec<ChannelKey> = list.iter().map(key).collect();
        keys.sort_unstable();
        keys
    };
    let unix = |m: &Message| config.unix_start + u64::from(m.second);
    let drift_length = detector.tpcs.first().map_or(0.0, |t| t.drift_length_mm);
    let truth = Truth {
        generator: serde_json::json!({
            "program": "larmon simulate",
            "version": env!("CARGO_PKG_VERSION"),
            "config": config,
        }),
        run: truth::RunTruth {
            run: config.run,
            seed: config.seed,
            duration_s: config.duration_s,
            unix_start: config.unix_start,
            unix_end: config.unix_start + u64::from(config.duration_s),
            message_unix_min: messages.iter().map(unix).min().unwrap_or(config.unix_start),
            message_unix_max: messages.iter().map(unix).max().unwrap_or(config.unix_start),
        },
        physics: truth::PhysicsTruth {
            electron_lifetime_us: config.electron_lifetime_us,
            drift_velocity_mm_per_us: velocity,
            max_drift_mm: drift_length,
            max_drift_us: drift_length / velocity,
            dqdx_mpv_ke_per_mm: config.dqdx_mpv_ke_per_mm,
            dqdx_moyal_scale_ke_per_mm: config.dqdx_moyal_scale_ke_per_mm,
            muon_rate_hz: config.muon_rate_hz,
            pedestal_mv: charge.pedestal_mv,
        },
        faults: truth::FaultTruth {
            dead_channels: sorted_keys(dead),
            hot_channels: sorted_keys(hot),
            hot_rate_hz: config.hot_rate_hz,
            noisy_channels: sorted_keys(noisy),
            noisy_rate_hz: config.noisy_rate_hz,
            n_bad_parity,
        },
        counts,
        files: Vec::new(),
        tracks,
    };
    Ok(SimulatedRun { messages, truth })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A straight muon line through the active box: (entry, exit), at least 30 mm inside.
fn track_line(detector: &Detector, rng: &mut ChaCha8Rng) -> ([f64; 3], [f64; 3]) {
    let (low, high) = (detector.box_min, detector.box_max);
    let centre: [f64; 3] = std::array::from_fn(|i| (low[i] + high[i]) / 2.0);
    loop {
        // Intensity ∝ cos²θ per solid angle: cosθ = u^(1/3); muons go down (−y).
        let cos_t: f64 = rng.random::<f64>().cbrt();
        let sin_t = (1.0 - cos_t * cos_t).max(0.0).sqrt();
        let phi = rng.random::<f64>() * std::f64::consts::TAU;
        let d = [sin_t * phi.cos(), -cos_t, sin_t * phi.sin()];
        let mut p = centre;
        for axis in [0, 2] {
            let half = (high[axis] - low[axis]) / 2.0 + TRACK_PLANE_MARGIN_MM;
            p[axis] = centre[axis] + rng.random_range(-half..half);
        }
        let (mut s0, mut s1) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut inside = true;
        for i in 0..3 {
            if d[i].abs() < 1e-12 {
                inside &= (low[i]..=high[i]).contains(&p[i]);
                continue;
            }
            let (a, b) = ((low[i] - p[i]) / d[i], (high[i] - p[i]) / d[i]);
            s0 = s0.max(a.min(b));
            s1 = s1.min(a.max(b));
        }
        if !inside || s1 - s0 < MIN_TRACK_LENGTH_MM {
            continue;
        }
        let at = |s: f64| std::array::from_fn(|i| p[i] + s * d[i]);
        return (at(s0), at(s1));
    }
}

/// Steps along a track and appends its charge (channel, tick, ke⁻, track) arriving at the
/// anode; returns the track length.
#[allow(clippy::too_many_arguments)]
fn deposit_track(
    detector: &Detector,
    config: &SimulationConfig,
    velocity: f64,
    (start, end): ([f64; 3], [f64; 3]),
    t0: u64,
    id: u32,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<(u32, u64, f64, u32)>,
) -> f64 {
    let delta: [f64; 3] = std::array::from_fn(|i| end[i] - start[i]);
    let length = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
    let steps = (length / STEP_MM).ceil().max(1.0) as usize;
    let ds = length / steps as f64;
    let standard = Normal::new(0.0, 1.0).expect("unit normal");
    let mm_per_tick = velocity * TICK_US;
    let (mut last_pixel, mut dqdx) = (u32::MAX, 0.0);
    for k in 0..steps {
        let f = (k as f64 + 0.5) / steps as f64;
        let point = std::array::from_fn(|i| start[i] + f * delta[i]);
        let Some((pixel, drift)) = detector.pixel_at(point) else {
            last_pixel = u32::MAX;
            continue;
        };
        if pixel != last_pixel {
            // A new pixel crossing: one Moyal draw (X = −ln Z², Z ~ N(0, 1)).
            let z: f64 = standard.sample(rng);
            let moyal = -(z * z).max(1e-300).ln();
            dqdx = (config.dqdx_mpv_ke_per_mm + config.dqdx_moyal_scale_ke_per_mm * moyal)
                .clamp(DQDX_CLIP_KE_PER_MM.0, DQDX_CLIP_KE_PER_MM.1);
            last_pixel = pixel;
        }
        let t_us = drift / velocity;
        let charge = ds * dqdx * (-t_us / config.electron_lifetime_us).exp();
        out.push((pixel, t0 + (drift / mm_per_tick).floor() as u64, charge, id));
    }
    length
}

/// The per-pixel self-trigger: charge integrated over a 24-tick window from the first arrival;
/// a packet at the tick the sum crosses 5 ke⁻ carrying the window's charge; sub-threshold
/// charge is carried into the next window.
fn discriminate(mut deposits: Vec<(u32, u64, f64, u32)>) -> Vec<Hit> {
    deposits.sort_by_key(|d| (d.0, d.1));
    let mut hits = Vec::new();
    let mut i = 0;
    while i < deposits.len() {
        let pixel = deposits[i].0;
        let mut carry = 0.0;
        while i < deposits.len() && deposits[i].0 == pixel {
            let window_end = deposits[i].1 + WINDOW_TICKS;
            let mut sum = carry;
            let mut crossed = None;
            let mut track = deposits[i].3;
            while i < deposits.len() && deposits[i].0 == pixel && deposits[i].1 < window_end {
                sum += deposits[i].2;
                track = deposits[i].3;
                if crossed.is_none() && sum > THRESHOLD_KE {
                    crossed = Some(deposits[i].1);
                }
                i += 1;
            }
            match crossed {
                Some(tick) => {
                    hits.push(Hit {
                        channel: pixel,
                        tick,
                        charge_ke: sum,
                        origin: Origin::Track,
                        track,
                    });
                    carry = 0.0;
                }
                None => carry = sum,
            }
        }
    }
    hits.sort_by_key(|h| h.tick);
    hits
}

/// Poisson-many packets per channel at uniform times.
#[allow(clippy::too_many_arguments)]
fn push_random_hits(
    hits: &mut Vec<Hit>,
    channels: &[usize],
    rate_hz: f64,
    config: &SimulationConfig,
    last_tick: u64,
    origin: Origin,
    rng: &mut ChaCha8Rng,
    mut charge: impl FnMut(&mut ChaCha8Rng) -> f64,
) {
    let mean = rate_hz * f64::from(config.duration_s);
    let Ok(poisson) = Poisson::new(mean) else { return }; // rate 0: none
    for &channel in channels {
        let n = poisson.sample(rng) as u64;
        for _ in 0..n {
            let tick = rng.random_range(0..last_tick);
            hits.push(Hit {
                channel: channel as u32,
                tick,
                charge_ke: charge(rng),
                origin,
                track: 0,
            });
        }
    }
}

/// A PACMAN word waiting to be put in a message.
struct WordEntry {
    /// When the PACMAN sees it, ticks since the run start.
    time: u64,
    /// Order among words of the same tick: PPS first, then triggers/heartbeats, then data.
    order: u8,
    io_group: u8,
    word: [u8; 16],
}

/// Cuts each io_group's words into messages (≤ 256 words, never across a second) and orders
/// the messages of all io_groups by the time of their last word.
fn pack_messages(mut entries: Vec<WordEntry>, unix_start: u64) -> Vec<Message> {
    entries.sort_by_key(|e| (e.io_group, e.time, e.order));
    let mut keyed: Vec<(u64, Message)> = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let (group, second) = (entries[start].io_group, entries[start].time / PPS_TICKS);
        let mut end = start;
        while end < entries.len()
            && end - start < MAX_WORDS_PER_MESSAGE
            && entries[end].io_group == group
            && entries[end].time / PPS_TICKS == second
        {
            end += 1;
        }
        let words: Vec<[u8; 16]> = entries[start..end].iter().map(|e| e.word).collect();
        let bytes = message((unix_start + second) as u32, &words);
        keyed.push((
            entries[end - 1].time,
            Message { io_group: group, second: second as u32, bytes },
        ));
        start = end;
    }
    keyed.sort_by_key(|(time, m)| (*time, m.io_group));
    keyed.into_iter().map(|(_, m)| m).collect()
}

impl SimulatedRun {
    /// Name of part `part` of a run, as the 2x2 DAQ names raw files:
    /// `binary-<run, 7 digits>-<UTC start, YYYY_MM_DD_HH_MM_SS>_UTC.h5`.
    pub fn file_name(run: u32, unix_time: u64) -> String {
        format!("binary-{run:07}-{}_UTC.h5", utc_stamp(unix_time))
    }

    /// Writes the run as `files` raw files (consecutive whole seconds each) into `dir`, with the
    /// truth beside them as `binary-<run>-truth.json`. With `live`, files are written the way
    /// the DAQ writes them (SWMR, flushed after every second of data) and `after_second` is
    /// called after each second, e.g. to pace the writing in real time.
    pub fn write(
        &mut self,
        dir: &Path,
        files: usize,
        live: bool,
        mut after_second: impl FnMut(&Path, u32),
    ) -> Result<Vec<PathBuf>, SimulationError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let run = &self.truth.run;
        let seconds = run.duration_s as usize;
        let files = files.clamp(1, seconds);
        let mut paths = Vec::new();
        let mut next = 0;
        for part in 0..files {
            let (first, last) = (part * seconds / files, (part + 1) * seconds / files);
            let created = run.unix_start + first as u64;
            let path = dir.join(Self::file_name(run.run, created));
            let mut writer = if live {
                RawFileWriter::create_live(&path, created as f64, true)?
            } else {
                RawFileWriter::create(&path, created as f64, true)?
            };
            for second in first..last {
                let begin = next;
                while next < self.messages.len() && self.messages[next].second as usize <= second {
                    next += 1;
                }
                writer.append(
                    self.messages[begin..next].iter().map(|m| (m.io_group, m.bytes.as_slice())),
                )?;
                after_second(&path, second as u32);
            }
            writer.finish((run.unix_start + last as u64) as f64)?;
            paths.push(path);
        }
        self.truth.files = paths
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into())
            .collect();
        let truth_path = dir.join(format!("binary-{:07}-truth.json", run.run));
        let text = serde_json::to_string_pretty(&self.truth).expect("truth serialises");
        std::fs::write(&truth_path, text).map_err(io_error(&truth_path))?;
        Ok(paths)
    }
}

/// The error of an I/O operation on `path`, for `map_err`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SimulationError + use<> {
    let path = path.to_path_buf();
    move |source| SimulationError::Io { path, source }
}

/// `YYYY_MM_DD_HH_MM_SS` of a Unix time (UTC), as the DAQ names its files.
fn utc_stamp(unix: u64) -> String {
    let time = i64::try_from(unix).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    time.map_or_else(|| format!("unix_{unix}"), |t| t.format("%Y_%m_%d_%H_%M_%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "1970_01_01_00_00_00");
        assert_eq!(utc_stamp(1_678_848_000), "2023_03_15_02_40_00");
        assert_eq!(utc_stamp(951_782_400), "2000_02_29_00_00_00");
        assert_eq!(utc_stamp(1_720_463_869), "2024_07_08_18_37_49");
        assert_eq!(utc_stamp(u64::MAX), format!("unix_{}", u64::MAX));
    }

    #[test]
    fn discriminator_fires_once_per_window_and_carries_subthreshold_charge() {
        let deposits = vec![
            (7, 100, 3.0, 0),
            (7, 110, 3.0, 0), // crosses 5 ke at tick 110, window sum 6
            (7, 200, 2.0, 1),
            (7, 400, 4.0, 1), // carried 2 + 4 = 6 > 5 at tick 400
            (9, 50, 4.9, 2),  // never crosses
        ];
        let hits = discriminate(deposits);
        let summary: Vec<(u32, u64, f64)> =
            hits.iter().map(|h| (h.channel, h.tick, h.charge_ke)).collect();
        assert_eq!(summary, vec![(7, 110, 6.0), (7, 400, 6.0)]);
    }

    #[test]
    fn a_run_is_reproducible_and_counts_add_up() {
        let config = SimulationConfig { duration_s: 2, muon_rate_hz: 20.0, ..Default::default() };
        let a = simulate(&config, &DetectorConfig::default()).unwrap();
        let b = simulate(&config, &DetectorConfig::default()).unwrap();
        assert_eq!(a.messages.len(), b.messages.len());
        assert!(a.messages.iter().zip(&b.messages).all(|(x, y)| x.bytes == y.bytes));
        assert_eq!(a.truth.tracks.len(), 40);
        assert_eq!(a.truth.faults.hot_channels.len(), 5);
        assert_eq!(a.truth.faults.dead_channels.len(), 20);
        let by_origin = &a.truth.counts.data_packets_by_origin;
        let data: u64 = by_origin.values().sum();
        let words: usize = a.messages.iter().map(|m| (m.bytes.len() - 8) / 16).sum();
        // Data words + the 2x2's 8 io_groups × (40 triggers + 1 PPS + 2 heartbeats).
        assert_eq!(words as u64, data + 8 * (40 + 1 + 2));
        let io_groups: std::collections::BTreeSet<u8> =
            a.messages.iter().map(|m| m.io_group).collect();
        assert_eq!(io_groups.into_iter().collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
        assert!(by_origin["track"] > 40 * 50, "{by_origin:?}");
        let changed = SimulationConfig { noisy_rate_hz: 2.0, ..config };
        let c = simulate(&changed, &DetectorConfig::default()).unwrap();
        assert_eq!(c.truth.tracks.len(), a.truth.tracks.len());
        assert!(c.truth.tracks.iter().zip(&a.truth.tracks).all(|(x, y)| x.start_mm == y.start_mm));
    }
}
