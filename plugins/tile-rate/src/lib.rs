//! tile-rate: data rate per pixel tile and per TPC, from the calibrated hits (each hit weighted
//! by the packets merged into it): per tile run-wide and vs time (larpix-monitor's `TileRate`),
//! per TPC vs time. A silent tile is a lost readout path; a loud one is noise.

use std::collections::{BTreeMap, BTreeSet};

use larmon_plugin_sdk::prelude::*;

settings! {
    /// Its `[plugins.tile-rate]` settings.
    struct Settings {
        /// A tile below this fraction of the median tile rate warns.
        warn_low_fraction: f64 = 0.1,
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct TileRate {
    /// Packets per tile of snapshots written before `per_tile_series` (a restarted watcher
    /// keeps them); new packets go only into `per_tile_series`.
    per_tile: BTreeMap<u16, f64>,
    /// Packets per TPC per Unix second.
    per_tpc: BTreeMap<u8, TimeSeries>,
    /// Packets per tile per Unix second.
    #[serde(default)]
    per_tile_series: BTreeMap<u16, TimeSeries>,
    /// First and last Unix second seen.
    span: TimeSpan,
    /// Tiles of the detector (from the detector's pixels; context, not state).
    #[serde(skip)]
    tiles: BTreeSet<u16>,
    /// Scratch of `hits`: each tile's slot in the batch's series (kept, not state).
    #[serde(skip)]
    tile_slots: Vec<u32>,
    /// The same for TPCs.
    #[serde(skip)]
    tpc_slots: Vec<u32>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    Data rate per tile (bars), per tile vs time (a map: tile × time, at most 120 time bins; \
    larpix-monitor's `TileRate`) and per TPC vs time. **Bad:** a dark row in the tile map (a \
    tile stopped at that time), a bright one (noise burst), a tile far below the others (check \
    warns below `warn_low_fraction` = 10 % of the median tile; error when a tile is silent): \
    lost UART/PACMAN path or a tile off; one tile far above the others: noise.";

columns! {
    struct Hits from "hits" { tile: Option<u16>, tpc: Option<u8>, unix_time: u64, n_packets: u16 }
}

impl Plugin for TileRate {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("tile-rate", "Data rate per tile and per TPC")
            .help(HELP)
            .reads::<Hits>()
            .uses_pixels()
    }

    fn new(settings: Settings, pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            per_tile: BTreeMap::new(),
            per_tpc: BTreeMap::new(),
            per_tile_series: BTreeMap::new(),
            span: TimeSpan::default(),
            tiles: pixels.iter().map(|pixel| pixel.tile).collect(),
            tile_slots: Vec::new(),
            tpc_slots: Vec::new(),
            settings,
        })
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        let hits = Hits::read(batch)?;
        // Hits come by channel within an event: runs of one tile, a few hits long. For the
        // batch, each tile's series sits in a slot found by one table load (a map look-up per
        // run was most of this plugin's time); every series is still filled hit by hit in
        // batch order.
        let mut tiles = SeriesSlots::take(&mut self.per_tile_series, &mut self.tile_slots);
        let mut tpcs = SeriesSlots::take(&mut self.per_tpc, &mut self.tpc_slots);
        for run in runs(hits.rows, |i| (hits.tile[i], hits.tpc[i])) {
            let (Some(tile), Some(tpc)) = (hits.tile[run.start], hits.tpc[run.start]) else {
                continue;
            };
            let (by_tile, by_tpc) = (tiles.series(tile), tpcs.series(tpc));
            for i in run {
                let (unix, weight) = (hits.unix_time[i], f64::from(hits.n_packets[i]));
                tpcs.slots[by_tpc].1.fill(unix, weight);
                tiles.slots[by_tile].1.fill(unix, weight);
                self.span.fill(unix);
            }
        }
        tiles.put_back(&mut self.per_tile_series, &mut self.tile_slots);
        tpcs.put_back(&mut self.per_tpc, &mut self.tpc_slots);
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let seconds = self.span.seconds();
        let mut tiles = self.tiles.clone();
        let mut per_tile = self.per_tile.clone();
        for (tile, series) in &self.per_tile_series {
            *per_tile.entry(*tile).or_default() += series.points().iter().map(|p| p.1).sum::<f64>();
        }
        for tile in per_tile.keys() {
            tiles.insert(*tile);
        }
        let (first, last) =
            (tiles.first().copied().unwrap_or(1), tiles.last().copied().unwrap_or(1));
        let mut bars = Hist1D::new(
            usize::from(last - first) + 1,
            f64::from(first) - 0.5,
            f64::from(last) + 0.5,
        );
        let rates: BTreeMap<u16, f64> =
            tiles.iter().map(|t| (*t, per_tile.get(t).copied().unwrap_or(0.0) / seconds)).collect();
        for (tile, rate) in &rates {
            bars.fill(f64::from(*tile), *rate);
        }
        let mut sorted: Vec<f64> = rates.values().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let low: Vec<u16> = rates
            .iter()
            .filter(|(_, r)| **r < self.settings.warn_low_fraction * median)
            .map(|(t, _)| *t)
            .collect();
        let silent: Vec<u16> = rates.iter().filter(|(_, r)| **r == 0.0).map(|(t, _)| *t).collect();
        let bar_svg = svg::Plot::new("Data rate per tile", "tile [id]", "rate [Hz]")
            .hist(&bars, "")
            .note(format!("median {median:.1} Hz over {seconds:.0} s"));
        let mut time_plot = svg::Plot::new("Data rate per TPC", "", "rate [Hz]");
        for (tpc, series) in &self.per_tpc {
            time_plot = time_plot.rate(series, &format!("TPC {tpc}"));
        }
        let tile_map = self.tile_rates_over_time(&tiles);
        let mut report = Report::new()
            .plot("per_tile", "Data rate per tile", bar_svg)
            .plot("per_tpc", "Data rate per TPC vs time", time_plot)
            .typed("per_tile_vs_time", "Data rate per tile vs time", tile_map)
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
                100.0 * self.settings.warn_low_fraction,
                rates.len(),
            ),
        ))
    }
}

impl TileRate {
    /// Every tile's rate over time as a map (tile × time), in at most 120 time bins (a day
    /// of data stays a readable, small figure); a tile without packets in a bin is 0.
    fn tile_rates_over_time(&self, tiles: &BTreeSet<u16>) -> TypedFigure {
        let Some((first, last)) = self.span.range else {
            return TypedFigure::time_map(
                &[],
                (1, 1.0),
                "Data rate per tile vs time",
                "tile [id]",
                "rate [Hz]",
            );
        };
        let bin = (last - first + 1).div_ceil(120).max(1);
        let mut points = Vec::new();
        for tile in tiles {
            let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
            for (t, n) in self.per_tile_series.get(tile).map(TimeSeries::points).unwrap_or_default()
            {
                *sums.entry(first + t.saturating_sub(first) / bin * bin).or_default() += n;
            }
            for start in (first..=last).step_by(bin as usize) {
                let seconds = (bin.min(last + 1 - start)) as f64;
                let rate = sums.get(&start).copied().unwrap_or(0.0) / seconds;
                points.push((start, f64::from(*tile), rate));
            }
        }
        TypedFigure::time_map(
            &points,
            (bin, 1.0),
            "Data rate per tile vs time",
            "tile [id]",
            "rate [Hz]",
        )
    }
}

export_plugin!(TileRate);

/// A batch's time series out of their map: slot `k` holds a key and its series, and
/// `index[key]` is `k + 1` (0: no slot yet).
struct SeriesSlots<K> {
    slots: Vec<(K, TimeSeries)>,
    index: Vec<u32>,
}

impl<K: Copy + Ord + Into<usize>> SeriesSlots<K> {
    /// Moves every series of `map` into slots (`index` is the kept scratch table).
    fn take(map: &mut BTreeMap<K, TimeSeries>, index: &mut Vec<u32>) -> Self {
        let mut index = std::mem::take(index);
        let slots: Vec<(K, TimeSeries)> = std::mem::take(map).into_iter().collect();
        for (k, (key, _)) in slots.iter().enumerate() {
            *entry(&mut index, (*key).into()) = k as u32 + 1;
        }
        Self { slots, index }
    }

    /// The slot of `key`'s series, a new empty one if it had none.
    #[inline]
    fn series(&mut self, key: K) -> usize {
        let at = key.into();
        match self.index.get(at) {
            Some(&slot) if slot > 0 => slot as usize - 1,
            _ => {
                self.slots.push((key, TimeSeries::default()));
                *entry(&mut self.index, at) = self.slots.len() as u32;
                self.slots.len() - 1
            }
        }
    }

    /// Moves the series back into `map`, and the cleared table into `index`.
    fn put_back(mut self, map: &mut BTreeMap<K, TimeSeries>, index: &mut Vec<u32>) {
        for (key, _) in &self.slots {
            self.index[(*key).into()] = 0;
        }
        *map = self.slots.into_iter().collect();
        *index = self.index;
    }
}

/// `index[at]`, the table grown to hold it.
fn entry(index: &mut Vec<u32>, at: usize) -> &mut u32 {
    if index.len() <= at {
        index.resize(at + 1, 0);
    }
    &mut index[at]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills through slots, batch by batch, give every series what filling its map entry
    /// hit by hit gives, keys new and old; the scratch table is left empty.
    #[test]
    fn series_filled_through_slots_are_those_filled_through_the_map() {
        let (mut through_slots, mut through_map) = (BTreeMap::new(), BTreeMap::new());
        let mut index = Vec::new();
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        for batch in 0..20u64 {
            let mut slots = SeriesSlots::take(&mut through_slots, &mut index);
            for _ in 0..500 {
                let (tile, t, w) = ((next() % 40) as u16 * 7, batch * 3 + next() % 4, next() % 5);
                let slot = slots.series(tile);
                slots.slots[slot].1.fill(t, w as f64);
                through_map.entry(tile).or_insert_with(TimeSeries::default).fill(t, w as f64);
            }
            slots.put_back(&mut through_slots, &mut index);
            assert!(index.iter().all(|i| *i == 0), "batch {batch}: the table is cleared");
        }
        assert_eq!(through_slots.len(), through_map.len());
        for ((a, sa), (b, sb)) in through_slots.iter().zip(&through_map) {
            assert_eq!(a, b);
            assert_eq!(sa.points(), sb.points(), "tile {a}");
        }
    }
}
