//! fifo-flags: how often LArPix data packets report their local (per-chip) or shared FIFO as
//! more than half full or full: rate and fraction vs time, run-wide fractions. Full FIFOs lose
//! data. (larpix-monitor's `FIFOFlags`.)

use larmon_plugin_sdk::prelude::*;

/// The four flags: (column, bit, name).
const FLAGS: [(usize, u8, &str); 4] =
    [(0, 1, "local half"), (0, 2, "local full"), (1, 1, "shared half"), (1, 2, "shared full")];

settings! {
    /// Its `[plugins.fifo-flags]` settings.
    struct Settings {
        /// Fraction of data packets with a FIFO-full flag above which the check warns.
        warn_full_fraction: f64 = 1e-4,
        /// … and above which it is an error.
        error_full_fraction: f64 = 1e-3,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct FifoFlags {
    /// Flagged data packets per Unix second, one series per flag.
    flagged: Vec<TimeSeries>,
    /// Flagged data packets per flag.
    counts: [u64; 4],
    /// Valid-parity data packets.
    data_packets: u64,
    /// Valid-parity data packets per Unix second (the fractions' denominator).
    #[serde(default)]
    data_per_second: TimeSeries,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Data packets whose chip reported its local or shared FIFO half full / full: rate per \
    second, fraction of the valid data packets per second (log scale; larpix-monitor's \
    `FIFOFlags`), and a table of counts and fractions. **Bad:** any \"full\" flags in bulk: the \
    chip dropped data. Check `fifo_full_fraction`: warning above `warn_full_fraction` 1e-4, \
    error above 1e-3.";

columns! {
    struct Packets from "packets" {
        packet_type: u8, valid_parity: u8, local_fifo: u8, shared_fifo: u8, unix_time: u64,
    }
}

impl Plugin for FifoFlags {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("fifo-flags", "Data packets with FIFO half/full flags: rate and fraction")
            .help(HELP)
            .reads::<Packets>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            flagged: vec![TimeSeries::default(); 4],
            counts: [0; 4],
            data_packets: 0,
            data_per_second: TimeSeries::default(),
            settings,
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        let p = Packets::read(batch)?;
        let (kind, valid, unix) = (p.packet_type, p.valid_parity, p.unix_time);
        let fifo = [p.local_fifo, p.shared_fifo];
        for i in 0..p.rows {
            if kind[i] != 0 || valid[i] != 1 {
                continue;
            }
            self.data_packets += 1;
            self.data_per_second.fill(unix[i], 1.0);
            if fifo[0][i] | fifo[1][i] == 0 {
                continue;
            }
            for (k, (column, bit, _)) in FLAGS.iter().enumerate() {
                if fifo[*column][i] & bit != 0 {
                    self.counts[k] += 1;
                    self.flagged[k].fill(unix[i], 1.0);
                }
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let n = self.data_packets.max(1) as f64;
        let mut plot = svg::Plot::new("Data packets with FIFO flags", "", "flagged packets / s");
        let mut fractions = svg::Plot::new(
            "Fraction of data packets with FIFO flags",
            "",
            "flagged / valid data packets",
        )
        .log_y();
        for (k, (_, _, name)) in FLAGS.iter().enumerate() {
            if self.flagged[k].is_empty() {
                continue;
            }
            plot = plot.rate(&self.flagged[k], name);
            fractions =
                fractions.over_time(&self.flagged[k].fraction_of(&self.data_per_second), name);
        }
        if self.flagged.iter().all(TimeSeries::is_empty) {
            plot = plot.note("no flagged packets");
            fractions = fractions.note("no flagged packets");
        }
        let rows: Vec<Vec<String>> = FLAGS
            .iter()
            .enumerate()
            .map(|(k, (_, _, name))| {
                vec![
                    name.to_string(),
                    self.counts[k].to_string(),
                    format!("{:.2e}", self.counts[k] as f64 / n),
                ]
            })
            .collect();
        let table = TypedFigure::table(
            &format!("FIFO flags in {} data packets", self.data_packets),
            &["flag", "packets", "fraction"],
            &rows,
        );
        let mut report = Report::new()
            .plot("rate", "FIFO-flagged packets vs time", plot)
            .typed("fractions", "FIFO flag fractions", table)
            .plot("fractions_vs_time", "FIFO flag fractions vs time", fractions)
            .metric("data_packets", self.data_packets as f64, None, "packets");
        for (k, (_, _, name)) in FLAGS.iter().enumerate() {
            let key = name.replace(' ', "_");
            report = report
                .metric(&format!("{key}_packets"), self.counts[k] as f64, None, "packets")
                .metric(&format!("{key}_fraction"), self.counts[k] as f64 / n, None, "");
        }
        let full = (self.counts[1] + self.counts[3]) as f64 / n;
        Ok(report.check_max(
            "fifo_full_fraction",
            full,
            self.settings.warn_full_fraction,
            self.settings.error_full_fraction,
            "",
        ))
    }
}

export_plugin!(FifoFlags);
