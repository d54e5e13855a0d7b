//! timing: the clocks. PPS sync timestamp − 1e7 per io_group (a LArPix/PACMAN clock that runs
//! fast or slow shows here), network delay (PACMAN receipt − ASIC timestamp), data times
//! relative to their trigger, and the time between external triggers.

use std::collections::BTreeMap;

use larmon_plugin_sdk::prelude::*;

/// Ticks per PPS second (10 MHz).
const PPS_TICKS: f64 = 1e7;

#[derive(Serialize, Deserialize)]
struct Timing {
    /// Sync timestamp − 1e7 per io_group, ticks.
    sync_offset: BTreeMap<u8, Hist1D>,
    /// Receipt − timestamp of data packets, ticks (PPS rollover in between corrected).
    delay: Hist1D,
    /// Hit time − t0 of triggered hits, µs.
    trigger_relative: Hist1D,
    /// Time between consecutive external triggers, ms (log10).
    trigger_spacing: Hist1D,
    /// t0 of the last triggered event seen, ticks (spacing continues across batches).
    last_t0: Option<f64>,
    /// Largest |sync timestamp − 1e7| seen, also outside the histogram range.
    max_abs_sync_offset: f64,
    max_sync_offset_ticks: f64,
}

impl Plugin for Timing {
    fn info() -> Info {
        Info::new(
            "timing",
            "PPS sync offsets, network delay, trigger-relative times, trigger spacing",
        )
        .consumes(
            "packets",
            &[
                "packet_type",
                "valid_parity",
                "io_group",
                "timestamp",
                "trigger_type",
                "receipt_timestamp",
            ],
        )
        .consumes("hits", &["drift_ticks"])
        .consumes("events", &["kind", "t0_ticks"])
        .config_key("max_sync_offset_ticks")
    }

    fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            sync_offset: BTreeMap::new(),
            delay: Hist1D::new(200, 0.0, 1000.0),
            trigger_relative: Hist1D::new(220, -10.0, 210.0),
            trigger_spacing: Hist1D::new(120, -2.0, 4.0),
            last_t0: None,
            max_abs_sync_offset: 0.0,
            max_sync_offset_ticks: config_number(config, "max_sync_offset_ticks", 10.0),
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        let (kind, valid, group) =
            (batch.u8("packet_type")?, batch.u8("valid_parity")?, batch.u8("io_group")?);
        let (timestamp, trigger_type) = (batch.u64("timestamp")?, batch.u8("trigger_type")?);
        let receipt = batch.u32("receipt_timestamp")?;
        for i in 0..batch.len() {
            match kind[i] {
                0 if valid[i] == 1 && receipt[i] != 0 => {
                    let mut d = f64::from(receipt[i]) - (timestamp[i] & 0x7FFF_FFFF) as f64;
                    if d < 0.0 {
                        d += PPS_TICKS; // the PPS reset came between stamping and receipt
                    }
                    self.delay.fill(d, 1.0);
                }
                6 if trigger_type[i] == b'S' => {
                    let offset = timestamp[i] as f64 - PPS_TICKS;
                    self.sync_offset
                        .entry(group[i])
                        .or_insert_with(|| Hist1D::new(41, -20.5, 20.5))
                        .fill(offset, 1.0);
                    self.max_abs_sync_offset = self.max_abs_sync_offset.max(offset.abs());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        for drift in batch.opt_f32("drift_ticks")?.into_iter().flatten() {
            self.trigger_relative.fill(f64::from(drift) / 10.0, 1.0);
        }
        Ok(())
    }

    fn events(&mut self, batch: &Batch) -> Result<(), String> {
        let (kind, t0) = (batch.u8("kind")?, batch.opt_f64("t0_ticks")?);
        for (k, t0) in kind.iter().zip(t0) {
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
        self.delay.merge(&other.delay)?;
        self.trigger_relative.merge(&other.trigger_relative)?;
        // One spacing across the boundary of two parts is not known to either; the merged
        // state continues from the later part's last trigger (so an empty instance merged with
        // a snapshot — a restart of `larmon watch` — resumes exactly).
        self.last_t0 = other.last_t0.or(self.last_t0);
        self.trigger_spacing.merge(&other.trigger_spacing)
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
        let delay = svg::Plot::new(
            "Network delay",
            "receipt − timestamp [ticks of 0.1 µs]",
            "packets / bin",
        )
        .log_y()
        .hist(&self.delay, "")
        .note(format!("mean {:.0} ticks", self.delay.mean().unwrap_or(0.0)));
        let relative = svg::Plot::new("Hit time relative to trigger", "t − t0 [µs]", "hits / µs")
            .hist(&self.trigger_relative, "");
        let spacing =
            svg::Plot::new("Time between external triggers", "log10(Δt / ms)", "triggers / bin")
                .hist(&self.trigger_spacing, "");
        let worst = self.max_abs_sync_offset;
        let mut report = Report::new()
            .plot("sync_offset", "PPS sync timestamp − 1e7", sync)
            .plot("network_delay", "Network delay", delay)
            .plot("trigger_relative", "Hit time relative to trigger", relative)
            .plot("trigger_spacing", "Time between triggers", spacing)
            .metric("mean_network_delay_ticks", self.delay.mean().unwrap_or(0.0), None, "ticks")
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
            self.max_sync_offset_ticks,
            10.0 * self.max_sync_offset_ticks,
            "ticks",
        ))
    }
}

export_plugin!(Timing);
