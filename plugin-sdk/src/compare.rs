//! Shape comparison of two histograms with the same binning — a run against its reference —
//! as DQM systems do it (ROOT's `KolmogorovTest` and `Chi2Test` for unweighted counts): the
//! Kolmogorov–Smirnov probability of the binned distributions and Pearson's χ² of two
//! histograms of different totals, with its degrees of freedom and probability.

use crate::hist::Hist1D;

/// How alike two histograms are in shape (their totals do not matter).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShapeComparison {
    /// Kolmogorov–Smirnov probability (1: identical shapes; small: different).
    pub ks_probability: f64,
    /// The largest distance between the two normalised cumulative distributions.
    pub ks_distance: f64,
    /// χ² of the two histograms.
    pub chi2: f64,
    /// Its degrees of freedom (bins with entries in either, minus one).
    pub ndf: usize,
    /// χ² probability.
    pub chi2_probability: f64,
}

/// Compares `a` and `b`; none when the binnings differ or either is empty.
pub fn compare_shapes(a: &Hist1D, b: &Hist1D) -> Option<ShapeComparison> {
    if a.counts.len() != b.counts.len() || a.lo != b.lo || a.hi != b.hi {
        return None;
    }
    let (na, nb) = (a.total(), b.total());
    if !(na > 0.0 && nb > 0.0) {
        return None;
    }
    let (mut ca, mut cb, mut distance) = (0.0, 0.0, 0.0f64);
    let (mut chi2, mut used) = (0.0, 0usize);
    for (&x, &y) in a.counts.iter().zip(&b.counts) {
        ca += x / na;
        cb += y / nb;
        distance = distance.max((ca - cb).abs());
        if x + y > 0.0 {
            let d = (nb / na).sqrt() * x - (na / nb).sqrt() * y;
            chi2 += d * d / (x + y);
            used += 1;
        }
    }
    let ndf = used.saturating_sub(1);
    let effective = (na * nb / (na + nb)).sqrt();
    Some(ShapeComparison {
        ks_probability: kolmogorov_probability(distance * effective),
        ks_distance: distance,
        chi2,
        ndf,
        chi2_probability: if ndf == 0 { 1.0 } else { chi2_survival(chi2, ndf as f64) },
    })
}

/// Q_KS(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²): the chance of a distance at least λ√n by accident.
fn kolmogorov_probability(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// P(χ² ≥ x) for `k` degrees of freedom: the regularised upper incomplete gamma Q(k/2, x/2)
/// (series below a + 1, continued fraction above; Numerical Recipes' gser/gcf).
fn chi2_survival(x: f64, k: f64) -> f64 {
    let (a, x) = (k / 2.0, x / 2.0);
    if x <= 0.0 {
        return 1.0;
    }
    let ln_prefactor = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * ln_prefactor.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (h * ln_prefactor.exp()).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = C[1..].iter().enumerate().fold(C[0], |sum, (i, c)| sum + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(n: usize, mean: f64, sigma: f64, seed: u64) -> Hist1D {
        // Box–Muller on a small LCG: reproducible samples without a dependency.
        let mut state = seed;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut h = Hist1D::new(40, -5.0, 5.0);
        for _ in 0..n {
            let (u, v) = (uniform(), uniform());
            h.fill(
                mean + sigma * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos(),
                1.0,
            );
        }
        h
    }

    #[test]
    fn distributions_of_known_probability() {
        // Known values: Γ(5) = 24; P(χ² ≥ 3.84 | 1) = 0.05; P(χ² ≥ 18.31 | 10) = 0.05;
        // Q_KS(1.358) = 0.05; P(χ² ≥ 0.5 | 10) = e^(-1/4) Σ_{j<5} (1/4)^j / j!.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((chi2_survival(3.841_458_8, 1.0) - 0.05).abs() < 1e-6);
        assert!((chi2_survival(18.307_038, 10.0) - 0.05).abs() < 1e-6);
        assert!((chi2_survival(0.5, 10.0) - 0.999_993_388_3).abs() < 1e-9);
        assert!((kolmogorov_probability(1.358) - 0.05).abs() < 1e-3);
    }

    #[test]
    fn the_same_shape_passes_and_a_shifted_one_fails() {
        let reference = gaussian(20_000, 0.0, 1.0, 1);
        let same = gaussian(5_000, 0.0, 1.0, 2);
        let shifted = gaussian(5_000, 0.3, 1.0, 3);
        let alike = compare_shapes(&same, &reference).unwrap();
        assert!(alike.ks_probability > 0.05, "{alike:?}");
        assert!(alike.chi2_probability > 0.01 && alike.ndf > 20, "{alike:?}");
        let moved = compare_shapes(&shifted, &reference).unwrap();
        assert!(moved.ks_probability < 1e-6 && moved.chi2_probability < 1e-6, "{moved:?}");
        // Totals do not matter: a scaled copy is the same shape.
        let mut doubled = reference.clone();
        doubled.counts.iter_mut().for_each(|c| *c *= 2.0);
        let scaled = compare_shapes(&doubled, &reference).unwrap();
        assert!(scaled.ks_probability > 0.999 && scaled.chi2 < 1e-9, "{scaled:?}");
        assert!(compare_shapes(&Hist1D::new(10, 0.0, 1.0), &reference).is_none());
    }
}
