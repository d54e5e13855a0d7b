//! charge: calibrated hit charge per TPC, hits per event, event rate and the drift-time
//! distribution, whose sharp edges are the anode (0 µs) and the cathode (full drift).

use std::collections::BTreeMap;

use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.charge]` settings.
    struct Settings {
        /// The full drift time the drift-time check expects, µs.
        expected_max_drift_us: f64 = 190.6,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct Charge {
    /// Hit charge per TPC, ke⁻.
    q_per_tpc: BTreeMap<u8, Hist1D>,
    /// Drift time of triggered hits per TPC, µs.
    drift_per_tpc: BTreeMap<u8, Hist1D>,
    /// Hits per event (log10).
    hits_per_event: Hist1D,
    /// Events per Unix second by kind (1 triggered, 2 self-triggered).
    event_rate: BTreeMap<u8, TimeSeries>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Calibrated hit charge per TPC (log scale), hits per event, event rate, and the drift-time \
    distribution of triggered hits per TPC. The drift-time distribution rises sharply at 0 \
    (anode) and falls at the full drift time (cathode, 190.6 µs at 0.5 kV/cm over 304 mm); \
    metric `tpcN_cathode_edge_us`. **Bad:** the cathode edge moving (check band ±5 % warning, \
    ±15 % error of `expected_max_drift_us`): drift field or HV problem; a charge spectrum \
    without its MIP peak (~20–25 ke⁻ per hit): gain or pedestal calibration wrong.";

columns! {
    struct Hits from "hits" { tpc: Option<u8>, q_ke: f32, drift_ticks: Option<f32> }
    struct Events from "events" { kind: u8, unix_time: u64, n_hits: u32 }
}

impl Plugin for Charge {
    type Settings = Settings;

    fn info() -> Info {
        Info::new(
            "charge",
            "Hit charge per TPC, hits per event, event rate, drift-time distribution",
        )
        .help(HELP)
        .reads::<Hits>()
        .reads::<Events>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            q_per_tpc: BTreeMap::new(),
            drift_per_tpc: BTreeMap::new(),
            hits_per_event: Hist1D::new(50, 0.0, 5.0),
            event_rate: BTreeMap::new(),
            settings,
        })
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        let Hits { tpc, q_ke: q, drift_ticks: drift, rows } = Hits::read(batch)?;
        // Hits come in runs of one TPC: each run finds its TPC's histograms once (the drift
        // one only if the run has a drift time), not once per hit.
        for run in runs(rows, |i| tpc[i]) {
            let run_tpc = tpc[run.start].unwrap_or(0);
            let charge =
                self.q_per_tpc.entry(run_tpc).or_insert_with(|| Hist1D::new(120, 0.0, 120.0));
            for q in &q[run.clone()] {
                charge.fill(f64::from(*q), 1.0);
            }
            let drifts = &drift[run];
            if drifts.iter().any(Option::is_some) {
                let drift_time = self
                    .drift_per_tpc
                    .entry(run_tpc)
                    .or_insert_with(|| Hist1D::new(240, -20.0, 220.0));
                for d in drifts.iter().flatten() {
                    drift_time.fill(f64::from(*d) / 10.0, 1.0);
                }
            }
        }
        Ok(())
    }

    fn events(&mut self, batch: &Batch) -> Result<(), String> {
        let Events { kind, unix_time: unix, n_hits: n, rows } = Events::read(batch)?;
        for i in 0..rows {
            self.hits_per_event.fill(f64::from(n[i].max(1)).log10(), 1.0);
            self.event_rate.entry(kind[i]).or_default().fill(unix[i], 1.0);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut charge =
            svg::Plot::new("Hit charge per TPC", "hit charge [ke⁻]", "hits / ke⁻").log_y();
        for (tpc, h) in &self.q_per_tpc {
            charge = charge.hist(h, &format!("TPC {tpc}"));
        }
        let mut drift = svg::Plot::new("Drift time of triggered hits", "t − t0 [µs]", "hits / µs");
        let mut report = Report::new();
        let mut cathode_edges = Vec::new();
        for (tpc, h) in &self.drift_per_tpc {
            drift = drift.hist(h, &format!("TPC {tpc}"));
            // The cathode edge: where the counts above the plateau fall below half of it.
            let plateau = {
                let mut inside: Vec<f64> = (0..h.counts.len())
                    .filter(|i| (20.0..150.0).contains(&h.center(*i)))
                    .map(|i| h.counts[i])
                    .collect();
                inside.sort_by(f64::total_cmp);
                inside.get(inside.len() / 2).copied().unwrap_or(0.0)
            };
            if let Some(edge) =
                (0..h.counts.len()).rev().find(|i| h.counts[*i] >= plateau / 2.0 && plateau > 0.0)
            {
                let edge_us = h.center(edge) + h.width() / 2.0;
                cathode_edges.push(edge_us);
                report = report.metric(
                    &format!("tpc{tpc}_cathode_edge_us"),
                    edge_us,
                    Some(h.width()),
                    "µs",
                );
            }
            let mean_q = self.q_per_tpc.get(tpc).and_then(Hist1D::mean).unwrap_or(0.0);
            report = report.metric(&format!("tpc{tpc}_mean_hit_charge_ke"), mean_q, None, "ke-");
        }
        let per_event = svg::Plot::new("Hits per event", "log10(hits)", "events / bin")
            .hist(&self.hits_per_event, "");
        let mut rate = svg::Plot::new("Event rate", "", "events / s");
        let mut total_events = 0.0;
        let mut seconds = 1.0f64;
        for (kind, s) in &self.event_rate {
            let points = s.points();
            total_events += points.iter().map(|p| p.1).sum::<f64>();
            if let (Some(a), Some(b)) = (points.first(), points.last()) {
                seconds = seconds.max((b.0 - a.0 + 1) as f64);
            }
            let name = if *kind == 1 { "triggered" } else { "self-triggered" };
            rate = rate.rate(s, name);
        }
        report = report
            .plot("hit_charge", "Hit charge per TPC", charge)
            .plot("drift_time", "Drift-time distribution", drift)
            .plot("hits_per_event", "Hits per event", per_event)
            .plot("event_rate", "Event rate", rate)
            .metric("event_rate_hz", total_events / seconds, None, "Hz");
        for (k, edge) in cathode_edges.iter().enumerate() {
            let expected = self.settings.expected_max_drift_us;
            report = report.check_band(
                &format!("cathode_edge_{k}"),
                *edge,
                (0.95 * expected, 1.05 * expected),
                (0.85 * expected, 1.15 * expected),
                "µs",
            );
        }
        Ok(report)
    }
}

export_plugin!(Charge);
