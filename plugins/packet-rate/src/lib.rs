//! packet-rate: packet rate vs time, total and per packet type, and the parity-error fraction of
//! LArPix packets (types 0–3), with a check on it. (larpix-monitor's `PacketRate`.)

use larmon_plugin_sdk::prelude::*;

const TYPE_NAMES: [&str; 8] =
    ["data", "test", "config write", "config read", "timestamp", "message", "sync", "trigger"];

#[derive(Serialize, Deserialize)]
struct PacketRate {
    /// Rows per Unix second, per packet type.
    by_type: Vec<TimeSeries>,
    larpix_packets: u64,
    parity_errors: u64,
    warn_fraction: f64,
    error_fraction: f64,
}

impl Plugin for PacketRate {
    fn info() -> Info {
        Info::new("packet-rate", "Packet rate vs time by type; parity-error fraction")
            .consumes("packets", &["packet_type", "valid_parity", "unix_time"])
            .config_key("parity_warn_fraction")
            .config_key("parity_error_fraction")
    }

    fn new(config: &Config) -> Result<Self, String> {
        let number =
            |key: &str, default: f64| config.get(key).and_then(|v| v.as_f64()).unwrap_or(default);
        Ok(Self {
            by_type: vec![TimeSeries::default(); 8],
            larpix_packets: 0,
            parity_errors: 0,
            warn_fraction: number("parity_warn_fraction", 0.002),
            error_fraction: number("parity_error_fraction", 0.01),
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        let kinds = batch.u8("packet_type")?;
        let parity = batch.u8("valid_parity")?;
        let unix = batch.opt_u64("unix_time")?;
        for ((kind, valid), t) in kinds.iter().zip(parity).zip(unix) {
            if let (Some(series), Some(t)) = (self.by_type.get_mut(*kind as usize), t) {
                series.fill(t, 1.0);
            }
            if *kind <= 3 {
                self.larpix_packets += 1;
                self.parity_errors += u64::from(*valid == 0);
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (a, b) in self.by_type.iter_mut().zip(&other.by_type) {
            a.merge(b);
        }
        self.larpix_packets += other.larpix_packets;
        self.parity_errors += other.parity_errors;
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut total = TimeSeries::default();
        for s in &self.by_type {
            total.merge(s);
        }
        let t0 = total.points().first().map_or(0, |p| p.0);
        let line = |s: &TimeSeries| -> Vec<(f64, f64)> {
            s.points().into_iter().map(|(t, v)| ((t - t0) as f64 + 0.5, v)).collect()
        };
        let mut plot =
            svg::Plot::new("Packet rate by type", "time since first packet [s]", "rate [Hz]")
                .log_y()
                .line(line(&total), "all");
        for (k, s) in self.by_type.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            plot = plot.line(line(s), TYPE_NAMES[k]);
        }
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
        let status = if fraction >= self.error_fraction {
            CheckStatus::Error
        } else if fraction >= self.warn_fraction {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        };
        Ok(Report::new()
            .plot("rate", "Packet rate by type", plot)
            .typed("types", "Packet type fractions", fractions)
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
                    100.0 * self.warn_fraction,
                    100.0 * self.error_fraction
                ),
            ))
    }
}

export_plugin!(PacketRate);
