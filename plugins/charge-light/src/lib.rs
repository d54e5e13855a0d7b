//! charge-light: light events and charge external triggers paired by time (the host's
//! `light_matches`, |Δt| ≤ 30 ticks): the matching efficiency both ways — light events with a
//! charge trigger, and charge triggers within the light data's time span with a light event —
//! and the distribution of Δt = t_light − t_charge. A drop means a clock or trigger problem.
//! For matched events it also plots the light seen (integral summed over all waveforms) against
//! the charge of the charge event: both grow with the track length in the detector.

use std::collections::BTreeMap;

use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.charge-light]` settings.
    struct Settings {
        /// Matching efficiency (either way) below which the check warns.
        warn_efficiency: f64 = 0.99,
        /// … and below which it is an error.
        error_efficiency: f64 = 0.9,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct ChargeLight {
    light_events: u64,
    charge_triggers: u64,
    matched: u64,
    dt: Hist1D,
    /// Light integral summed over a light event's waveforms, by light event.
    light_sum: BTreeMap<u64, f64>,
    /// Matched (light event, charge of its charge event in ke⁻), as `light_matches` gives
    /// them: only matched events are kept, not the charge of every triggered event of the run
    /// (which grew with the run's length: 337 k events and 31 MB of Wasm memory on a 27-file
    /// run). Absent from an earlier version's snapshots.
    #[serde(default)]
    #[merge(extend)]
    matched_charge: Vec<(u64, f64)>,
    /// Snapshots of earlier versions: matched (light event, charge event) and the charge of
    /// every triggered charge event by id; still read, so that their matches keep their points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[merge(extend)]
    pairs: Vec<(u64, u64)>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[merge(extend)]
    charge_q: BTreeMap<u64, f64>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Light events matched to charge external triggers by time (within 30 ticks = 3 µs): the \
    efficiency both ways and Δt = t_light − t_charge. Both efficiencies should be 1 and Δt a \
    narrow peak at 0 (the 2x2 clocks share the PPS). **Bad:** a light-to-charge efficiency \
    below 1 (light triggers the charge system missed, or a charge file missing from the run), \
    charge-to-light below 1 (charge triggers without light data), a shifted or wide Δt (a \
    clock or timestamp problem). Light files are given to `larmon run` beside the charge files \
    of the same run. The scatter plot shows, for matched events, the light seen against the \
    charge of the event: both grow with the length of the track in the detector (the \
    correlation is a metric).";

columns! {
    /// The match columns it reads (a null side is unmatched).
    struct Matches from "light_matches" {
        light_event: Option<u64>, charge_event: Option<u64>, dt_ticks: Option<i64>,
        charge_q_ke: Option<f64>,
    }
    struct Waveforms from "light_waveforms" { event: u64, integral: f32 }
}

impl Plugin for ChargeLight {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("charge-light", "Charge-light matching: efficiency both ways and time difference")
            .help(HELP)
            .reads::<Matches>()
            .reads::<Waveforms>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            light_events: 0,
            charge_triggers: 0,
            matched: 0,
            dt: Hist1D::new(61, -30.5, 30.5),
            light_sum: BTreeMap::new(),
            matched_charge: Vec::new(),
            pairs: Vec::new(),
            charge_q: BTreeMap::new(),
            settings,
        })
    }

    fn light_matches(&mut self, batch: &Batch) -> Result<(), String> {
        let Matches { light_event: light, charge_event: charge, dt_ticks: dt, charge_q_ke, rows } =
            Matches::read(batch)?;
        for i in 0..rows {
            self.light_events += u64::from(light[i].is_some());
            self.charge_triggers += u64::from(charge[i].is_some());
            if let (Some(l), Some(_)) = (light[i], charge[i]) {
                if let Some(q) = charge_q_ke[i] {
                    self.matched_charge.push((l, q));
                }
                self.matched += 1;
                if let Some(dt) = dt[i] {
                    self.dt.fill(dt as f64, 1.0);
                }
            }
        }
        Ok(())
    }

    fn light_waveforms(&mut self, batch: &Batch) -> Result<(), String> {
        let Waveforms { event, integral, rows } = Waveforms::read(batch)?;
        for i in 0..rows {
            *self.light_sum.entry(event[i]).or_default() += f64::from(integral[i]);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        // An efficiency of no events is undefined: "n/a" in the table, 0 in the metric (the
        // checks judge it only when there are events).
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let (light_ratio, charge_ratio) =
            (ratio(self.matched, self.light_events), ratio(self.matched, self.charge_triggers));
        let (light_eff, charge_eff) = (light_ratio.unwrap_or(0.0), charge_ratio.unwrap_or(0.0));
        let mut plot = svg::Plot::new(
            "Light − charge trigger time",
            "Δt [ticks of 100 ns]",
            "matched events / tick",
        )
        .hist(&self.dt, "");
        if self.matched == 0 {
            plot = plot.note("no matched events (no light files in the run?)");
        }
        let table = TypedFigure::table(
            "Charge–light matching",
            &["", "events", "matched", "efficiency"],
            &[
                vec![
                    "light → charge".into(),
                    self.light_events.to_string(),
                    self.matched.to_string(),
                    svg::number_or_na(light_ratio, 4),
                ],
                vec![
                    "charge → light".into(),
                    self.charge_triggers.to_string(),
                    self.matched.to_string(),
                    svg::number_or_na(charge_ratio, 4),
                ],
            ],
        );
        let points = self.light_vs_charge();
        let correlation = pearson(&points);
        let mut scatter = svg::Plot::new(
            "Light vs charge of matched events",
            "charge [ke⁻]",
            "light [ADC·sample]",
        );
        scatter = if points.is_empty() {
            scatter.note("no matched events with both sides")
        } else {
            scatter.points(points.clone(), "").note(format!("correlation {correlation:.2}"))
        };
        let mut report = Report::new()
            .plot("dt", "Light − charge time difference", plot)
            .plot("light_vs_charge", "Light vs charge of matched events", scatter)
            .metric("light_charge_correlation", correlation, None, "")
            .typed("efficiency", "Charge–light matching efficiency", table)
            .metric("light_events", self.light_events as f64, None, "events")
            .metric("charge_triggers_in_light_span", self.charge_triggers as f64, None, "triggers")
            .metric("matched_events", self.matched as f64, None, "events")
            .metric("light_to_charge_efficiency", light_eff, None, "")
            .metric("charge_to_light_efficiency", charge_eff, None, "");
        // Judged only with both sides: a light-only run (its charge in another run, or not
        // taken) is not a matching failure, and a charge-only run has nothing to match.
        if self.light_events > 0 && self.charge_triggers > 0 {
            report = report
                .check_band(
                    "light_to_charge_efficiency",
                    light_eff,
                    (self.settings.warn_efficiency, 1.0),
                    (self.settings.error_efficiency, 1.0),
                    "",
                )
                .check_band(
                    "charge_to_light_efficiency",
                    charge_eff,
                    (self.settings.warn_efficiency, 1.0),
                    (self.settings.error_efficiency, 1.0),
                    "",
                );
        }
        Ok(report)
    }
}

impl ChargeLight {
    /// (charge, light) of the matched events with both sides: an earlier version's pairs
    /// first (their parts came first), then this version's.
    fn light_vs_charge(&self) -> Vec<(f64, f64)> {
        let earlier = self.pairs.iter().filter_map(|(l, c)| Some((*l, *self.charge_q.get(c)?)));
        earlier
            .chain(self.matched_charge.iter().copied())
            .filter_map(|(l, q)| Some((q, *self.light_sum.get(&l)?)))
            .collect()
    }
}

/// Pearson correlation coefficient (0 for fewer than 3 points or no spread).
fn pearson(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 3 {
        return 0.0;
    }
    let (mx, my) =
        (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx > 0.0 && syy > 0.0 { sxy / (sxx * syy).sqrt() } else { 0.0 }
}

export_plugin!(ChargeLight);

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of an earlier version (matched pairs of event ids, and the charge of every
    /// triggered event) still gives its points beside this version's, which keeps only the
    /// charge of matched events and writes no table of every event.
    #[test]
    fn snapshots_of_earlier_versions_keep_their_points() {
        let fresh =
            || <ChargeLight as Plugin>::new(Settings::default(), Pixels::default()).unwrap();
        let mut earlier = serde_json::to_value(fresh()).unwrap();
        let object = earlier.as_object_mut().unwrap();
        assert!(!object.contains_key("pairs") && !object.contains_key("charge_q"));
        object.remove("matched_charge");
        object.insert("pairs".into(), serde_json::json!([[7, 70], [9, 90]]));
        object.insert("charge_q".into(), serde_json::json!({"70": 5.0, "71": 1.0}));
        object.insert("light_sum".into(), serde_json::json!({"7": 2.0, "9": 4.0}));
        let earlier: ChargeLight = serde_json::from_value(earlier).unwrap();
        let mut now = fresh();
        now.matched_charge = vec![(8, 6.0), (10, 7.0)];
        now.light_sum = BTreeMap::from([(8, 3.0)]);
        let mut run = fresh();
        Merge::merge(&mut run, earlier).unwrap();
        Merge::merge(&mut run, now).unwrap();
        // Event 9's charge and event 10's light are unknown: no point for either.
        assert_eq!(run.light_vs_charge(), [(5.0, 2.0), (6.0, 3.0)]);
    }
}
