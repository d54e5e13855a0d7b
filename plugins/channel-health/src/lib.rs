//! channel-health: hot, noisy and dead channels, judged against what the run itself says a
//! channel should do (robust per-run expectations, no reference run needed).
//!
//! For every connected channel the expectation is the **median packet count of the other
//! channels of its chip** (49 neighbours that see the same tracks and share the same
//! configuration), floored at the median and at the mean of all channels (a track crossing a
//! pixel gives it a few packets, so a run whose median is 0 still expects some). With μ that
//! expectation and n the
//! channel's valid data packets over the run:
//! - **hot**: n ≥ `hot_factor` · max(μ, 1) (default 20) and a rate ≥ `hot_min_rate_hz`
//!   (default 10 Hz);
//! - **noisy**: not hot, n ≥ `noisy_min_packets` (default 10: fewer packets cannot tell a noisy
//!   pixel from one crossed by a track or two), n ≥ `noisy_factor` · max(μ, 1) (default 3) and
//!   the Poisson chance of n or more given μ below `noisy_p_value` (default 1e-6);
//! - **dead**: no packet although the chance of that, e^(−μ), is below `dead_p_value`
//!   (default 1e-4, i.e. μ ≥ 9.2): short runs cannot call a channel dead, and the report says
//!   how many channels had too little expectation to judge.
//!
//! Channels sending data that the layout does not list are reported as `unknown`.
//!
//! Known-bad channels (`known_bad_channels`, which the host fills from the configuration's
//! known-bad channel file) whose period holds the run's start are flagged as *known*: shown
//! apart, counted in `known_problem_channels`, and left out of the `hot_channels`, … metrics
//! and the checks, so that only new problems raise them.

use std::collections::BTreeMap;

use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.channel-health]` settings.
    struct Settings {
        /// Hot: at least this many times the expected packet count …
        hot_factor: f64 = 20.0,
        /// … and at least this rate, Hz.
        hot_min_rate_hz: f64 = 10.0,
        /// Noisy: at least this many times the expectation …
        noisy_factor: f64 = 3.0,
        /// … at least this many packets …
        noisy_min_packets: f64 = 10.0,
        /// … and a Poisson chance below this.
        noisy_p_value: f64 = 1e-6,
        /// Dead: silent although the chance of silence is below this.
        dead_p_value: f64 = 1e-4,
        /// Channels listed in the table.
        top: usize = 15,
        /// Hot channels from which the check is an error.
        max_hot: f64 = 20.0,
        /// Known-bad channels (the host fills them from `known_bad_channels = "FILE"`).
        known_bad_channels: Vec<KnownBad> = Vec::new(),
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct ChannelHealth {
    /// Valid data packets per channel, by each packet's own channel key; by pixel in the report
    /// (`ChannelCounts::by_pixel`).
    counts: ChannelCounts,
    span: TimeSpan,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
    #[serde(skip)]
    pixels: Pixels,
}

/// A known-bad channel as the host hands it over.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KnownBad {
    io_group: u8,
    io_channel: u8,
    chip_id: u8,
    channel_id: u8,
    kind: Option<String>,
    from_unix: Option<u64>,
    to_unix: Option<u64>,
}

impl KnownBad {
    /// Whether it covers a channel flagged `kind` in a run starting at `start` (Unix s).
    fn covers(&self, flag: &Flag, start: Option<u64>) -> bool {
        let in_period = match start {
            Some(t) => self.from_unix.is_none_or(|a| a <= t) && self.to_unix.is_none_or(|b| t < b),
            None => self.from_unix.is_none() && self.to_unix.is_none(),
        };
        in_period
            && (self.io_group, self.io_channel, self.chip_id, self.channel_id)
                == (flag.io_group, flag.io_channel, flag.chip_id, flag.channel_id)
            && self.kind.as_deref().is_none_or(|k| k == flag.kind)
    }
}

#[derive(Serialize)]
struct Flag {
    io_group: u8,
    io_channel: u8,
    chip_id: u8,
    channel_id: u8,
    kind: &'static str,
    /// In the known-bad list for this run's period.
    known: bool,
    packets: u64,
    expected: f64,
    rate_hz: f64,
}

/// ln k and ln k! for k = 0, 1, …, grown as asked: the report judges hundreds of thousands of
/// channels, and ln n! summed afresh for each was most of its time. Each entry is computed as
/// the direct sum computes it (ln 1 + ln 2 + … in that order), so the values are the same.
#[derive(Default)]
struct LnTable {
    /// ln k.
    ln: Vec<f64>,
    /// ln k! = ln 1 + … + ln k.
    ln_fact: Vec<f64>,
}

impl LnTable {
    fn grow_to(&mut self, k: u64) {
        let k = k as usize;
        if self.ln.is_empty() {
            self.ln.push(f64::NEG_INFINITY);
            self.ln_fact.push(-0.0); // what an empty f64 sum gives
        }
        while self.ln.len() <= k {
            let next = (self.ln.len() as f64).ln();
            self.ln.push(next);
            self.ln_fact.push(self.ln_fact[self.ln_fact.len() - 1] + next);
        }
    }

    fn ln(&mut self, k: u64) -> f64 {
        self.grow_to(k);
        self.ln[k as usize]
    }

    fn ln_fact(&mut self, k: u64) -> f64 {
        self.grow_to(k);
        self.ln_fact[k as usize]
    }
}

/// ln P(N ≥ n | μ) for a Poisson N, by summing the upper tail in log space.
fn ln_poisson_tail(n: u64, mu: f64, table: &mut LnTable) -> f64 {
    if n == 0 {
        return 0.0;
    }
    if mu <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let ln_mu = mu.ln();
    let mut ln_term = n as f64 * ln_mu - mu - table.ln_fact(n);
    let mut ln_sum = ln_term;
    for k in n + 1..n + 2000 {
        ln_term += ln_mu - table.ln(k);
        let next = ln_sum.max(ln_term) + (1.0 + (-(ln_sum - ln_term).abs()).exp()).ln();
        if next - ln_sum < 1e-12 {
            break;
        }
        ln_sum = next;
    }
    ln_sum.min(0.0)
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Hot, noisy and dead channels against what the run itself expects (the median packet count \
    of the channel's chip, floored at the run median and mean): hot = ≥ 20× expectation and ≥ \
    10 Hz; noisy = ≥ 10 packets, ≥ 3× expectation and a Poisson chance below 1e-6; dead = \
    silent although e^(−expectation) < 1e-4 (short runs cannot call channels dead: \
    `dead_unjudgeable` says how many channels had too little expectation). Figures: top-15 \
    table by rate, the channel-rate spectrum, a flag map (each category its own colour — ok \
    pale green, hot red, noisy orange, dead black, known blue — with its count in the legend, \
    flagged pixels ringed). The full list is in report.json under `results.flagged_channels` \
    as objects `{io_group, io_channel, chip_id, channel_id, kind, known, packets, expected, \
    rate_hz}`. Channels in the configuration's known-bad list (`known_bad_channels = \"FILE\"`, \
    docs/dashboard.md) for the run's period are marked known: `(known)` in the table, blue on \
    the map, counted in `known_problem_channels` and left out of `hot_channels` … and the \
    checks, so only new problems raise them. On the fixture: all 5 simulated hot pixels found, \
    no false ones; 2789 of the 3920 low-rate noisy channels found, no false ones (the command \
    above; most of the others send too few packets in 40 s to pass a 1e-6 Poisson chance). \
    **Bad:** more than `max_hot`/4 = 5 hot channels (warning), 20 (error): disable them in the \
    configuration; a whole chip noisy: its threshold is too low.";

columns! {
    struct Channels from "channels" {
        channel: ChannelKey, packets: u64, adc_sum: u64, adc_sum_sq: u64,
        first_unix_time: Option<u64>, last_unix_time: Option<u64>,
    }
}

impl Plugin for ChannelHealth {
    type Settings = Settings;

    fn info() -> Info {
        Info::new(
            "channel-health",
            "Hot, noisy and dead channels against robust per-run expectations",
        )
        .help(HELP)
        .reads::<Channels>()
        .uses_pixels()
    }

    fn new(settings: Settings, pixels: Pixels) -> Result<Self, String> {
        Ok(Self { counts: ChannelCounts::default(), span: TimeSpan::default(), settings, pixels })
    }

    fn channels(&mut self, batch: &Batch) -> Result<(), String> {
        let c = Channels::read(batch)?;
        for i in 0..c.rows {
            self.counts.add(c.channel[i], c.packets[i]);
            self.span.widen(c.first_unix_time[i], c.last_unix_time[i]);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let counts = self.counts.by_pixel(&self.pixels);
        let seconds = self.span.seconds();
        let count = |id: u32| counts.get(id);
        // Expected count per chip: median over its connected channels.
        let chip_counts = |chip: &[Pixel]| -> Vec<f64> {
            chip.iter().map(|p| count(p.unique_id) as f64).collect()
        };
        let mut all: Vec<f64> = self.pixels.iter().map(|p| count(p.unique_id) as f64).collect();
        let mean = all.iter().sum::<f64>() / all.len().max(1) as f64;
        let global = median(&mut all).max(mean);
        let mut flags = Vec::new();
        let mut unjudged_dead = 0usize;
        let mut ln_table = LnTable::default();
        let flag = |id: u32, kind: &'static str, n: u64, mu: f64| {
            let (g, u, c, ch) = channel_of(id);
            Flag {
                io_group: g,
                io_channel: u,
                chip_id: c,
                channel_id: ch,
                kind,
                known: false,
                packets: n,
                expected: mu,
                rate_hz: n as f64 / seconds,
            }
        };
        for chip in self.pixels.chips() {
            let mu = median(&mut chip_counts(chip)).max(global);
            for p in chip.iter() {
                let id = p.unique_id;
                let n = count(id);
                let rate = n as f64 / seconds;
                if n as f64 >= self.settings.hot_factor * mu.max(1.0)
                    && rate >= self.settings.hot_min_rate_hz
                {
                    flags.push(flag(id, "hot", n, mu));
                } else if n as f64 >= self.settings.noisy_min_packets
                    && n as f64 >= self.settings.noisy_factor * mu.max(1.0)
                    && ln_poisson_tail(n, mu, &mut ln_table) < self.settings.noisy_p_value.ln()
                {
                    flags.push(flag(id, "noisy", n, mu));
                } else if n == 0 {
                    if -mu < self.settings.dead_p_value.ln() {
                        flags.push(flag(id, "dead", n, mu));
                    } else {
                        unjudged_dead += 1;
                    }
                }
            }
        }
        if !self.pixels.is_empty() {
            for (id, n) in counts.iter().filter(|(id, _)| self.pixels.get(*id).is_none()) {
                flags.push(flag(id, "unknown", n, 0.0));
            }
        }
        let start = self.span.range.map(|(a, _)| a);
        for f in &mut flags {
            f.known = self.settings.known_bad_channels.iter().any(|k| k.covers(f, start));
        }
        let kinds = ["hot", "noisy", "dead", "unknown"];
        // New problems only: known ones are counted apart.
        let number = |kind: &str| flags.iter().filter(|f| f.kind == kind && !f.known).count();
        let known = flags.iter().filter(|f| f.known).count();
        let mut ranked: Vec<&Flag> = flags.iter().filter(|f| f.kind != "dead").collect();
        ranked.sort_by(|a, b| b.rate_hz.total_cmp(&a.rate_hz));
        let rows: Vec<Vec<String>> = ranked
            .iter()
            .take(self.settings.top)
            .map(|f| {
                vec![
                    if f.known { format!("{} (known)", f.kind) } else { f.kind.to_string() },
                    format!("{}-{}-{}-{}", f.io_group, f.io_channel, f.chip_id, f.channel_id),
                    f.packets.to_string(),
                    format!("{:.1}", f.expected),
                    format!("{:.2}", f.rate_hz),
                ]
            })
            .collect();
        let table = TypedFigure::table(
            &format!("Top {} flagged channels by rate", rows.len()),
            &["kind", "io_group-io_channel-chip-channel", "packets", "expected", "rate [Hz]"],
            &rows,
        );
        let mut rates = Hist1D::new(70, -3.0, 4.0);
        for p in self.pixels.iter() {
            let n = count(p.unique_id);
            rates.fill(if n > 0 { (n as f64 / seconds).log10() } else { -3.0 }, 1.0);
        }
        let spectrum = svg::Plot::new(
            "Channel rates",
            "log10(rate / Hz)  (silent channels at −3)",
            "channels / bin",
        )
        .log_y()
        .hist(&rates, "")
        .note(format!(
            "median {:.2} Hz; new: {} hot, {} noisy, {} dead; {known} known",
            global / seconds,
            number("hot"),
            number("noisy"),
            number("dead")
        ));
        // Map category: 0 ok, 1 hot, 2 noisy, 3 dead (new), 4 any known problem.
        let flagged: BTreeMap<u32, usize> = flags
            .iter()
            .map(|f| {
                let category = if f.known {
                    4
                } else {
                    kinds.iter().position(|x| *x == f.kind).unwrap_or(0) + 1
                };
                (unique_id(f.io_group, f.io_channel, f.chip_id, f.channel_id), category)
            })
            .collect();
        let map = svg::pixel_category_map(
            &self.pixels,
            &|id| Some(flagged.get(&id).copied().unwrap_or(0)),
            &[
                ("ok", (199, 233, 192)),
                ("hot", (214, 39, 40)),
                ("noisy", (255, 127, 14)),
                ("dead", (0, 0, 0)),
                ("known", (31, 119, 180)),
            ],
            "Flagged channels",
            None,
        );
        let mut report = Report::new()
            .typed("top_flagged", "Top flagged channels", table)
            .plot("rates", "Channel rate spectrum", spectrum)
            .figure("flag_map", "Flagged channels on the anodes", map, &())
            .result("flagged_channels", &flags)
            .metric("median_channel_rate_hz", global / seconds, None, "Hz")
            .metric("dead_unjudgeable", unjudged_dead as f64, None, "channels")
            .metric("known_problem_channels", known as f64, None, "channels");
        for kind in kinds {
            report =
                report.metric(&format!("{kind}_channels"), number(kind) as f64, None, "channels");
        }
        Ok(report.check_max(
            "hot_channels",
            number("hot") as f64,
            self.settings.max_hot / 4.0,
            self.settings.max_hot,
            "channels",
        ))
    }
}

export_plugin!(ChannelHealth);

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail with the table is the tail summed afresh, to the bit, and a known value.
    #[test]
    fn the_tabled_poisson_tail_is_the_direct_sum() {
        fn direct(n: u64, mu: f64) -> f64 {
            if n == 0 {
                return 0.0;
            }
            if mu <= 0.0 {
                return f64::NEG_INFINITY;
            }
            let ln_fact = |k: u64| (1..=k).map(|i| (i as f64).ln()).sum::<f64>();
            let mut ln_term = n as f64 * mu.ln() - mu - ln_fact(n);
            let mut ln_sum = ln_term;
            for k in n + 1..n + 2000 {
                ln_term += mu.ln() - (k as f64).ln();
                let next = ln_sum.max(ln_term) + (1.0 + (-(ln_sum - ln_term).abs()).exp()).ln();
                if next - ln_sum < 1e-12 {
                    break;
                }
                ln_sum = next;
            }
            ln_sum.min(0.0)
        }
        let mut table = LnTable::default();
        // Large n first, then small ones from the grown table, then larger again.
        for n in [5_000u64, 0, 1, 2, 3, 10, 37, 400, 4_999, 9_000] {
            for mu in [0.0, 1e-3, 0.4, 1.0, 3.3, 12.0, 150.0, 2_000.0] {
                let (tabled, fresh) = (ln_poisson_tail(n, mu, &mut table), direct(n, mu));
                assert_eq!(tabled.to_bits(), fresh.to_bits(), "n {n}, mu {mu}");
            }
        }
        // P(N ≥ 1 | 1) = 1 − e⁻¹.
        let p = ln_poisson_tail(1, 1.0, &mut table).exp();
        assert!((p - (1.0 - (-1.0f64).exp())).abs() < 1e-12, "{p}");
    }
}
