//! timing: the clocks. PPS sync timestamp − 1e7 per io_group, as a histogram and vs time (a
//! LArPix/PACMAN clock that runs fast or slow shows here); network delay (PACMAN receipt −
//! ASIC timestamp) and its UART synchronisation (delay mod 264 = (64 + 2) · 4 bit times) per
//! io_group; data packets within ±100 µs of an external trigger per io_group; hit times
//! relative to their event's t0 per TPC; the time between external triggers.
//! (larpix-monitor's `TimestampHistograms`, `TriggerHistograms`, `PacmanSyncHistograms`.)

use std::collections::BTreeMap;

use larmon_plugin_sdk::prelude::*;

/// Ticks per PPS second (10 MHz).
const PPS_TICKS: f64 = 1e7;
/// One UART word: 64 bits + start and stop, four clock ticks per bit.
const UART_WORD_TICKS: u32 = 264;
/// The coincidence window around an external trigger, ticks (100 µs).
const COINCIDENCE_TICKS: f64 = 1000.0;

/// `delay.rem_euclid(UART_WORD_TICKS)`: for a whole number of ticks (every delay of two
/// integer timestamps) by an integer remainder, which gives the same exact value without Wasm's
/// software `fmod` per packet. Delays of data packets are whole and in [0, 2³²) (a 32-bit
/// receipt minus a 31-bit timestamp): their remainder is taken in 32 bits, where a constant
/// divisor becomes a multiplication (Wasm has no 64-bit high multiply, so a 64-bit remainder is
/// a division instruction per packet).
#[inline]
fn uart_phase(delay: f64) -> f64 {
    if delay.trunc() == delay {
        if (0.0..4_294_967_296.0).contains(&delay) {
            return ((delay as u32) % UART_WORD_TICKS) as f64;
        }
        if delay.abs() < 9.0e15 {
            return (delay as i64).rem_euclid(i64::from(UART_WORD_TICKS)) as f64;
        }
    }
    delay.rem_euclid(f64::from(UART_WORD_TICKS))
}

/// `a − b` of two timestamps that reset every PPS second, in (−0.5 s, 0.5 s].
#[inline]
fn pps_difference(a: f64, b: f64) -> f64 {
    let mut d = a - b;
    if d.abs() >= PPS_TICKS {
        d = d.rem_euclid(PPS_TICKS); // not a timestamp of this second: still defined
    }
    if d > PPS_TICKS / 2.0 {
        d - PPS_TICKS
    } else if d <= -PPS_TICKS / 2.0 {
        d + PPS_TICKS
    } else {
        d
    }
}

/// One io_group's link: network delay, its UART phase and the data around external triggers.
#[derive(Clone, Serialize, Deserialize)]
struct Link {
    /// Receipt − timestamp of data packets, ticks.
    delay: Hist1D,
    /// Network delay mod 264 ticks (UART synchronisation).
    uart_phase: Hist1D,
    /// Data packets around external triggers.
    coincidence: Coincidence,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            delay: Hist1D::new(200, 0.0, 1000.0),
            uart_phase: Hist1D::new(66, 0.0, f64::from(UART_WORD_TICKS)),
            coincidence: Coincidence::default(),
        }
    }
}

/// Data packets around the external triggers of one io_group.
#[derive(Clone, Serialize, Deserialize)]
struct Coincidence {
    /// Data timestamp − trigger timestamp within ±100 µs, µs.
    dt: Hist1D,
    /// The last external trigger's timestamp, ticks.
    last_trigger: Option<f64>,
    /// The data timestamps of the last 100 µs (a trigger may follow them).
    recent: std::collections::VecDeque<f64>,
}

impl Default for Coincidence {
    fn default() -> Self {
        Self { dt: Hist1D::new(100, -100.0, 100.0), last_trigger: None, recent: Default::default() }
    }
}

impl Coincidence {
    fn data(&mut self, timestamp: f64) {
        if let Some(trigger) = self.last_trigger {
            let d = pps_difference(timestamp, trigger);
            if d.abs() <= COINCIDENCE_TICKS {
                self.dt.fill(d / 10.0, 1.0);
            }
        }
        self.data_without_trigger(timestamp);
    }

    /// Remembers a data timestamp for the next trigger.
    fn data_without_trigger(&mut self, timestamp: f64) {
        while self.recent.front().is_some_and(|old| {
            pps_difference(timestamp, *old) > COINCIDENCE_TICKS || self.recent.len() >= 4096
        }) {
            self.recent.pop_front();
        }
        self.recent.push_back(timestamp);
    }

    fn trigger(&mut self, timestamp: f64) {
        for data in self.recent.drain(..) {
            let d = pps_difference(data, timestamp);
            if (-COINCIDENCE_TICKS..0.0).contains(&d) {
                self.dt.fill(d / 10.0, 1.0);
            }
        }
        self.last_trigger = Some(timestamp);
    }
}

settings! {
    /// Its `[plugins.timing]` settings.
    struct Settings {
        /// |sync offset| above which the check warns (ten times: error).
        max_sync_offset_ticks: f64 = 10.0,
    }
}

#[derive(Serialize, Deserialize)]
struct Timing {
    /// Sync timestamp − 1e7 per io_group, ticks.
    sync_offset: BTreeMap<u8, Hist1D>,
    /// Delay (receipt − timestamp of data packets, ticks, PPS rollover in between corrected),
    /// UART phase and trigger coincidences per io_group. The delay of all io_groups is their
    /// sum, taken in the report: counts are whole numbers, so the sum is exact and equals a
    /// histogram filled packet by packet, without a second fill per packet.
    #[serde(default)]
    links: BTreeMap<u8, Link>,
    /// (Unix second, sync timestamp − 1e7) of every PPS sync, per io_group.
    #[serde(default)]
    sync_over_time: BTreeMap<u8, Vec<(u64, f64)>>,
    /// Hit time − t0 per TPC, µs.
    #[serde(default)]
    trigger_relative_per_tpc: BTreeMap<u8, Hist1D>,
    /// Hit time − t0 of triggered hits, µs.
    trigger_relative: Hist1D,
    /// Time between consecutive external triggers, ms (log10).
    trigger_spacing: Hist1D,
    /// t0 of the last triggered event seen, ticks (spacing continues across batches).
    last_t0: Option<f64>,
    /// Largest |sync timestamp − 1e7| seen, also outside the histogram range.
    max_abs_sync_offset: f64,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    PPS sync timestamp − 1e7 per io_group (ticks; a healthy 10 MHz clock gives a spike at −1: \
    the counter is read one tick before the reset), as a histogram and vs time \
    (larpix-monitor's `PacmanSyncHistograms`); network delay per io_group (PACMAN receipt − \
    ASIC timestamp, PPS rollover corrected) and its UART synchronisation (delay mod 264 ticks \
    = one 66-bit UART word at 4 ticks per bit; `TimestampHistograms`); data packets within \
    ±100 µs of each external trigger of their io_group (`TriggerHistograms`); hit times \
    relative to their trigger per TPC (flat from 0 to the full drift time); and the time \
    between external triggers (log scale). **Bad:** the sync spike away from −1 or wide, or a \
    sync series wandering in time (clock drift; check `sync_offset` warns above \
    `max_sync_offset_ticks` 10, error above 100), one io_group's network delay or UART phase \
    unlike the others (a congested or mis-synchronised link), no excess of data after the \
    external triggers (trigger not reaching the PACMAN), trigger-relative times not flat or \
    extending past the full drift time.";

/// Merged by hand: histograms add, but each link's trigger-coincidence state and the trigger
/// spacing carry on from the later part, and the sync points stay in time order.
impl Merge for Timing {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (group, h) in other.sync_offset {
            match self.sync_offset.get_mut(&group) {
                Some(mine) => mine.merge(&h)?,
                None => {
                    self.sync_offset.insert(group, h);
                }
            }
        }
        self.max_abs_sync_offset = self.max_abs_sync_offset.max(other.max_abs_sync_offset);
        merge_maps(&mut self.trigger_relative_per_tpc, other.trigger_relative_per_tpc)?;
        for (group, mut points) in other.sync_over_time {
            let mine = self.sync_over_time.entry(group).or_default();
            mine.append(&mut points);
            mine.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        for (group, theirs) in other.links {
            let link = self.links.entry(group).or_default();
            link.delay.merge(&theirs.delay)?;
            link.uart_phase.merge(&theirs.uart_phase)?;
            let (mine, theirs) = (&mut link.coincidence, theirs.coincidence);
            mine.dt.merge(&theirs.dt)?;
            // The later part's trigger and data continue (as last_t0 below).
            if theirs.last_trigger.is_some() {
                mine.last_trigger = theirs.last_trigger;
                mine.recent = theirs.recent;
            } else {
                for stamp in theirs.recent {
                    mine.data_without_trigger(stamp);
                }
            }
        }
        self.trigger_relative.merge(&other.trigger_relative)?;
        // One spacing across the boundary of two parts is not known to either; the merged
        // state continues from the later part's last trigger (so an empty instance merged with
        // a snapshot — a restart of `larmon watch` — resumes exactly).
        self.last_t0 = other.last_t0.or(self.last_t0);
        self.trigger_spacing.merge(&other.trigger_spacing)
    }
}

columns! {
    struct Packets from "packets" {
        packet_type: u8, valid_parity: u8, io_group: u8, timestamp: u64, trigger_type: u8,
        receipt_timestamp: u32, unix_time: Option<u64>,
    }
    struct Hits from "hits" { drift_ticks: Option<f32>, tpc: Option<u8> }
    struct Events from "events" { kind: u8, t0_ticks: Option<f64> }
}

impl Plugin for Timing {
    type Settings = Settings;

    fn info() -> Info {
        Info::new(
            "timing",
            "PPS sync offsets, network delay, trigger-relative times, trigger spacing",
        )
        .help(HELP)
        .reads::<Packets>()
        .reads::<Hits>()
        .reads::<Events>()
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            sync_offset: BTreeMap::new(),
            links: BTreeMap::new(),
            sync_over_time: BTreeMap::new(),
            trigger_relative_per_tpc: BTreeMap::new(),
            trigger_relative: Hist1D::new(220, -10.0, 210.0),
            trigger_spacing: Hist1D::new(120, -2.0, 4.0),
            last_t0: None,
            max_abs_sync_offset: 0.0,
            settings,
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        let p = Packets::read(batch)?;
        let (kind, valid, group) = (p.packet_type, p.valid_parity, p.io_group);
        let (timestamp, trigger_type, receipt) = (p.timestamp, p.trigger_type, p.receipt_timestamp);
        let unix = p.unix_time;
        // Each io_group's link looked up once per batch, not once per packet.
        let mut present = [false; 256];
        for g in group {
            present[usize::from(*g)] = true;
        }
        for (g, _) in present.iter().enumerate().filter(|(_, p)| **p) {
            self.links.entry(g as u8).or_default();
        }
        let Self { links, sync_offset, sync_over_time, max_abs_sync_offset, .. } = self;
        let mut slots: Vec<Option<&mut Link>> = (0..256).map(|_| None).collect();
        for (g, link) in links.iter_mut() {
            slots[usize::from(*g)] = Some(link);
        }
        for i in 0..p.rows {
            let Some(link) = slots[usize::from(group[i])].as_mut() else { continue };
            match kind[i] {
                0 if valid[i] == 1 => {
                    let stamp = (timestamp[i] & 0x7FFF_FFFF) as f64;
                    link.coincidence.data(stamp);
                    if receipt[i] == 0 {
                        continue;
                    }
                    let mut d = f64::from(receipt[i]) - stamp;
                    if d < 0.0 {
                        d += PPS_TICKS; // the PPS reset came between stamping and receipt
                    }
                    link.delay.fill(d, 1.0);
                    link.uart_phase.fill(uart_phase(d), 1.0);
                }
                7 if trigger_type[i] == 2 => {
                    link.coincidence.trigger((timestamp[i] & 0xFFFF_FFFF) as f64);
                }
                6 if trigger_type[i] == b'S' => {
                    let offset = timestamp[i] as f64 - PPS_TICKS;
                    if let Some(t) = unix[i] {
                        sync_over_time.entry(group[i]).or_default().push((t, offset));
                    }
                    sync_offset
                        .entry(group[i])
                        .or_insert_with(|| Hist1D::new(41, -20.5, 20.5))
                        .fill(offset, 1.0);
                    *max_abs_sync_offset = max_abs_sync_offset.max(offset.abs());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        let hits = Hits::read(batch)?;
        let Self { trigger_relative, trigger_relative_per_tpc, .. } = self;
        // Hits come in runs of one TPC: each run with a drift time finds its TPC's histogram
        // once, not once per hit.
        for run in runs(hits.rows, |i| hits.tpc[i]) {
            let tpc = hits.tpc[run.start];
            let drifts = &hits.drift_ticks[run];
            let mut per_tpc = match tpc {
                Some(tpc) if drifts.iter().any(Option::is_some) => Some(
                    trigger_relative_per_tpc
                        .entry(tpc)
                        .or_insert_with(|| Hist1D::new(220, -10.0, 210.0)),
                ),
                _ => None,
            };
            for drift in drifts.iter().flatten() {
                let us = f64::from(*drift) / 10.0;
                trigger_relative.fill(us, 1.0);
                if let Some(histogram) = per_tpc.as_mut() {
                    histogram.fill(us, 1.0);
                }
            }
        }
        Ok(())
    }

    fn events(&mut self, batch: &Batch) -> Result<(), String> {
        let events = Events::read(batch)?;
        for (k, t0) in events.kind.iter().zip(events.t0_ticks) {
            if let (1, Some(t0)) = (*k, t0) {
                if let Some(last) = self.last_t0 {
                    let ms = (t0 - last) / 1e4;
                    self.trigger_spacing.fill(if ms > 0.0 { ms.log10() } else { -2.0 }, 1.0);
                }
                self.last_t0 = Some(t0);
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut sync =
            svg::Plot::new("PPS sync timestamp − 1e7", "sync timestamp − 1e7 [ticks]", "syncs")
                .x_range(-20.5, 20.5);
        for (group, h) in &self.sync_offset {
            sync = sync.hist(h, &format!("io_group {group}"));
        }
        if self.sync_offset.is_empty() {
            sync = sync.note("no PPS sync rows");
        }
        let mut sync_time =
            svg::Plot::new("PPS sync timestamp − 1e7 vs time", "", "sync timestamp − 1e7 [ticks]");
        for (group, points) in &self.sync_over_time {
            sync_time = sync_time.points(
                points.iter().map(|(t, v)| (*t as f64 + 0.5, *v)).collect(),
                &format!("io_group {group}"),
            );
        }
        sync_time = sync_time.time_axis();
        // One histogram of each io_group's link, overlaid.
        let per_group = |title: &str, x: &str, y: &str, pick: fn(&Link) -> &Hist1D, log: bool| {
            let mut plot = svg::Plot::new(title, x, y);
            if log {
                plot = plot.log_y();
            }
            self.links.iter().fold(plot, |plot, (group, link)| {
                plot.hist(pick(link), &format!("io_group {group}"))
            })
        };
        let mut all_delays = Hist1D::new(200, 0.0, 1000.0);
        for link in self.links.values() {
            all_delays.merge(&link.delay)?;
        }
        let mean_delay = all_delays.mean().unwrap_or(0.0);
        let delay = per_group(
            "Network delay",
            "receipt − timestamp [ticks of 0.1 µs]",
            "packets / bin",
            |link| &link.delay,
            true,
        )
        .note(format!("mean {mean_delay:.0} ticks"));
        let uart = per_group(
            "UART synchronisation",
            "network delay mod 264 [ticks]",
            "packets / bin",
            |link| &link.uart_phase,
            false,
        );
        let mut coincidence = per_group(
            "Data packets around external triggers",
            "data − trigger timestamp [µs]",
            "packets / 2 µs",
            |link| &link.coincidence.dt,
            false,
        );
        if self.links.values().all(|l| l.coincidence.last_trigger.is_none()) {
            coincidence = coincidence.note("no external trigger packets");
        }
        let relative = self.trigger_relative_per_tpc.iter().fold(
            svg::Plot::new("Hit time relative to trigger", "t − t0 [µs]", "hits / µs"),
            |plot, (tpc, h)| plot.hist(h, &format!("TPC {tpc}")),
        );
        let spacing =
            svg::Plot::new("Time between external triggers", "log10(Δt / ms)", "triggers / bin")
                .hist(&self.trigger_spacing, "");
        let worst = self.max_abs_sync_offset;
        let mut report = Report::new()
            .plot("sync_offset", "PPS sync timestamp − 1e7", sync)
            .plot("network_delay", "Network delay", delay)
            .plot("trigger_relative", "Hit time relative to trigger", relative)
            .plot("sync_vs_time", "PPS sync timestamp − 1e7 vs time", sync_time)
            .plot("uart_sync", "UART synchronisation", uart)
            .plot("trigger_coincidence", "Data around external triggers", coincidence)
            .plot("trigger_spacing", "Time between triggers", spacing)
            .metric("mean_network_delay_ticks", mean_delay, None, "ticks")
            .metric("max_abs_sync_offset_ticks", worst, None, "ticks");
        for (group, h) in &self.sync_offset {
            report = report.metric(
                &format!("io_group{group}_sync_offset_ticks"),
                h.mean().unwrap_or(0.0),
                None,
                "ticks",
            );
        }
        Ok(report.check_max(
            "sync_offset",
            worst,
            self.settings.max_sync_offset_ticks,
            10.0 * self.settings.max_sync_offset_ticks,
            "ticks",
        ))
    }
}

/// Adds `other`'s histograms to `mine`, key by key.
fn merge_maps<K: Ord>(
    mine: &mut BTreeMap<K, Hist1D>,
    other: BTreeMap<K, Hist1D>,
) -> Result<(), String> {
    for (key, h) in other {
        match mine.get_mut(&key) {
            Some(m) => m.merge(&h)?,
            None => {
                mine.insert(key, h);
            }
        }
    }
    Ok(())
}

export_plugin!(Timing);

#[cfg(test)]
mod tests {
    use super::*;

    /// The UART phase is `rem_euclid` by 264 ticks on every kind of delay: whole ones in and
    /// out of 32 bits, negative ones, fractions, huge ones.
    #[test]
    fn the_uart_phase_is_the_euclidean_remainder() {
        let mut bits = 0x853C_49E6_748F_EA9Bu64;
        let mut delays = vec![0.0, -0.0, 263.0, 264.0, 265.0, -1.0, -264.0, 4_294_967_295.0];
        delays.extend([4_294_967_296.0, 4_294_967_297.0, 9.5e15, -9.5e15, 0.5, -0.5, 1e300]);
        for _ in 0..100_000 {
            bits = bits.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let whole = (bits >> 20) as f64 - 1e12; // whole, negative and positive, past 2³²
            delays.extend([whole, (bits >> 32) as f64, f64::from((bits >> 40) as u32) + 0.25]);
        }
        for d in delays {
            let expected = d.rem_euclid(f64::from(UART_WORD_TICKS));
            // (−0 gives +0 where `rem_euclid` gives −0: the same bin.)
            assert_eq!(uart_phase(d), expected, "delay {d}");
        }
    }
}
