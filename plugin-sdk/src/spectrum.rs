//! Noise power spectra: a radix-2 FFT (iterative Cooley–Tukey) — small enough to keep here
//! rather than pull a crate into every plugin.

/// The one-sided power spectrum |X_k|² / n, k = 0..=n/2, of the first power-of-two samples of
/// `samples` after removing their mean. Empty for fewer than 2 samples.
pub fn power_spectrum(samples: &[f64]) -> Vec<f64> {
    if samples.len() < 2 {
        return Vec::new();
    }
    let n = 1usize << (usize::BITS - 1 - samples.len().leading_zeros());
    let mean = samples[..n].iter().sum::<f64>() / n as f64;
    let mut re: Vec<f64> = samples[..n].iter().map(|s| s - mean).collect();
    let mut im = vec![0.0; n];
    // Bit-reversal permutation.
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((angle * k as f64).cos(), (angle * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let (tr, ti) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
    (0..=n / 2).map(|k| (re[k] * re[k] + im[k] * im[k]) / n as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sine_puts_its_power_in_its_bin() {
        let n = 64;
        let s: Vec<f64> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * 5.0 * i as f64 / n as f64).sin())
            .collect();
        let p = power_spectrum(&s);
        assert_eq!(p.len(), 33);
        let max = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(max, 5);
        // Parseval: Σ|x|² = Σ|X|²/n over all bins (one-sided: double the inner ones).
        let energy: f64 = s.iter().map(|x| x * x).sum();
        let spectral: f64 = p[0] + p[n / 2] + 2.0 * p[1..n / 2].iter().sum::<f64>();
        assert!((energy - spectral).abs() < 1e-9 * energy, "{energy} vs {spectral}");
        // Extra samples beyond a power of two are ignored.
        assert_eq!(power_spectrum(&[s.clone(), vec![9.0; 10]].concat()), p);
    }
}
