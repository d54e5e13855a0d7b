//! Mergeable accumulators: weighted 1-D and 2-D histograms and a time series. Merging two of
//! them gives exactly what one would hold after seeing both inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A weighted 1-D histogram with fixed, equal bins plus under- and overflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hist1D {
    /// Lower edge of the first bin.
    pub lo: f64,
    /// Upper edge of the last bin.
    pub hi: f64,
    /// Sum of weights per bin.
    pub counts: Vec<f64>,
    /// Sum of weights below `lo`.
    pub underflow: f64,
    /// Sum of weights at or above `hi` (and NaN).
    pub overflow: f64,
}

impl Hist1D {
    /// `bins` equal bins over `[lo, hi)`.
    pub fn new(bins: usize, lo: f64, hi: f64) -> Self {
        Self { lo, hi, counts: vec![0.0; bins.max(1)], underflow: 0.0, overflow: 0.0 }
    }

    /// Bin width.
    pub fn width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }

    /// Adds `weight` at `x`.
    #[inline(always)] // into the plugin's loop: a Wasm call costs stack and epoch checks
    pub fn fill(&mut self, x: f64, weight: f64) {
        if x < self.lo {
            self.underflow += weight;
        } else if x >= self.hi || x.is_nan() {
            self.overflow += weight;
        } else {
            let i = (((x - self.lo) / self.width()) as usize).min(self.counts.len() - 1);
            self.counts[i] += weight;
        }
    }

    /// Centre of bin `i`.
    pub fn center(&self, i: usize) -> f64 {
        self.lo + (i as f64 + 0.5) * self.width()
    }

    /// Sum of weights in the bins (without under/overflow).
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Weighted mean of the bin centres, if any weight.
    pub fn mean(&self) -> Option<f64> {
        let total = self.total();
        (total > 0.0).then(|| {
            self.counts.iter().enumerate().map(|(i, w)| w * self.center(i)).sum::<f64>() / total
        })
    }

    /// Adds another histogram with the same binning.
    pub fn merge(&mut self, other: &Hist1D) -> Result<(), String> {
        if self.counts.len() != other.counts.len() || self.lo != other.lo || self.hi != other.hi {
            return Err("merging histograms with different binning".into());
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.underflow += other.underflow;
        self.overflow += other.overflow;
        Ok(())
    }

    /// Adds `other` with its x axis multiplied by `factor` > 0 (e.g. a drift-time slice of
    /// charges corrected for attenuation): each bin's content is spread evenly over
    /// `[lo·factor, hi·factor]` of this histogram's bins, so no rounding to bin edges biases a
    /// peak. Under- and overflow stay what they were scaled from.
    pub fn add_scaled(&mut self, other: &Hist1D, factor: f64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let width = self.width();
        for (i, &w) in other.counts.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            let a = (other.lo + i as f64 * other.width()) * factor;
            let b = (other.lo + (i + 1) as f64 * other.width()) * factor;
            let span = b - a;
            if b <= self.lo {
                self.underflow += w;
                continue;
            }
            if a >= self.hi {
                self.overflow += w;
                continue;
            }
            if a < self.lo {
                self.underflow += w * (self.lo - a) / span;
            }
            if b > self.hi {
                self.overflow += w * (b - self.hi) / span;
            }
            let (from, to) = (a.max(self.lo), b.min(self.hi));
            let first = (((from - self.lo) / width) as usize).min(self.counts.len() - 1);
            let last =
                (((to - self.lo) / width).ceil() as usize).clamp(first + 1, self.counts.len());
            for k in first..last {
                let (lo, hi) = (self.lo + k as f64 * width, self.lo + (k + 1) as f64 * width);
                let overlap = hi.min(to) - lo.max(from);
                if overlap > 0.0 {
                    self.counts[k] += w * overlap / span;
                }
            }
        }
        self.underflow += other.underflow;
        self.overflow += other.overflow;
    }
}

/// A weighted 2-D histogram (row-major counts, `ny` rows of `nx` bins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hist2D {
    /// x binning.
    pub x: (usize, f64, f64),
    /// y binning.
    pub y: (usize, f64, f64),
    /// Sum of weights per bin, `counts[iy * nx + ix]`.
    pub counts: Vec<f64>,
    /// Weight outside the ranges.
    pub outside: f64,
}

impl Hist2D {
    /// `nx × ny` bins over `[xlo, xhi) × [ylo, yhi)`.
    pub fn new(nx: usize, xlo: f64, xhi: f64, ny: usize, ylo: f64, yhi: f64) -> Self {
        let (nx, ny) = (nx.max(1), ny.max(1));
        Self { x: (nx, xlo, xhi), y: (ny, ylo, yhi), counts: vec![0.0; nx * ny], outside: 0.0 }
    }

    /// Adds `weight` at (x, y).
    #[inline(always)] // into the plugin's loop: a Wasm call costs stack and epoch checks
    pub fn fill(&mut self, x: f64, y: f64, weight: f64) {
        let bin = |v: f64, (n, lo, hi): (usize, f64, f64)| {
            (v >= lo && v < hi).then(|| (((v - lo) / (hi - lo) * n as f64) as usize).min(n - 1))
        };
        match (bin(x, self.x), bin(y, self.y)) {
            (Some(ix), Some(iy)) => self.counts[iy * self.x.0 + ix] += weight,
            _ => self.outside += weight,
        }
    }

    /// Adds another histogram with the same binning.
    pub fn merge(&mut self, other: &Hist2D) -> Result<(), String> {
        if self.x != other.x || self.y != other.y {
            return Err("merging 2-D histograms with different binning".into());
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.outside += other.outside;
        Ok(())
    }
}

/// Sums of weights per time bin (e.g. per Unix second), for rates. Times mostly arrive in order,
/// so the current bin is summed apart and enters the map only when the time changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "BTreeMap<u64, f64>", into = "BTreeMap<u64, f64>")]
pub struct TimeSeries {
    bins: BTreeMap<u64, f64>,
    /// The bin being filled and its sum, not yet in `bins`.
    current: Option<(u64, f64)>,
}

impl TimeSeries {
    /// Adds `weight` to the bin of time `t`.
    #[inline(always)] // into the plugin's loop: a Wasm call costs stack and epoch checks
    pub fn fill(&mut self, t: u64, weight: f64) {
        match &mut self.current {
            Some((bin, sum)) if *bin == t => *sum += weight,
            _ => self.start_bin(t, weight),
        }
    }

    #[cold]
    #[inline(never)]
    fn start_bin(&mut self, t: u64, weight: f64) {
        if let Some((bin, sum)) = self.current.replace((t, weight)) {
            *self.bins.entry(bin).or_insert(0.0) += sum;
        }
    }

    /// Adds another series.
    pub fn merge(&mut self, other: &TimeSeries) {
        for (t, w) in other.points() {
            *self.bins.entry(t).or_insert(0.0) += w;
        }
    }

    /// (bin, summed weight) in time order.
    pub fn points(&self) -> Vec<(u64, f64)> {
        let mut bins = self.bins.clone();
        if let Some((bin, sum)) = self.current {
            *bins.entry(bin).or_insert(0.0) += sum;
        }
        bins.into_iter().collect()
    }

    /// True when nothing was filled.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty() && self.current.is_none()
    }

    /// This series' share of `all` in every bin where `all` is positive (0 where this one has
    /// nothing; bins without any entry of `all` are left out: a fraction of nothing is
    /// undefined), for [`crate::svg::Plot::over_time`].
    pub fn fraction_of(&self, all: &TimeSeries) -> Vec<(u64, f64)> {
        let part: BTreeMap<u64, f64> = self.points().into_iter().collect();
        all.points()
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(t, n)| (t, part.get(&t).copied().unwrap_or(0.0) / n))
            .collect()
    }
}

impl PartialEq for TimeSeries {
    fn eq(&self, other: &Self) -> bool {
        self.points() == other.points()
    }
}

impl From<BTreeMap<u64, f64>> for TimeSeries {
    fn from(bins: BTreeMap<u64, f64>) -> Self {
        Self { bins, current: None }
    }
}

impl From<TimeSeries> for BTreeMap<u64, f64> {
    fn from(series: TimeSeries) -> Self {
        series.points().into_iter().collect()
    }
}

/// The first and last Unix second seen, for rates over a run (`seconds()` is the span, ≥ 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// (first, last) second, if any.
    pub range: Option<(u64, u64)>,
}

impl TimeSpan {
    /// Widens the span to include `t`.
    #[inline]
    pub fn fill(&mut self, t: u64) {
        self.range = Some(match self.range {
            Some((a, b)) => (a.min(t), b.max(t)),
            None => (t, t),
        });
    }

    /// Widens the span to include a first and a last second, each when known (the `channels`
    /// stream's `first_unix_time` and `last_unix_time`).
    #[inline]
    pub fn widen(&mut self, first: Option<u64>, last: Option<u64>) {
        for t in [first, last].into_iter().flatten() {
            self.fill(t);
        }
    }

    /// Widens the span by another.
    pub fn merge(&mut self, other: &TimeSpan) {
        if let Some((a, b)) = other.range {
            self.fill(a);
            self.fill(b);
        }
    }

    /// Seconds covered (last − first + 1), 1 when empty.
    pub fn seconds(&self) -> f64 {
        self.range.map_or(1.0, |(a, b)| (b - a + 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fraction_over_time_is_undefined_where_the_whole_is_empty() {
        let (mut part, mut all) = (super::TimeSeries::default(), super::TimeSeries::default());
        for (t, n) in [(10, 4.0), (11, 2.0), (13, 5.0)] {
            all.fill(t, n);
        }
        part.fill(10, 1.0);
        part.fill(13, 5.0);
        assert_eq!(part.fraction_of(&all), vec![(10, 0.25), (11, 0.0), (13, 1.0)]);
    }

    #[test]
    fn a_scaled_histogram_keeps_its_weight_and_moves_its_mean() {
        let mut source = super::Hist1D::new(100, 0.0, 100.0);
        for k in 0..1000 {
            source.fill(40.0 + (k % 20) as f64 * 0.5, 1.0);
        }
        let mut scaled = super::Hist1D::new(100, 0.0, 100.0);
        scaled.add_scaled(&source, 1.1);
        assert!((scaled.total() - 1000.0).abs() < 1e-9);
        let (m0, m1) = (source.mean().unwrap(), scaled.mean().unwrap());
        assert!((m1 / m0 - 1.1).abs() < 2e-3, "{m0} -> {m1}");
        let mut edge = super::Hist1D::new(10, 0.0, 10.0);
        let mut one = super::Hist1D::new(10, 0.0, 10.0);
        one.fill(9.5, 2.0);
        edge.add_scaled(&one, 1.5); // [13.5, 15) -> overflow
        assert_eq!((edge.total(), edge.overflow), (0.0, 2.0));
    }

    use super::*;

    #[test]
    fn merging_halves_equals_one_pass() {
        let xs: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37) % 12.0 - 1.0).collect();
        let mut whole = Hist1D::new(10, 0.0, 10.0);
        let (mut a, mut b) = (whole.clone(), whole.clone());
        for (i, x) in xs.iter().enumerate() {
            whole.fill(*x, 1.0);
            if i % 2 == 0 { a.fill(*x, 1.0) } else { b.fill(*x, 1.0) }
        }
        a.merge(&b).unwrap();
        assert_eq!(a, whole);
        assert!(whole.underflow > 0.0 && whole.overflow > 0.0);
        assert!(a.merge(&Hist1D::new(5, 0.0, 10.0)).is_err());
    }

    #[test]
    fn hist2d_and_time_series_merge() {
        let mut h = Hist2D::new(4, 0.0, 4.0, 2, 0.0, 2.0);
        h.fill(1.5, 0.5, 2.0);
        h.fill(9.0, 0.5, 1.0);
        let mut g = h.clone();
        g.merge(&h).unwrap();
        assert_eq!(g.counts[1], 4.0);
        assert_eq!(g.outside, 2.0);
        let mut t = TimeSeries::default();
        t.fill(10, 1.0);
        let mut u = TimeSeries::default();
        u.fill(10, 2.0);
        u.fill(11, 1.0);
        t.merge(&u);
        assert_eq!(t.points(), [(10, 3.0), (11, 1.0)]);
        let (mut a, mut b) = (TimeSpan::default(), TimeSpan::default());
        a.fill(20);
        b.fill(10);
        b.fill(12);
        a.merge(&b);
        assert_eq!(
            (a.range, a.seconds(), TimeSpan::default().seconds()),
            (Some((10, 20)), 11.0, 1.0)
        );
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"10":3.0,"11":1.0}"#);
        assert_eq!(serde_json::from_str::<TimeSeries>(&json).unwrap(), t);
    }
}
