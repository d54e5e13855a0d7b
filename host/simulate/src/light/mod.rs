//! The light readout (LRS) of a simulated run: the same muons seen by the ArcLight and LCM
//! detectors on the TPC walls, written as the 2x2 light DAQ's MPD file
//! (`mpd_run_sim_rctl_<run>_p0.data`) with its truth (`…-light-truth.json`, the keys of the
//! fixtures' light truth, so the same tests read both).
//!
//! The model is the reference fixtures' ("Light model" in ../shared/fixtures/README.md), our
//! own, on every TPC the detector has: light TPC t is the geometry's TPC t+1 (module m: 2m, 2m+1),
//! 16 detectors per TPC on the walls x = x_min (det 0–7) and x = x_max (det 8–15), stacked in y
//! (ACL, LCM, LCM, LCM, ACL, LCM, LCM, LCM; heights 3:1:1:1), spanning the drift length;
//! 5000 photons/mm × solid angle / 4π in 5 mm steps inside the same TPC (cathode opaque);
//! PDE 0.002 (ACL), 0.006 (LCM); Poisson photo-electrons per SiPM input; 16 ADC16 per p.e. ×
//! a relative gain N(1, 0.08); a 10 ns rise, 40 ns (30 %) + 1.5 µs (70 %) pulse; baselines
//! N(−28000, 200) ADC16, white noise 8–16 ADC16; 160 samples of 16 ns, onset at sample 96.
//! Faults: dead inputs (flat), noisy inputs (noise ×10), saturating inputs (gain ×30, drawn
//! among LCM inputs that then clip in ≥ 2 events), and 2 % of events with one board missing.
//! Which inputs exist and which detector each sees come from the light channel map in force.

pub mod mpd;

use std::path::{Path, PathBuf};

use larmon_calibrate::DetectorConfig;
use larmon_ingest::light::TAI_MINUS_UTC_S;
use larmon_ingest::light::channel_map::{BOARDS, ChannelMap, DetType};
use rand::Rng;
use rand_distr::{Distribution, Normal, Poisson};
use serde::Serialize;

use crate::detector::Detector;
use crate::{SimulatedRun, SimulationError, io_error, stream};
use mpd::{BoardData, MpdWriter};

/// Samples per waveform.
pub const SAMPLES: usize = 160;
/// Sample period, ns.
pub const SAMPLE_NS: f64 = 16.0;
/// Sample of the pulse onset (before the phase).
pub const TRIGGER_SAMPLE: usize = 96;
/// Serial numbers of the 8 ADC64 boards, in board order (ndlar_flow's 2x2 `sn_table`).
pub const SERIALS: [u32; 8] = [
    0x0cd9_4138,
    0x0cd8_d648,
    0x2650_b3ff,
    0x264b_d8ff,
    0x0cd8_d636,
    0x2651_7dff,
    0x0cd9_3db0,
    0x25b7_71ff,
];
const TOP_RAIL: i32 = 32764;
const BOTTOM_RAIL: i32 = -32768;
const LIGHT_YIELD_PER_MM: f64 = 5000.0;
const STEP_MM: f64 = 5.0;
const PDE_ACL: f64 = 0.002;
const PDE_LCM: f64 = 0.006;
const SPE_PEAK_ADC16: f64 = 16.0;
const GAIN_SIGMA: f64 = 0.08;
const BASELINE_MEAN: f64 = -28000.0;
const BASELINE_SIGMA: f64 = 200.0;
const NOISE_RANGE: (f64, f64) = (8.0, 16.0);
const NOISY_FACTOR: f64 = 10.0;
const SATURATING_GAIN: f64 = 30.0;
const TAU_RISE_NS: f64 = 10.0;
const TAU_FAST_NS: f64 = 40.0;
const TAU_SLOW_NS: f64 = 1500.0;
const FAST_FRACTION: f64 = 0.3;
/// Heights of the 8 detector slots of a wall, bottom to top.
const SLOT_HEIGHTS: [f64; 8] = [3.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0];

/// What to simulate of the light readout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LightConfig {
    /// Muons with t0 in this window (seconds after the run start) get a light event; `None`:
    /// every muon of the run.
    pub window_s: Option<(f64, f64)>,
    /// Dead inputs.
    pub dead_channels: usize,
    /// Noisy inputs.
    pub noisy_channels: usize,
    /// Saturating inputs (at most this many: only inputs that then clip twice qualify).
    pub saturating_channels: usize,
    /// Fraction of events with one board missing.
    pub missing_board_fraction: f64,
}

impl Default for LightConfig {
    fn default() -> Self {
        Self {
            window_s: None,
            dead_channels: 4,
            noisy_channels: 4,
            saturating_channels: 3,
            missing_board_fraction: 0.02,
        }
    }
}

/// One input of the light system as simulated.
#[derive(Clone, Debug, Serialize)]
pub struct LightChannelTruth {
    /// Board index.
    pub adc: u8,
    /// Input.
    pub channel: u8,
    /// Board serial number.
    pub serial: String,
    /// Light TPC (0-based).
    pub tpc: u8,
    /// Detector of the TPC.
    pub det: u8,
    /// `ACL` or `LCM`.
    pub det_type: DetType,
    /// ok, dead, noisy, saturating; `no_light` for an input whose TPC the detector lacks.
    pub status: &'static str,
    /// Baseline, ADC16.
    pub baseline_adc16: f64,
    /// Noise RMS, ADC16 (0 for a dead input).
    pub noise_rms_adc16: f64,
    /// Relative gain (× the saturating factor; 0 for dead).
    pub gain_rel: f64,
    /// The constant a dead input reads, ADC16.
    pub dead_level_adc16: i32,
}

/// One light event.
#[derive(Clone, Debug, Serialize)]
pub struct LightEventTruth {
    /// Index in the file.
    pub index: u32,
    /// Event number written.
    pub event_number: u32,
    /// The muon (index into the run truth's tracks).
    pub track_id: u32,
    /// t0 of the muon, ticks since the run start.
    pub t0_tick: u64,
    /// Unix time, ms.
    pub unix_ms: u64,
    /// TAI seconds.
    pub tai_s: u64,
    /// Nanoseconds in the second (= t0 mod 1 s × 100).
    pub tai_ns: u64,
    /// Sampling phase, ns.
    pub phase_ns: f64,
    /// Onset in samples (96 + phase / 16).
    pub onset_sample: f64,
    /// Largest template value at the sample times.
    pub template_max: f64,
    /// Sum of the template over the samples.
    pub template_sum: f64,
    /// Track length in each TPC that saw it, `[tpc, mm]`.
    pub length_in_tpc_mm: Vec<(u8, f64)>,
    /// Missing board, if any.
    pub missing_board: Option<u8>,
    /// Boards that sent data.
    pub boards_present: Vec<u8>,
    /// Photo-electrons per input of `event_channel_order`.
    pub pe: Vec<u32>,
    /// Noiseless peak per input of `event_channel_order`, ADC16.
    pub peak_adc16: Vec<f64>,
}

/// Channel faults of the light readout.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LightFaults {
    /// `[adc, channel]`.
    pub dead_channels: Vec<[u8; 2]>,
    /// `[adc, channel]`, noise × `noisy_factor`.
    pub noisy_channels: Vec<[u8; 2]>,
    /// Noise factor of a noisy input.
    pub noisy_factor: f64,
    /// `[adc, channel]`, gain × `saturating_gain_factor`.
    pub saturating_channels: Vec<[u8; 2]>,
    /// Gain factor of a saturating input.
    pub saturating_gain_factor: f64,
    /// `[event index, adc, serial]`.
    pub missing_board_events: Vec<(u32, u8, u32)>,
    /// `[event index, adc, channel, samples at the top rail]`.
    pub clipped: Vec<(u32, u8, u8, u32)>,
    /// Inputs with at least one clipped waveform, `[adc, channel]`.
    pub clipping_channels: Vec<[u8; 2]>,
}

/// The whole light truth.
#[derive(Clone, Debug, Serialize)]
pub struct LightTruth {
    /// Generator and settings.
    pub generator: serde_json::Value,
    /// Files written.
    pub files: Vec<String>,
    /// Run, window, event rule.
    pub run: serde_json::Value,
    /// Samples, timestamps.
    pub daq: serde_json::Value,
    /// The model's parameters.
    pub light_model: serde_json::Value,
    /// Faults.
    pub faults: LightFaults,
    /// Every input read out.
    pub channel_map: Vec<LightChannelTruth>,
    /// Order of `pe` and `peak_adc16` in the events: `[adc, channel]`.
    pub event_channel_order: Vec<[u8; 2]>,
    /// One record per event.
    pub events: Vec<LightEventTruth>,
}

/// A simulated light run, ready to write.
pub struct SimulatedLight {
    /// What went in.
    pub truth: LightTruth,
    run: u32,
    seed: u64,
}

/// A wall detector: a rectangle on the plane x = `wall_x` (y and z ranges).
struct WallDetector {
    tpc: usize,
    wall_x: f64,
    y: (f64, f64),
    z: (f64, f64),
    pde: f64,
    /// Indices into the channel list of the inputs that read it.
    inputs: Vec<usize>,
}

/// Solid angle of the rectangle [u1, u2] × [v1, v2] on a plane at distance `d` from the point
/// (u, v relative to the point's foot on the plane).
fn rectangle_solid_angle(d: f64, (u1, u2): (f64, f64), (v1, v2): (f64, f64)) -> f64 {
    let d = d.max(1e-6);
    let f = |u: f64, v: f64| (u * v / (d * (u * u + v * v + d * d).sqrt())).atan();
    f(u2, v2) - f(u1, v2) - f(u2, v1) + f(u1, v1)
}

/// The unnormalised pulse shape at `t` ns after the onset.
fn raw_template(t: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    (1.0 - (-t / TAU_RISE_NS).exp())
        * (FAST_FRACTION / TAU_FAST_NS * (-t / TAU_FAST_NS).exp()
            + (1.0 - FAST_FRACTION) / TAU_SLOW_NS * (-t / TAU_SLOW_NS).exp())
}

/// The pulse shape normalised to a continuous-time peak of 1.
struct Template {
    peak: f64,
}

impl Template {
    fn new() -> Self {
        let peak = (1..20_000).map(|i| raw_template(f64::from(i) * 0.01)).fold(0.0, f64::max);
        Self { peak }
    }
    fn at(&self, t: f64) -> f64 {
        raw_template(t) / self.peak
    }
    /// The template at the samples of an event with `phase_ns`.
    fn samples(&self, phase_ns: f64) -> [f64; SAMPLES] {
        std::array::from_fn(|i| self.at((i as f64 - TRIGGER_SAMPLE as f64) * SAMPLE_NS - phase_ns))
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Simulates the light of `run`'s muons on `detector_config`'s TPCs, read through `map`.
pub fn simulate_light(
    run: &SimulatedRun,
    detector_config: &DetectorConfig,
    map: &ChannelMap,
    config: &LightConfig,
) -> Result<SimulatedLight, SimulationError> {
    let fraction = config.missing_board_fraction;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(SimulationError::Settings(format!(
            "the missing-board fraction must be in [0, 1], not {fraction}"
        )));
    }
    let geometry = detector_config.geometry()?;
    let detector = Detector::new(&geometry);
    let seed = 1000 + run.truth.run.seed;
    let mut rng_channels = stream(seed, 1);

    // Inputs: every connected input of the map, with its constants.
    let normal = |mean: f64, sigma: f64| Normal::new(mean, sigma).expect("sigma > 0");
    let (baseline_draw, gain_draw) =
        (normal(BASELINE_MEAN, BASELINE_SIGMA), normal(1.0, GAIN_SIGMA));
    let mut channels: Vec<LightChannelTruth> = map
        .channels()
        .map(|c| {
            let baseline = baseline_draw.sample(&mut rng_channels).round();
            LightChannelTruth {
                adc: c.adc,
                channel: c.channel,
                serial: format!("{:#010x}", SERIALS[usize::from(c.adc) % BOARDS]),
                tpc: c.tpc,
                det: c.det,
                det_type: c.det_type,
                status: "ok",
                baseline_adc16: baseline,
                noise_rms_adc16: round2(rng_channels.random_range(NOISE_RANGE.0..NOISE_RANGE.1)),
                gain_rel: round2(gain_draw.sample(&mut rng_channels).max(0.5)),
                dead_level_adc16: 4 * (baseline / 4.0).round() as i32,
            }
        })
        .collect();

    // Wall detectors of every TPC the geometry has.
    let mut walls: Vec<WallDetector> = Vec::new();
    for (index, c) in channels.iter().enumerate() {
        let Some(tpc) = detector.tpcs.iter().position(|t| u16::from(t.id) == u16::from(c.tpc) + 1)
        else {
            continue;
        };
        if let Some(w) = walls.iter_mut().find(|w| w.tpc == tpc && w.inputs_det(&channels) == c.det)
        {
            w.inputs.push(index);
            continue;
        }
        let (low, high) = detector.tpcs[tpc].active_box();
        let slot = usize::from(c.det % 8);
        let total: f64 = SLOT_HEIGHTS.iter().sum();
        let unit = (high[1] - low[1]) / total;
        let below: f64 = SLOT_HEIGHTS[..slot].iter().sum();
        walls.push(WallDetector {
            tpc,
            wall_x: if c.det < 8 { low[0] } else { high[0] },
            y: (low[1] + below * unit, low[1] + (below + SLOT_HEIGHTS[slot]) * unit),
            z: (low[2], high[2]),
            pde: match c.det_type {
                DetType::Acl => PDE_ACL,
                DetType::Lcm => PDE_LCM,
            },
            inputs: vec![index],
        });
    }
    let mut sees_light = vec![false; channels.len()];
    for w in &walls {
        for &i in &w.inputs {
            sees_light[i] = true;
        }
    }
    for (c, sees) in channels.iter_mut().zip(&sees_light) {
        if !sees {
            c.status = "no_light";
        }
    }
    let order: Vec<usize> = (0..channels.len()).filter(|&i| sees_light[i]).collect();

    // Events: one per muon in the window, in t0 order.
    let template = Template::new();
    let unix_start = run.truth.run.unix_start;
    let (from, to) = config.window_s.unwrap_or((0.0, f64::INFINITY));
    let mut rng_pe = stream(seed, 2);
    let mut rng_phase = stream(seed, 3);
    let mut events = Vec::new();
    for track in &run.truth.tracks {
        let t_s = track.t0_tick as f64 * 1e-7;
        if t_s < from || t_s >= to {
            continue;
        }
        // Mean photo-electrons of every wall detector, and the length in each TPC.
        let mut mean_pe = vec![0.0f64; walls.len()];
        let mut length_in_tpc = vec![0.0f64; detector.tpcs.len()];
        let delta: [f64; 3] = std::array::from_fn(|i| track.end_mm[i] - track.start_mm[i]);
        let length = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
        let steps = (length / STEP_MM).ceil().max(1.0) as usize;
        let ds = length / steps as f64;
        for k in 0..steps {
            let f = (k as f64 + 0.5) / steps as f64;
            let p: [f64; 3] = std::array::from_fn(|i| track.start_mm[i] + f * delta[i]);
            let Some(tpc) = detector.tpcs.iter().position(|t| {
                let (low, high) = t.active_box();
                (0..3).all(|i| (low[i]..=high[i]).contains(&p[i]))
            }) else {
                continue;
            };
            length_in_tpc[tpc] += ds;
            let photons = LIGHT_YIELD_PER_MM * ds / (4.0 * std::f64::consts::PI);
            for (w, pe) in walls.iter().zip(mean_pe.iter_mut()).filter(|(w, _)| w.tpc == tpc) {
                let omega = rectangle_solid_angle(
                    (p[0] - w.wall_x).abs(),
                    (w.y.0 - p[1], w.y.1 - p[1]),
                    (w.z.0 - p[2], w.z.1 - p[2]),
                );
                *pe += photons * omega * w.pde;
            }
        }
        let mut pe = vec![0u32; channels.len()];
        for (w, mean) in walls.iter().zip(&mean_pe) {
            let per_input = mean / w.inputs.len() as f64;
            for &i in &w.inputs {
                pe[i] = match Poisson::new(per_input) {
                    Ok(p) => p.sample(&mut rng_pe) as u32,
                    Err(_) => 0,
                };
            }
        }
        let time_ns = u128::from(unix_start) * 1_000_000_000 + u128::from(track.t0_tick) * 100;
        let phase_ns = (rng_phase.random::<f64>() * SAMPLE_NS * 1e4).round() / 1e4;
        let shape = template.samples(phase_ns);
        events.push(LightEventTruth {
            index: events.len() as u32,
            event_number: events.len() as u32,
            track_id: track.id,
            t0_tick: track.t0_tick,
            unix_ms: (time_ns / 1_000_000) as u64,
            tai_s: (time_ns / 1_000_000_000) as u64 + TAI_MINUS_UTC_S,
            tai_ns: (time_ns % 1_000_000_000) as u64,
            phase_ns,
            onset_sample: TRIGGER_SAMPLE as f64 + phase_ns / SAMPLE_NS,
            template_max: shape.iter().copied().fold(0.0, f64::max),
            template_sum: shape.iter().sum(),
            length_in_tpc_mm: length_in_tpc
                .iter()
                .enumerate()
                .filter(|(_, l)| **l > 0.0)
                .map(|(t, l)| (detector.tpcs[t].id - 1, round2(*l)))
                .collect(),
            missing_board: None,
            boards_present: Vec::new(),
            pe: order.iter().map(|&i| pe[i]).collect(),
            peak_adc16: Vec::new(),
        });
    }

    // Faults: saturating among LCM inputs that would clip in ≥ 2 events, then dead and noisy
    // among the others (all disjoint).
    let mut rng_faults = stream(seed, 4);
    let clips_at = |i: usize, events: &[LightEventTruth]| {
        let headroom = f64::from(TOP_RAIL) - channels[order[i]].baseline_adc16;
        events
            .iter()
            .filter(|e| {
                f64::from(e.pe[i])
                    * SPE_PEAK_ADC16
                    * channels[order[i]].gain_rel
                    * SATURATING_GAIN
                    * e.template_max
                    > headroom
            })
            .count()
    };
    let candidates: Vec<usize> = (0..order.len())
        .filter(|&i| channels[order[i]].det_type == DetType::Lcm && clips_at(i, &events) >= 2)
        .collect();
    let picked = rand::seq::index::sample(
        &mut rng_faults,
        candidates.len(),
        config.saturating_channels.min(candidates.len()),
    );
    for k in picked {
        let c = &mut channels[order[candidates[k]]];
        c.status = "saturating";
        c.gain_rel = round2(c.gain_rel * SATURATING_GAIN);
    }
    let free: Vec<usize> =
        (0..channels.len()).filter(|&i| channels[i].status != "saturating").collect();
    let wanted = config.dead_channels + config.noisy_channels;
    if wanted > free.len() {
        return Err(SimulationError::Settings(format!(
            "{wanted} dead and noisy light inputs, but the map has {} free inputs",
            free.len()
        )));
    }
    let chosen = rand::seq::index::sample(&mut rng_faults, free.len(), wanted).into_vec();
    for (n, &k) in chosen.iter().enumerate() {
        let c = &mut channels[free[k]];
        if n < config.dead_channels {
            c.status = "dead";
            c.noise_rms_adc16 = 0.0;
            c.gain_rel = 0.0;
        } else {
            c.status = "noisy";
            c.noise_rms_adc16 = round2(c.noise_rms_adc16 * NOISY_FACTOR);
        }
    }
    for e in &mut events {
        e.peak_adc16 = order
            .iter()
            .zip(&e.pe)
            .map(|(&i, &pe)| round2(f64::from(pe) * SPE_PEAK_ADC16 * channels[i].gain_rel))
            .collect();
    }

    // Missing boards.
    let mut faults = LightFaults {
        noisy_factor: NOISY_FACTOR,
        saturating_gain_factor: SATURATING_GAIN,
        ..LightFaults::default()
    };
    let n_missing = if fraction > 0.0 && !events.is_empty() {
        ((fraction * events.len() as f64).round() as usize).max(1).min(events.len())
    } else {
        0
    };
    let mut missing_events =
        rand::seq::index::sample(&mut rng_faults, events.len(), n_missing).into_vec();
    missing_events.sort_unstable();
    for k in missing_events {
        let adc = rng_faults.random_range(0..BOARDS as u8);
        events[k].missing_board = Some(adc);
        faults.missing_board_events.push((k as u32, adc, SERIALS[usize::from(adc)]));
    }
    for e in &mut events {
        e.boards_present = (0..BOARDS as u8).filter(|b| Some(*b) != e.missing_board).collect();
    }
    let pairs = |status: &str| -> Vec<[u8; 2]> {
        channels.iter().filter(|c| c.status == status).map(|c| [c.adc, c.channel]).collect()
    };
    faults.dead_channels = pairs("dead");
    faults.noisy_channels = pairs("noisy");
    faults.saturating_channels = pairs("saturating");

    let truth = LightTruth {
        generator: serde_json::json!({
            "program": "larmon simulate",
            "version": env!("CARGO_PKG_VERSION"),
            "light_seed": seed,
            "settings": config,
        }),
        files: Vec::new(),
        run: serde_json::json!({
            "run_number": run.truth.run.run,
            "charge_seed": run.truth.run.seed,
            "light_seed": seed,
            "unix_start": unix_start,
            "light_window_s": config.window_s.map(|(a, b)| vec![a, b]),
            "n_charge_tracks": run.truth.tracks.len(),
            "n_events": events.len(),
            "rule": "one light event per muon with t0 in the light window, in t0 order; event_number = index",
        }),
        daq: serde_json::json!({
            "n_boards": BOARDS,
            "serials": SERIALS.iter().map(|s| format!("{s:#010x}")).collect::<Vec<_>>(),
            "n_samples": SAMPLES,
            "sample_ns": SAMPLE_NS,
            "trigger_sample": TRIGGER_SAMPLE,
            "rail_adc16": [BOTTOM_RAIL, TOP_RAIL],
            "sample_encoding": "int16 = 4 * ADC14",
            "timestamps": {
                "event_time_ns": "unix_start*1e9 + t0_tick*100 (the pulse onset)",
                "tai_s": "floor(event_time_ns / 1e9) + 37",
                "tai_ns": "event_time_ns mod 1e9",
            },
            "read_out": "every input the light channel map connects",
        }),
        light_model: serde_json::json!({
            "geometry": "light tpc t = geometry tpc t+1; det 0-7 on the wall x = x_min, 8-15 on x = x_max, stacked in y (heights 3:1:1:1, ACL LCM LCM LCM), spanning the drift length",
            "light_yield_ph_per_mm": LIGHT_YIELD_PER_MM,
            "step_mm": STEP_MM,
            "pde": {"ACL": PDE_ACL, "LCM": PDE_LCM},
            "spe_peak_adc16": SPE_PEAK_ADC16,
            "gain_rel_sigma": GAIN_SIGMA,
            "baseline_adc16": {"mean": BASELINE_MEAN, "sigma": BASELINE_SIGMA},
            "noise_rms_adc16_range": [NOISE_RANGE.0, NOISE_RANGE.1],
            "tau_rise_ns": TAU_RISE_NS,
            "tau_fast_ns": TAU_FAST_NS,
            "tau_slow_ns": TAU_SLOW_NS,
            "fast_fraction_of_integral": FAST_FRACTION,
            "sample": "clip(4*round((baseline + peak_adc16*h + N(0, noise_rms))/4), -32768, 32764); dead: constant dead_level_adc16",
        }),
        faults,
        event_channel_order: order
            .iter()
            .map(|&i| [channels[i].adc, channels[i].channel])
            .collect(),
        channel_map: channels,
        events,
    };
    Ok(SimulatedLight { truth, run: run.truth.run.run, seed })
}

impl WallDetector {
    fn inputs_det(&self, channels: &[LightChannelTruth]) -> u8 {
        channels[self.inputs[0]].det
    }
}

impl SimulatedLight {
    /// The file name the 2x2 light DAQ gives part 0 of a run.
    pub fn file_name(run: u32) -> String {
        format!("mpd_run_sim_rctl_{run}_p0.data")
    }

    /// Writes the MPD file and its truth (`mpd_run_sim_rctl_<run>-light-truth.json`) into
    /// `dir`; returns the MPD file.
    pub fn write(&mut self, dir: &Path) -> Result<PathBuf, SimulationError> {
        self.start_writing(dir)?.finish(self)
    }

    /// Creates the MPD file for writing in step with the charge (`write_until` after each
    /// second of charge data, as a live light DAQ would).
    pub fn start_writing(&self, dir: &Path) -> Result<LightWriter, SimulationError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(Self::file_name(self.run));
        let header = serde_json::json!({"generator": "larmon simulate", "run": self.run});
        let mpd =
            MpdWriter::create(&path, self.run, &header.to_string()).map_err(io_error(&path))?;
        let position = self
            .truth
            .event_channel_order
            .iter()
            .enumerate()
            .map(|(k, p)| ((p[0], p[1]), k))
            .collect();
        Ok(LightWriter {
            dir: dir.into(),
            path,
            mpd,
            template: Template::new(),
            rng_noise: stream(self.seed, 5),
            position,
            samples: vec![0i16; self.truth.channel_map.len() * SAMPLES],
            clipped: Vec::new(),
            next_event: 0,
        })
    }
}

/// An MPD file being written event by event (see [`SimulatedLight::start_writing`]).
pub struct LightWriter {
    dir: PathBuf,
    path: PathBuf,
    mpd: MpdWriter,
    template: Template,
    rng_noise: rand_chacha::ChaCha8Rng,
    position: std::collections::HashMap<(u8, u8), usize>,
    samples: Vec<i16>,
    clipped: Vec<(u32, u8, u8, u32)>,
    next_event: usize,
}

impl LightWriter {
    /// Writes the events of muons before `seconds` after the run start, and flushes.
    pub fn write_until(
        &mut self,
        light: &SimulatedLight,
        seconds: f64,
    ) -> Result<(), SimulationError> {
        let unit = Normal::new(0.0, 1.0).expect("unit normal");
        let channels = &light.truth.channel_map;
        while let Some(event) = light.truth.events.get(self.next_event) {
            if event.t0_tick as f64 * 1e-7 >= seconds {
                break;
            }
            self.next_event += 1;
            let shape = self.template.samples(event.phase_ns);
            for (i, c) in channels.iter().enumerate() {
                let out = &mut self.samples[i * SAMPLES..(i + 1) * SAMPLES];
                if c.status == "dead" {
                    out.fill(c.dead_level_adc16 as i16);
                    continue;
                }
                let peak =
                    self.position.get(&(c.adc, c.channel)).map_or(0.0, |&k| event.peak_adc16[k]);
                let mut top = 0;
                for (s, h) in out.iter_mut().zip(&shape) {
                    let value = c.baseline_adc16
                        + peak * h
                        + c.noise_rms_adc16 * unit.sample(&mut self.rng_noise);
                    let grid = (4.0 * (value / 4.0).round()) as i64;
                    let v = grid.clamp(i64::from(BOTTOM_RAIL), i64::from(TOP_RAIL)) as i32;
                    top += u32::from(v == TOP_RAIL);
                    *s = v as i16;
                }
                if top > 0 && event.missing_board != Some(c.adc) {
                    self.clipped.push((event.index, c.adc, c.channel, top));
                }
            }
            let samples = &self.samples;
            let boards: Vec<BoardData<'_>> = (0..BOARDS as u8)
                .map(|adc| {
                    let waveforms = if event.missing_board == Some(adc) {
                        Vec::new()
                    } else {
                        channels
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| c.adc == adc)
                            .map(|(i, c)| (c.channel, &samples[i * SAMPLES..(i + 1) * SAMPLES]))
                            .collect()
                    };
                    BoardData {
                        serial: SERIALS[usize::from(adc)],
                        tai: (event.tai_s as u32, event.tai_ns as u32),
                        waveforms,
                    }
                })
                .collect();
            self.mpd
                .write_event(event.event_number, event.unix_ms, &boards)
                .map_err(io_error(&self.path))?;
        }
        self.mpd.flush().map_err(io_error(&self.path))
    }

    /// Writes the remaining events, the run stop block and the truth; returns the MPD file.
    pub fn finish(mut self, light: &mut SimulatedLight) -> Result<PathBuf, SimulationError> {
        self.write_until(light, f64::INFINITY)?;
        let (path, clipped, dir) = (self.path.clone(), self.clipped, self.dir);
        let writer = self.mpd;
        let path = writer.finish().map_err(io_error(&path))?;
        let mut clipping: Vec<[u8; 2]> = clipped.iter().map(|c| [c.1, c.2]).collect();
        clipping.sort_unstable();
        clipping.dedup();
        light.truth.faults.clipped = clipped;
        light.truth.faults.clipping_channels = clipping;
        light.truth.files = vec![SimulatedLight::file_name(light.run)];
        let truth_path = dir.join(format!("mpd_run_sim_rctl_{}-light-truth.json", light.run));
        let text = serde_json::to_string(&light.truth).expect("light truth serialises");
        std::fs::write(&truth_path, text).map_err(io_error(&truth_path))?;
        Ok(path)
    }
}
