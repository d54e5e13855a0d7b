//! pixel-maps: per channel mean ADC, ADC RMS and packet rate, drawn on the real anode geometry
//! (one panel per anode; grey pixels sent nothing; pixels at ten times the median rate ringed),
//! and the rate of each TPC alone with its tiles outlined and numbered (larpix-monitor's
//! per-tile `PixelMap`s).
//!
//! Check `silent_chips`: chips of the layout that sent no packet although the run's mean rate
//! makes at least `min_expected_crossings` (10) track crossings per chip expected (expected
//! packets / `packets_per_crossing`, default 10: packets come in clusters, one per crossing, so
//! a short run leaves chips empty by chance and is not judged): warning from 1 chip, error from
//! `error_silent_chips` (10).

use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.pixel-maps]` settings.
    struct Settings {
        /// A chip is judged silent only when this many crossings were expected.
        min_expected_crossings: f64 = 10.0,
        /// Packets a chip gives per crossing track.
        packets_per_crossing: f64 = 10.0,
        /// Silent chips from which the check is an error.
        error_silent_chips: f64 = 10.0,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct PixelMaps {
    /// By each packet's own channel key; by pixel in the report (`ChannelStats::by_pixel`).
    adc: ChannelStats,
    span: TimeSpan,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
    #[serde(skip)]
    pixels: Pixels,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Mean ADC, ADC RMS and packet rate per pixel on the real anode geometry, one panel per TPC; \
    grey pixels sent nothing; on the rate map pixels at ≥ 10 × the median rate are ringed red. \
    One rate map per TPC (`rate_tpcN`) zooms in with the tiles outlined and numbered \
    (larpix-monitor's per-tile `PixelMap`s). **Bad:** dark or grey blocks the size of a chip \
    (10 × 10 chips per tile, 7 × 7 pixels each) or a tile: a chip or tile not read out; \
    isolated bright pixels in the rate map: hot pixels (see channel-health); a gradient in \
    mean ADC across a tile: pedestal drift. Check `silent_chips`: chips that sent nothing \
    although ≥ 10 track crossings were expected (run mean rate, ~10 packets per crossing; \
    shorter runs are not judged): warning from 1 chip, error from 10.";

columns! {
    struct Channels from "channels" {
        channel: ChannelKey, packets: u64, adc_sum: u64, adc_sum_sq: u64,
        first_unix_time: Option<u64>, last_unix_time: Option<u64>,
    }
}

impl Plugin for PixelMaps {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("pixel-maps", "Per-channel mean ADC, ADC RMS and rate on the anode geometry")
            .help(HELP)
            .reads::<Channels>()
            .uses_pixels()
    }

    fn new(settings: Settings, pixels: Pixels) -> Result<Self, String> {
        Ok(Self { adc: ChannelStats::default(), span: TimeSpan::default(), settings, pixels })
    }

    fn channels(&mut self, batch: &Batch) -> Result<(), String> {
        let c = Channels::read(batch)?;
        for i in 0..c.rows {
            let (sum, sum_sq) = (c.adc_sum[i] as f64, c.adc_sum_sq[i] as f64);
            self.adc.add(c.channel[i], &Moments { n: c.packets[i], sum, sum_sq });
            self.span.widen(c.first_unix_time[i], c.last_unix_time[i]);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let adc = &self.adc.by_pixel(&self.pixels);
        let seconds = self.span.seconds();
        let stat = |f: fn(&Moments) -> Option<f64>| move |id: u32| adc.get(id).and_then(|m| f(&m));
        let mean = svg::pixel_map(
            &self.pixels,
            &stat(Moments::mean),
            "Mean ADC per pixel",
            "mean [ADC]",
            false,
            None,
        );
        let rms = svg::pixel_map(
            &self.pixels,
            &stat(Moments::rms),
            "ADC RMS per pixel",
            "RMS [ADC]",
            false,
            None,
        );
        let rate_of = |id: u32| adc.get(id).map(|m| m.n as f64 / seconds);
        let mut rates: Vec<f64> = self.pixels.iter().filter_map(|p| rate_of(p.unique_id)).collect();
        rates.sort_by(f64::total_cmp);
        let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        let rate = svg::pixel_map_marked(
            &self.pixels,
            &rate_of,
            &|id| rate_of(id).is_some_and(|r| median > 0.0 && r >= 10.0 * median),
            "Packet rate per pixel (ringed: ≥ 10 × median)",
            "rate [Hz]",
            true,
        );
        let all_rates = rates.first().zip(rates.last()).map(|(lo, hi)| (*lo, *hi));
        let per_tpc: Vec<(u8, String)> = self
            .pixels
            .anodes()
            .keys()
            .map(|tpc| {
                let title = format!("Packet rate per pixel, TPC {tpc}");
                (
                    *tpc,
                    svg::pixel_map_tpc(
                        &self.pixels,
                        *tpc,
                        &rate_of,
                        &title,
                        "rate [Hz]",
                        true,
                        all_rates,
                    ),
                )
            })
            .collect();
        let seen = self.pixels.iter().filter(|p| adc.get(p.unique_id).is_some()).count();
        let outside = adc.iter().filter(|(id, _)| self.pixels.get(*id).is_none()).count();
        // Chips of the layout and how many packets each sent: (chip, (packets, channels)).
        let chips: Vec<(u32, (u64, u32))> = self
            .pixels
            .chips()
            .map(|chip| {
                let packets = chip.iter().map(|p| adc.get(p.unique_id).map_or(0, |m| m.n)).sum();
                (chip[0].unique_id >> 6, (packets, chip.len() as u32))
            })
            .collect();
        let packets: u64 = chips.iter().map(|(_, c)| c.0).sum();
        let per_channel = packets as f64 / self.pixels.len().max(1) as f64;
        let silent: Vec<u32> = chips
            .iter()
            .filter(|(_, (n, channels))| {
                *n == 0
                    && per_channel * f64::from(*channels) / self.settings.packets_per_crossing
                        >= self.settings.min_expected_crossings
            })
            .map(|(chip, _)| *chip)
            .collect();
        let judged = chips
            .iter()
            .filter(|(_, (_, c))| {
                per_channel * f64::from(*c) / self.settings.packets_per_crossing
                    >= self.settings.min_expected_crossings
            })
            .count();
        let status = if silent.len() as f64 >= self.settings.error_silent_chips {
            CheckStatus::Error
        } else if !silent.is_empty() {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        };
        let named: Vec<String> = silent
            .iter()
            .take(10)
            .map(|c| {
                let (g, u, chip, _) = channel_of(c << 6);
                format!("{g}-{u}-{chip}")
            })
            .collect();
        let mut report = Report::new()
            .figure("mean_adc", "Mean ADC per pixel", mean, &Table(adc))
            .figure("adc_rms", "ADC RMS per pixel", rms, &())
            .figure("rate", "Packet rate per pixel", rate, &seconds);
        for (tpc, svg) in per_tpc {
            report = report.figure(
                &format!("rate_tpc{tpc}"),
                &format!("Packet rate per pixel, TPC {tpc} by tile"),
                svg,
                &(),
            );
        }
        Ok(report
            .metric("channels_with_data", seen as f64, None, "channels")
            .metric("channels_in_layout", self.pixels.len() as f64, None, "channels")
            .metric("channels_outside_layout", outside as f64, None, "channels")
            .metric("silent_chips", silent.len() as f64, None, "chips")
            .check(
                "silent_chips",
                status,
                format!(
                    "{} of {judged} judgeable chips silent (io_group-io_channel-chip: {named:?}); {} chips had too little expectation to judge",
                    silent.len(),
                    chips.len() - judged
                ),
            ))
    }
}

/// `mean_adc.json`: `[unique_id, moments]` per channel in key order, written from the
/// statistics as they are (a copy of the 2x2's 337 k rows took 11 MB more of the report).
struct Table<'a>(&'a ChannelStats);

impl Serialize for Table<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

export_plugin!(PixelMaps);
