//! tile-rate: data rate per pixel tile and per TPC, from the calibrated hits (each hit weighted
//! by the packets merged into it). A silent tile is a lost readout path; a loud one is noise.

use std::collections::{BTreeMap, BTreeSet};

use larmon_plugin_sdk::prelude::*;

#[derive(Serialize, Deserialize)]
struct TileRate {
    /// Packets per tile.
    per_tile: BTreeMap<u16, f64>,
    /// Packets per TPC per Unix second.
    per_tpc: BTreeMap<u8, TimeSeries>,
    /// First and last Unix second seen.
    span: TimeSpan,
    /// Tiles of the detector (from the `pixels` stream; context, not state).
    #[serde(skip)]
    tiles: BTreeSet<u16>,
    warn_low_fraction: f64,
}

impl Plugin for TileRate {
    fn info() -> Info {
        Info::new("tile-rate", "Data rate per tile and per TPC")
            .consumes("hits", &["tile", "tpc", "unix_time", "n_packets"])
            .consumes("pixels", &["tile"])
            .config_key("warn_low_fraction")
    }

    fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            per_tile: BTreeMap::new(),
            per_tpc: BTreeMap::new(),
            span: TimeSpan::default(),
            tiles: BTreeSet::new(),
            warn_low_fraction: config_number(config, "warn_low_fraction", 0.1),
        })
    }

    fn pixels(&mut self, batch: &Batch) -> Result<(), String> {
        self.tiles.extend(batch.u16("tile")?);
        Ok(())
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        let (tile, tpc) = (batch.opt_u16("tile")?, batch.opt_u8("tpc")?);
        let (unix, n) = (batch.u64("unix_time")?, batch.u16("n_packets")?);
        for i in 0..batch.len() {
            let (Some(tile), Some(tpc)) = (tile[i], tpc[i]) else { continue };
            let weight = f64::from(n[i]);
            *self.per_tile.entry(tile).or_default() += weight;
            self.per_tpc.entry(tpc).or_default().fill(unix[i], weight);
            self.span.fill(unix[i]);
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (tile, n) in other.per_tile {
            *self.per_tile.entry(tile).or_default() += n;
        }
        for (tpc, series) in other.per_tpc {
            self.per_tpc.entry(tpc).or_default().merge(&series);
        }
        self.span.merge(&other.span);
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let seconds = self.span.seconds();
        let mut tiles = self.tiles.clone();
        for tile in self.per_tile.keys() {
            tiles.insert(*tile);
        }
        let (first, last) =
            (tiles.first().copied().unwrap_or(1), tiles.last().copied().unwrap_or(1));
        let mut bars = Hist1D::new(
            usize::from(last - first) + 1,
            f64::from(first) - 0.5,
            f64::from(last) + 0.5,
        );
        let rates: BTreeMap<u16, f64> = tiles
            .iter()
            .map(|t| (*t, self.per_tile.get(t).copied().unwrap_or(0.0) / seconds))
            .collect();
        for (tile, rate) in &rates {
            bars.fill(f64::from(*tile), *rate);
        }
        let mut sorted: Vec<f64> = rates.values().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let low: Vec<u16> = rates
            .iter()
            .filter(|(_, r)| **r < self.warn_low_fraction * median)
            .map(|(t, _)| *t)
            .collect();
        let silent: Vec<u16> = rates.iter().filter(|(_, r)| **r == 0.0).map(|(t, _)| *t).collect();
        let bar_svg = svg::Plot::new("Data rate per tile", "tile", "rate [Hz]")
            .hist(&bars, "")
            .note(format!("median {median:.1} Hz over {seconds:.0} s"));
        let t0 = self.span.range.map_or(0, |s| s.0);
        let mut time_plot =
            svg::Plot::new("Data rate per TPC", "time since first hit [s]", "rate [Hz]");
        for (tpc, series) in &self.per_tpc {
            let points =
                series.points().into_iter().map(|(t, v)| ((t - t0) as f64 + 0.5, v)).collect();
            time_plot = time_plot.line(points, &format!("TPC {tpc}"));
        }
        let mut report = Report::new()
            .plot("per_tile", "Data rate per tile", bar_svg)
            .plot("per_tpc", "Data rate per TPC vs time", time_plot)
            .metric("median_tile_rate_hz", median, None, "Hz")
            .metric("low_rate_tiles", low.len() as f64, None, "tiles");
        for (tpc, series) in &self.per_tpc {
            let total: f64 = series.points().iter().map(|p| p.1).sum();
            report = report.metric(&format!("tpc{tpc}_rate_hz"), total / seconds, None, "Hz");
        }
        let status = if !silent.is_empty() {
            CheckStatus::Error
        } else if !low.is_empty() {
            CheckStatus::Warning
        } else {
            CheckStatus::Ok
        };
        // Each list names its own tiles: "16 silent tiles of 16: []" helped nobody.
        let named = |what: &str, tiles: &[u16]| match tiles {
            [] => format!("no {what} tile"),
            _ => format!("{} {what} ({tiles:?})", tiles.len()),
        };
        let low_only: Vec<u16> = low.iter().copied().filter(|t| !silent.contains(t)).collect();
        Ok(report.check(
            "tile_rates",
            status,
            format!(
                "{}, {} (< {:.0} % of the median) among {} tiles",
                named("silent", &silent),
                named("low", &low_only),
                100.0 * self.warn_low_fraction,
                rates.len(),
            ),
        ))
    }
}

export_plugin!(TileRate);
