//! light-health: the light readout's inputs and boards — dead (flat in every waveform), noisy
//! (mean baseline RMS above `noisy_factor` × the median input) and clipping (a sample on the top
//! rail) inputs, events with a board missing; maps of baseline noise and level per board and
//! input. The flagged inputs go to report.json (`results.flagged_inputs`). The rules are
//! `larmon-light-rules`' — the same that `larmon light` applies on the host.

use larmon_light_rules::{DEFAULT_NOISY_FACTOR, InputTotals, flag_inputs};
use larmon_plugin_sdk::prelude::*;

const BOARDS: usize = 8;
const INPUTS: usize = 64;

#[derive(Serialize, Deserialize, Default, Clone, Copy, Merge)]
struct Input {
    #[merge(with = add_totals)]
    totals: InputTotals,
    baseline_sum: f64,
}

fn add_totals(mine: &mut InputTotals, theirs: InputTotals) -> Result<(), String> {
    mine.add(&theirs);
    Ok(())
}

settings! {
    /// Its `[plugins.light-health]` settings.
    struct Settings {
        /// Noisy: noise above this many times the median input.
        noisy_factor: f64 = DEFAULT_NOISY_FACTOR,
        /// Dead or noisy inputs from which the check warns …
        warn_bad_inputs: f64 = 1.0,
        /// … and from which it is an error.
        error_bad_inputs: f64 = 20.0,
        /// Fraction of events with a board missing above which the check warns …
        warn_missing_fraction: f64 = 0.001,
        /// … and above which it is an error.
        error_missing_fraction: f64 = 0.05,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct LightHealth {
    inputs: Vec<Input>,
    events: u64,
    /// (event, board) of every board missing from an event.
    #[merge(extend)]
    missing: Vec<(u64, u8)>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

#[derive(Serialize)]
struct Flagged {
    adc: u8,
    channel: u8,
    kind: &'static str,
    rms_adc: f64,
    clipped_waveforms: u64,
}

#[derive(Serialize)]
struct MissingBoard {
    event: u64,
    adc: u8,
}

impl LightHealth {
    fn flagged(&self) -> Vec<Flagged> {
        let inputs = self.inputs.iter().enumerate().map(|(k, i)| (k, i.totals));
        flag_inputs(inputs, self.settings.noisy_factor)
            .into_iter()
            .map(|(k, kind)| {
                let totals = &self.inputs[k].totals;
                Flagged {
                    adc: (k / INPUTS) as u8,
                    channel: (k % INPUTS) as u8,
                    kind: kind.as_str(),
                    rms_adc: totals.mean_rms(),
                    clipped_waveforms: totals.clipped_waveforms,
                }
            })
            .collect()
    }
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    The light readout's 8 ADC boards × 64 inputs. Maps show each input's baseline noise (RMS \
    of the 80 samples before the trigger, 14-bit ADC) and baseline level; the table lists the \
    problems: **dead** inputs (flat in every waveform: no noise, no pulse), **noisy** ones \
    (noise above 5 × the median input), **clipping** ones (a sample at the top rail, 32764 — a \
    saturating SiPM or a gain set too high), and events where a **board is missing**. Normal \
    noise is 2–4 ADC; a dead input loses one detector's light, a missing board a whole module \
    side for that event. **Bad:** any dead or noisy input (warning), a missing-board rate \
    above 0.1 % (warning) or 5 % (error).";

columns! {
    struct LightEvents from "light_events" { event: u64, boards: u8, boards_present: u8 }
    struct Waveforms from "light_waveforms" {
        adc: u8, channel: u8, baseline: f32, rms: f32, peak: f32, clipped_high: u16,
    }
}

impl Plugin for LightHealth {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("light-health", "Light readout: dead, noisy, clipping inputs and missing boards")
            .help(HELP)
            .reads::<LightEvents>()
            .reads::<Waveforms>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            inputs: vec![Input::default(); BOARDS * INPUTS],
            events: 0,
            missing: Vec::new(),
            settings,
        })
    }

    fn light_events(&mut self, batch: &Batch) -> Result<(), String> {
        let LightEvents { event, boards, boards_present: present, rows } =
            LightEvents::read(batch)?;
        for i in 0..rows {
            self.events += 1;
            for adc in 0..boards[i].min(8) {
                if present[i] & (1 << adc) == 0 {
                    self.missing.push((event[i], adc));
                }
            }
        }
        Ok(())
    }

    fn light_waveforms(&mut self, batch: &Batch) -> Result<(), String> {
        let Waveforms { adc, channel, baseline, rms, peak, clipped_high: clipped, rows } =
            Waveforms::read(batch)?;
        for i in 0..rows {
            let Some(input) =
                self.inputs.get_mut(usize::from(adc[i]) * INPUTS + usize::from(channel[i]))
            else {
                continue;
            };
            input.totals.add_waveform(rms[i], peak[i], clipped[i] > 0);
            input.baseline_sum += f64::from(baseline[i]);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let flagged = self.flagged();
        let count = |kind: &str| flagged.iter().filter(|f| f.kind == kind).count() as f64;
        let map = |value: fn(&Input) -> f64| -> Vec<(f64, f64, f64)> {
            self.inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.totals.waveforms > 0)
                .map(|(k, i)| ((k % INPUTS) as f64, (k / INPUTS) as f64, value(i)))
                .collect()
        };
        let (noise, level) =
            (map(|i| i.totals.mean_rms()), map(|i| i.baseline_sum / i.totals.waveforms as f64));
        let input_map = |points, title, unit| {
            TypedFigure::value_map(points, 1.0, title, "input channel [id]", "ADC board [id]", unit)
        };
        let rms_map = input_map(&noise, "Baseline noise per input", "RMS [ADC]");
        let baseline_map = input_map(&level, "Baseline per input", "baseline [ADC]");
        let mut rows: Vec<Vec<String>> = flagged
            .iter()
            .map(|f| {
                vec![
                    f.kind.to_string(),
                    f.adc.to_string(),
                    f.channel.to_string(),
                    format!("{:.1}", f.rms_adc),
                    f.clipped_waveforms.to_string(),
                ]
            })
            .collect();
        for (event, adc) in self.missing.iter().take(20) {
            rows.push(vec![
                "board missing".into(),
                adc.to_string(),
                format!("event {event}"),
                "".into(),
                "".into(),
            ]);
        }
        let table = TypedFigure::table(
            &format!("Light readout problems in {} events", self.events),
            &["kind", "ADC", "input", "RMS [ADC]", "clipped wvfms"],
            &rows,
        );
        let missing_fraction = self.missing.len() as f64 / self.events.max(1) as f64;
        let bad = count("dead") + count("noisy");
        let missing: Vec<MissingBoard> =
            self.missing.iter().map(|&(event, adc)| MissingBoard { event, adc }).collect();
        Ok(Report::new()
            .typed("rms_map", "Light baseline noise per input", rms_map)
            .typed("baseline_map", "Light baseline per input", baseline_map)
            .typed("problems", "Light readout problems", table)
            .metric("light_events", self.events as f64, None, "events")
            .metric("dead_inputs", count("dead"), None, "inputs")
            .metric("noisy_inputs", count("noisy"), None, "inputs")
            .metric("clipping_inputs", count("clipping"), None, "inputs")
            .metric("missing_board_events", self.missing.len() as f64, None, "events")
            .check_max(
                "dead_or_noisy_inputs",
                bad,
                self.settings.warn_bad_inputs,
                self.settings.error_bad_inputs,
                "inputs",
            )
            .check_max(
                "missing_board_fraction",
                missing_fraction,
                self.settings.warn_missing_fraction,
                self.settings.error_missing_fraction,
                "",
            )
            .result("flagged_inputs", &flagged)
            .result("missing_boards", &missing))
    }
}

export_plugin!(LightHealth);
