//! packet-rate: packet rate vs time, total and per packet type, each type's fraction vs time,
//! and the parity-error fraction of LArPix packets (types 0–3) run-wide (with a check) and vs
//! time. (larpix-monitor's `PacketRate`, its three panels.)

use larmon_plugin_sdk::prelude::*;

const TYPE_NAMES: [&str; 8] =
    ["data", "test", "config write", "config read", "timestamp", "message", "sync", "trigger"];

settings! {
    /// Its `[plugins.packet-rate]` settings.
    struct Settings {
        /// Parity-error fraction of LArPix packets above which the check warns.
        parity_warn_fraction: f64 = 0.002,
        /// … and above which it is an error.
        parity_error_fraction: f64 = 0.01,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct PacketRate {
    /// Rows per Unix second, per packet type.
    by_type: Vec<TimeSeries>,
    larpix_packets: u64,
    parity_errors: u64,
    /// LArPix packets (types 0–3) and those failing parity, per Unix second.
    #[serde(default)]
    larpix_per_second: TimeSeries,
    #[serde(default)]
    parity_errors_per_second: TimeSeries,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Packet rate vs time per packet type (log scale; \"all\" dashed black), each type's fraction \
    of all packets vs time, the parity-error fraction of LArPix packets vs time \
    (larpix-monitor's three `PacketRate` panels), and a table of type fractions. Metric \
    `parity_error_fraction` (bad-parity LArPix packets / LArPix packets, types 0–3). **Bad:** \
    data rate dropping to zero (a PACMAN or tile stopped), sync/timestamp lines missing (clock \
    distribution), trigger rate off its usual level, a type's fraction jumping, parity errors \
    above `parity_warn_fraction` 0.2 % (warning) / `parity_error_fraction` 1 % (error), or \
    rising in time: a noisy link.";

columns! {
    struct Packets from "packets" { packet_type: u8, valid_parity: u8, unix_time: Option<u64> }
}

impl Plugin for PacketRate {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("packet-rate", "Packet rate vs time by type; parity-error fraction")
            .help(HELP)
            .reads::<Packets>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            by_type: vec![TimeSeries::default(); 8],
            larpix_packets: 0,
            parity_errors: 0,
            larpix_per_second: TimeSeries::default(),
            parity_errors_per_second: TimeSeries::default(),
            settings,
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        let packets = Packets::read(batch)?;
        let (kinds, parity) = (packets.packet_type, packets.valid_parity);
        for ((kind, valid), t) in kinds.iter().zip(parity).zip(packets.unix_time) {
            if let (Some(series), Some(t)) = (self.by_type.get_mut(*kind as usize), t) {
                series.fill(t, 1.0);
            }
            if *kind <= 3 {
                self.larpix_packets += 1;
                self.parity_errors += u64::from(*valid == 0);
                if let Some(t) = t {
                    self.larpix_per_second.fill(t, 1.0);
                    if *valid == 0 {
                        self.parity_errors_per_second.fill(t, 1.0);
                    }
                }
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut total = TimeSeries::default();
        for s in &self.by_type {
            total.merge(s);
        }
        let mut plot = svg::Plot::new("Packet rate by type", "", "rate [Hz]")
            .log_y()
            .total_rate(&total, "all");
        let mut fractions_vs_time =
            svg::Plot::new("Packet type fractions", "", "fraction of packets").log_y();
        for (k, s) in self.by_type.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            plot = plot.rate(s, TYPE_NAMES[k]);
            fractions_vs_time = fractions_vs_time.over_time(&s.fraction_of(&total), TYPE_NAMES[k]);
        }
        let parity_vs_time = svg::Plot::new(
            "Parity-error fraction of LArPix packets",
            "",
            "failing / all (types 0–3)",
        )
        .over_time(&self.parity_errors_per_second.fraction_of(&self.larpix_per_second), "")
        .note(format!("{} of {} packets fail parity", self.parity_errors, self.larpix_packets));
        let counts: Vec<f64> =
            self.by_type.iter().map(|s| s.points().iter().map(|p| p.1).sum()).collect();
        let all: f64 = counts.iter().sum();
        let rows: Vec<Vec<String>> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(k, c)| {
                vec![
                    format!("{k}"),
                    TYPE_NAMES[k].to_string(),
                    format!("{c:.0}"),
                    format!("{:.4} %", 100.0 * c / all.max(1.0)),
                ]
            })
            .collect();
        let fractions =
            TypedFigure::table("Packet types", &["type", "name", "rows", "fraction"], &rows);
        let fraction = if self.larpix_packets > 0 {
            self.parity_errors as f64 / self.larpix_packets as f64
        } else {
            0.0
        };
        let error = if self.larpix_packets > 0 {
            (fraction * (1.0 - fraction) / self.larpix_packets as f64).sqrt()
        } else {
            0.0
        };
        let status = if fraction >= self.settings.parity_error_fraction {
            CheckStatus::Error
        } else if fraction >= self.settings.parity_warn_fraction {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        };
        Ok(Report::new()
            .plot("rate", "Packet rate by type", plot)
            .typed("types", "Packet type fractions", fractions)
            .plot("type_fractions", "Packet type fractions vs time", fractions_vs_time)
            .plot("parity_vs_time", "Parity-error fraction vs time", parity_vs_time)
            .metric("parity_error_fraction", fraction, Some(error), "")
            .metric("parity_errors", self.parity_errors as f64, None, "packets")
            .metric("larpix_packets", self.larpix_packets as f64, None, "packets")
            .check(
                "parity_error_fraction",
                status,
                format!(
                    "{} of {} LArPix packets fail parity ({:.3} %; warn at {:.2} %, error at {:.2} %)",
                    self.parity_errors,
                    self.larpix_packets,
                    100.0 * fraction,
                    100.0 * self.settings.parity_warn_fraction,
                    100.0 * self.settings.parity_error_fraction
                ),
            ))
    }
}

export_plugin!(PacketRate);
