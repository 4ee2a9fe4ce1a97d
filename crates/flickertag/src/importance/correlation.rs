//! Rank correlation as scipy computes it: average ranks for ties (`rankdata`), Pearson's
//! correlation of the ranks (`spearmanr`), and least-squares residuals. Hand-written:
//! a few lines each, and the crates that offer them (statrs has no Spearman) would
//! bring a dataframe or BLAS dependency for nothing else.

/// Ranks `1..=n` of `v`, ties given their average rank (scipy's `rankdata` default).
/// NaN ranks last among equals of NaN (callers keep NaN out).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation (NaN when either side is constant or shorter than 2).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 || x.len() != y.len() {
        return f64::NAN;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's ρ: Pearson's correlation of the average ranks (scipy's `spearmanr`).
/// NaN when a value is NaN or either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    if x.iter().chain(y).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Residuals of `y` after the least-squares line on `x` (`y` itself when `x` is constant).
pub fn residuals(y: &[f64], x: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / sxx } else { 0.0 };
    x.iter().zip(y).map(|(a, b)| b - my - slope * (a - mx)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_scipy_with_ties() {
        // scipy.stats.spearmanr(x, y).statistic (scipy 1.17.1) for these vectors:
        // 0.35309393180189985; rankdata(x) = [2.5, 2.5, 1, 4.5, 4.5, 6].
        let x = [2.0, 2.0, 1.0, 5.0, 5.0, 7.0];
        let y = [0.3, 0.1, 0.2, 0.9, -1.0, 0.5];
        assert_eq!(average_ranks(&x), vec![2.5, 2.5, 1.0, 4.5, 4.5, 6.0]);
        assert!((spearman(&x, &y) - 0.35309393180189985).abs() < 1e-12, "{}", spearman(&x, &y));
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan(), "a constant side has no correlation");
        assert!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn residuals_are_orthogonal_to_the_regressor() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.5, 5.5, 8.0, 11.0];
        let r = residuals(&y, &x);
        assert!(r.iter().sum::<f64>().abs() < 1e-12);
        assert!(r.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>().abs() < 1e-9);
        // An exact line leaves nothing.
        assert!(residuals(&[3.0, 5.0, 7.0], &[1.0, 2.0, 3.0]).iter().all(|v| v.abs() < 1e-12));
    }
}
