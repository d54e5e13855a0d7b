//! Least-squares fits for plots: a small Levenberg–Marquardt minimiser with parameter errors from
//! the covariance matrix, and the model shapes DQM plots need (Moyal ⊗ Gauss for dQ/dx — the
//! Moyal function is the closed-form approximation of the Landau distribution — and an
//! exponential for electron lifetime).
//!
//! Written here rather than taken from a crate: the fits have ≤ 5 parameters, and the usual
//! crates (`levenberg-marquardt`, `argmin`) pull nalgebra into every plugin component for what is
//! a 5×5 solve.

use crate::hist::Hist1D;

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitResult {
    /// Best parameters.
    pub params: Vec<f64>,
    /// 1σ errors: √diag(covariance), scaled by √(χ²/ndf) when that exceeds 1 (the data scatter
    /// more than their errors say, so the errors are widened accordingly).
    pub errors: Vec<f64>,
    /// χ² at the minimum.
    pub chi2: f64,
    /// Points minus free parameters.
    pub ndf: usize,
}

/// Fits `model(x, params)` to points `(x, y, sigma)` from `start`, minimising
/// Σ ((y − model)/σ)². `None` if there are fewer points than parameters or the problem is
/// singular.
pub fn least_squares(
    points: &[(f64, f64, f64)],
    start: &[f64],
    model: &dyn Fn(f64, &[f64]) -> f64,
) -> Option<FitResult> {
    let n = start.len();
    if points.len() <= n || points.iter().any(|p| p.2.is_nan() || p.2 <= 0.0) {
        return None;
    }
    let chi2_of = |p: &[f64]| -> f64 {
        points.iter().map(|&(x, y, s)| ((y - model(x, p)) / s).powi(2)).sum()
    };
    let mut params = start.to_vec();
    let mut chi2 = chi2_of(&params);
    if !chi2.is_finite() {
        return None;
    }
    let mut lambda = 1e-3;
    let mut normal = vec![vec![0.0; n]; n];
    for _ in 0..500 {
        // Jacobian of the residuals by central differences.
        let mut gradient = vec![0.0; n];
        for row in normal.iter_mut() {
            row.fill(0.0);
        }
        let steps: Vec<f64> = params.iter().map(|p| 1e-6 * p.abs().max(1e-3)).collect();
        for &(x, y, s) in points {
            let mut derivative = vec![0.0; n];
            for j in 0..n {
                let mut up = params.clone();
                let mut down = params.clone();
                up[j] += steps[j];
                down[j] -= steps[j];
                derivative[j] = (model(x, &up) - model(x, &down)) / (2.0 * steps[j]) / s;
            }
            let residual = (y - model(x, &params)) / s;
            for j in 0..n {
                gradient[j] += derivative[j] * residual;
                for k in 0..n {
                    normal[j][k] += derivative[j] * derivative[k];
                }
            }
        }
        // Try steps with growing damping until χ² falls.
        let mut improved = false;
        while lambda < 1e12 {
            let mut damped = normal.clone();
            for (j, row) in damped.iter_mut().enumerate() {
                row[j] += lambda * normal[j][j].max(1e-300);
            }
            let Some(step) = solve(&damped, &gradient) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = params.iter().zip(&step).map(|(p, d)| p + d).collect();
            let trial_chi2 = chi2_of(&trial);
            if trial_chi2.is_finite() && trial_chi2 <= chi2 {
                let converged = chi2 - trial_chi2 <= 1e-10 * chi2.max(1e-300);
                params = trial;
                chi2 = trial_chi2;
                lambda = (lambda / 10.0).max(1e-12);
                improved = !converged;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    let covariance = invert(&normal)?;
    let ndf = points.len() - n;
    let inflate = (chi2 / ndf as f64).max(1.0).sqrt();
    let errors = (0..n).map(|j| covariance[j][j].max(0.0).sqrt() * inflate).collect();
    Some(FitResult { params, errors, chi2, ndf })
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting.
fn solve(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> =
        a.iter().zip(b).map(|(row, v)| [row.as_slice(), &[*v]].concat()).collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for (row, values) in m.iter_mut().enumerate() {
            if row != col {
                let factor = values[col] / pivot_row[col];
                for (value, p) in values[col..].iter_mut().zip(&pivot_row[col..]) {
                    *value -= factor * p;
                }
            }
        }
    }
    Some((0..n).map(|i| m[i][n] / m[i][i]).collect())
}

/// The inverse of a small symmetric positive matrix.
fn invert(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut columns = Vec::with_capacity(n);
    for j in 0..n {
        let unit: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i == j))).collect();
        columns.push(solve(a, &unit)?);
    }
    Some((0..n).map(|i| (0..n).map(|j| columns[j][i]).collect()).collect())
}

/// The Moyal density with location (most probable value) `mpv` and scale `width`:
/// `exp(−(z + e^{−z})/2) / (width·√(2π))`, `z = (x − mpv)/width`.
pub fn moyal(x: f64, mpv: f64, width: f64) -> f64 {
    let z = (x - mpv) / width;
    (-(z + (-z).exp()) / 2.0).exp() / (width * (2.0 * std::f64::consts::PI).sqrt())
}

/// Moyal(mpv, width) convolved with a Gaussian of standard deviation `sigma`, by summing over a
/// grid (200 points from mpv − 6·width to mpv + 30·width; the Moyal tail is long).
pub fn moyal_gauss(x: f64, mpv: f64, width: f64, sigma: f64) -> f64 {
    MoyalGaussGrid::new(mpv, width, sigma).at(x)
}

/// [`moyal_gauss`] for one (mpv, width, sigma) at many x: the Moyal factors of the grid do not
/// depend on x and are computed once (a fit evaluates the same parameters at every point of
/// its histogram); the value at x is bit for bit [`moyal_gauss`]'s.
#[derive(Clone, Debug)]
struct MoyalGaussGrid {
    /// (mpv, width, sigma) as given, for finding the grid again.
    key: [u64; 3],
    /// `sigma` after `abs`, and whether it is negligible (then the plain Moyal).
    sigma: f64,
    plain: Option<(f64, f64)>,
    /// Grid points `t` and `moyal(t)·norm` at each.
    points: Vec<(f64, f64)>,
    dt: f64,
    /// Values given so far ([`MoyalGaussGrid::remembered_at`]): (x as bits, value), in the order
    /// first asked, and where the next x is expected (a fit goes through its bins in order).
    given: Vec<(u64, f64)>,
    next_given: usize,
}

impl MoyalGaussGrid {
    const STEPS: usize = 200;

    fn new(mpv: f64, width: f64, sigma: f64) -> Self {
        let key = [mpv.to_bits(), width.to_bits(), sigma.to_bits()];
        let (width, sigma) = (width.abs().max(1e-9), sigma.abs());
        let (plain, points, dt) = if sigma < 1e-6 * width {
            (Some((mpv, width)), Vec::new(), 0.0)
        } else {
            let (lo, hi) = (mpv - 6.0 * width, mpv + 30.0 * width);
            let dt = (hi - lo) / Self::STEPS as f64;
            let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
            let points = (0..Self::STEPS)
                .map(|k| {
                    let t = lo + (k as f64 + 0.5) * dt;
                    (t, moyal(t, mpv, width) * norm)
                })
                .collect();
            (None, points, dt)
        };
        Self { key, sigma, plain, points, dt, given: Vec::new(), next_given: 0 }
    }

    /// [`MoyalGaussGrid::at`], computed once per x: a value given before is returned again.
    fn remembered_at(&mut self, x: f64) -> f64 {
        let bits = x.to_bits();
        let found = match self.given.get(self.next_given) {
            Some(&(b, _)) if b == bits => Some(self.next_given),
            _ => self.given.iter().position(|&(b, _)| b == bits),
        };
        match found {
            Some(k) => {
                self.next_given = k + 1;
                self.given[k].1
            }
            None => {
                let value = self.at(x);
                self.given.push((bits, value));
                self.next_given = self.given.len();
                value
            }
        }
    }

    fn at(&self, x: f64) -> f64 {
        if let Some((mpv, width)) = self.plain {
            return moyal(x, mpv, width);
        }
        let sigma = self.sigma;
        self.points
            .iter()
            .map(|&(t, weight)| weight * (-((x - t) / sigma).powi(2) / 2.0).exp())
            .sum::<f64>()
            * self.dt
    }
}

/// A Moyal ⊗ Gauss fit of a histogram: the Landau-like shape of dQ/dx.
#[derive(Clone, Debug, PartialEq)]
pub struct PeakFit {
    /// Most probable value of the Moyal part (the "Landau MPV").
    pub mpv: f64,
    /// Its error.
    pub mpv_error: f64,
    /// Moyal scale.
    pub width: f64,
    /// Gaussian smearing.
    pub sigma: f64,
    /// The fit.
    pub fit: FitResult,
    /// Fitted range.
    pub range: (f64, f64),
}

impl PeakFit {
    /// Expected entries per bin of `hist` at `x`.
    pub fn curve(&self, x: f64) -> f64 {
        let p = &self.fit.params;
        p[0] * moyal_gauss(x, p[1], p[2], p[3])
    }
}

/// Fits Moyal ⊗ Gauss to a histogram around its peak: bins from where the counts first reach
/// `from_fraction` of the maximum below the peak to where they fall under it above (at least
/// 2.5 peak widths), with Poisson errors √max(n, 1).
pub fn fit_moyal_gauss(hist: &Hist1D, from_fraction: f64) -> Option<PeakFit> {
    // The fit asks for the same few parameter sets (the point and its ± steps) at every bin:
    // their grids are kept, not recomputed per bin, and each keeps the values it gave. A shape
    // is asked for again at the same bin three times per iteration (the point and its two
    // amplitude steps share it), and once more after a step is taken (the trial's values are the
    // next point's): those repeats are looked up, not summed again (the same value, bit for bit).
    let grids = std::cell::RefCell::new(Vec::<MoyalGaussGrid>::new());
    let model = |x: f64, p: &[f64]| {
        let key = [p[1].to_bits(), p[2].to_bits(), p[3].to_bits()];
        let mut grids = grids.borrow_mut();
        let at = match grids.iter().position(|g| g.key == key) {
            Some(found) => found,
            None => {
                if grids.len() == 2 * p.len() + 2 {
                    grids.remove(0);
                }
                grids.push(MoyalGaussGrid::new(p[1], p[2], p[3]));
                grids.len() - 1
            }
        };
        p[0] * grids[at].remembered_at(x)
    };
    fit_peak(hist, from_fraction, &model)
}

/// [`fit_moyal_gauss`] with the model `amplitude · moyal_gauss(x, mpv, width, sigma)` given.
fn fit_peak(
    hist: &Hist1D,
    from_fraction: f64,
    model: &dyn Fn(f64, &[f64]) -> f64,
) -> Option<PeakFit> {
    let counts = &hist.counts;
    let (peak, &max) = counts.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    if max < 10.0 {
        return None;
    }
    let cut = max * from_fraction;
    let mut lo = peak;
    while lo > 0 && counts[lo - 1] >= cut {
        lo -= 1;
    }
    let mut hi = peak;
    while hi + 1 < counts.len() && counts[hi + 1] >= cut {
        hi += 1;
    }
    // Half-maximum width on the low side: a starting value for the scales.
    let mut half = peak;
    while half > 0 && counts[half] > max / 2.0 {
        half -= 1;
    }
    let w = hist.width();
    let width0 = ((peak - half) as f64 * w / 1.2).max(w);
    let hi = hi.max(((peak as f64) + 2.5 * width0 / w) as usize).min(counts.len() - 1);
    let points: Vec<(f64, f64, f64)> =
        (lo..=hi).map(|i| (hist.center(i), counts[i], counts[i].max(1.0).sqrt())).collect();
    let total: f64 = points.iter().map(|p| p.1).sum::<f64>() * w;
    let start = [total / 0.8, hist.center(peak), width0 * 0.7, width0 * 0.5];
    let fit = least_squares(&points, &start, model)?;
    let p = &fit.params;
    Some(PeakFit {
        mpv: p[1],
        mpv_error: fit.errors[1],
        width: p[2].abs(),
        sigma: p[3].abs(),
        range: (hist.center(lo) - w / 2.0, hist.center(hi) + w / 2.0),
        fit,
    })
}

/// Fits `a · exp(−x / tau)` to points `(x, y, sigma)`; params `[a, tau]`.
pub fn fit_exponential(points: &[(f64, f64, f64)], tau_start: f64) -> Option<FitResult> {
    let a0 = points.first()?.1;
    least_squares(points, &[a0, tau_start], &|x, p| p[0] * (-x / p[1]).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic uniform generator for the tests.
    struct Lcg(u64);
    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            (-2.0 * self.uniform().ln()).sqrt()
                * (2.0 * std::f64::consts::PI * self.uniform()).cos()
        }
    }

    #[test]
    fn straight_line_fit_has_textbook_errors() {
        // y = 2 + 3x with σ = 1 at x = 0..9: errors √(Σx²/D), √(n/D), D = nΣx² − (Σx)².
        let points: Vec<_> =
            (0..10).map(|i| (f64::from(i), 2.0 + 3.0 * f64::from(i), 1.0)).collect();
        let fit = least_squares(&points, &[0.0, 1.0], &|x, p| p[0] + p[1] * x).unwrap();
        assert!((fit.params[0] - 2.0).abs() < 1e-6 && (fit.params[1] - 3.0).abs() < 1e-6);
        let d = 10.0 * 285.0 - 45.0f64.powi(2);
        assert!((fit.errors[0] - (285.0 / d).sqrt()).abs() < 1e-6);
        assert!((fit.errors[1] - (10.0 / d).sqrt()).abs() < 1e-6);
        assert_eq!(fit.ndf, 8);
    }

    #[test]
    fn moyal_is_normalised_with_its_mode_at_mpv() {
        let integral: f64 =
            (0..40_000).map(|k| moyal(-10.0 + k as f64 * 0.001, 0.0, 1.0) * 0.001).sum();
        assert!((integral - 1.0).abs() < 1e-6);
        assert!(
            moyal(0.0, 0.0, 1.0) > moyal(0.01, 0.0, 1.0)
                && moyal(0.0, 0.0, 1.0) > moyal(-0.01, 0.0, 1.0)
        );
        let smeared: f64 =
            (0..40_000).map(|k| moyal_gauss(-10.0 + k as f64 * 0.001, 0.0, 1.0, 0.5) * 0.001).sum();
        assert!((smeared - 1.0).abs() < 1e-3);
    }

    #[test]
    fn moyal_gauss_fit_recovers_the_mpv_of_sampled_data() {
        // Sample as the fixture generator does: mpv + width·(−ln Z²), plus Gaussian noise.
        let (mpv, width, sigma) = (5.0, 0.35, 0.2);
        let mut rng = Lcg(7);
        let mut hist = Hist1D::new(120, 0.0, 12.0);
        for _ in 0..50_000 {
            let z = rng.normal();
            hist.fill(mpv + width * -(z * z).ln() + sigma * rng.normal(), 1.0);
        }
        let fit = fit_moyal_gauss(&hist, 0.05).unwrap();
        assert!((fit.mpv - mpv).abs() < 3.0 * fit.mpv_error, "{fit:?}");
        assert!(fit.mpv_error < 0.02, "{fit:?}");
        assert!((fit.width - width).abs() < 0.05, "{fit:?}");
    }

    /// Keeping the grids of recent parameters and the values they gave changes nothing: the
    /// fit is bit for bit the one that evaluates [`moyal_gauss`] afresh at every point (on a
    /// narrow and a wide peak).
    #[test]
    fn the_kept_grids_give_the_same_fit_as_fresh_evaluations() {
        let fresh = |x: f64, p: &[f64]| p[0] * moyal_gauss(x, p[1], p[2], p[3]);
        for (mpv, width, sigma, seed) in [(5.0, 0.35, 0.2, 7), (50.0, 4.0, 6.0, 11)] {
            let mut rng = Lcg(seed);
            let mut hist = Hist1D::new(150, 0.0, 3.0 * mpv);
            for _ in 0..20_000 {
                let z = rng.normal();
                hist.fill(mpv + width * -(z * z).ln() + sigma * rng.normal(), 1.0);
            }
            let kept = fit_moyal_gauss(&hist, 0.05).unwrap();
            assert_eq!(Some(kept), fit_peak(&hist, 0.05, &fresh));
        }
    }

    /// A grid gives back what it gave for an x asked before, in or out of order, and computes
    /// each x once.
    #[test]
    fn a_grid_remembers_each_value_it_gave() {
        let mut grid = MoyalGaussGrid::new(5.0, 0.35, 0.2);
        let xs = [4.0, 4.5, 5.0, 4.0, 4.5, 5.0, 5.0, 4.5, 7.25, 4.0];
        for x in xs {
            assert_eq!(grid.remembered_at(x).to_bits(), moyal_gauss(x, 5.0, 0.35, 0.2).to_bits());
        }
        let firsts: Vec<u64> = grid.given.iter().map(|(bits, _)| *bits).collect();
        assert_eq!(firsts, [4.0f64, 4.5, 5.0, 7.25].map(f64::to_bits));
    }

    #[test]
    fn exponential_fit_recovers_tau_within_errors() {
        let mut rng = Lcg(3);
        let points: Vec<_> = (0..15)
            .map(|i| {
                let t = 10.0 + 12.0 * f64::from(i);
                (t, 5.0 * (-t / 2200.0).exp() * (1.0 + 0.002 * rng.normal()), 5.0 * 0.002)
            })
            .collect();
        let fit = fit_exponential(&points, 3000.0).unwrap();
        assert!((fit.params[1] - 2200.0).abs() < 3.0 * fit.errors[1], "{fit:?}");
        assert!(fit.errors[1] > 20.0 && fit.errors[1] < 400.0, "{fit:?}");
    }
}
