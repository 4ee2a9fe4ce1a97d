//! Trained against control, layer by layer ([`crate::inference::model::control::Control`]): does training
//! shape the response? Per layer, the filters' mean scores of the two networks are
//! compared with an effect size (Cliff's delta: the probability that a trained filter
//! scores above a control filter, minus the reverse, in [-1, 1]) and a test across
//! filters (Mann-Whitney U, two-sided, normal approximation with tie correction), and
//! the shares of filters responding at intermodulation lines are set side by side.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::LayerImportance;

/// One layer, trained against control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRow {
    /// Tap.
    pub tap: String,
    /// Filters.
    pub n_filters: usize,
    /// Mean of the trained filters' mean scores.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub trained_mean: f64,
    /// Mean of the control filters' mean scores.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub control_mean: f64,
    /// Cliff's delta of trained against control scores.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub cliffs_delta: f64,
    /// Mann-Whitney U two-sided p-value.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub p_value: f64,
    /// Important filters (mean score above the threshold), trained.
    pub trained_important: usize,
    /// Important filters, control.
    pub control_important: usize,
    /// Share of filters responding at an intermodulation line, trained.
    pub trained_intermod: f64,
    /// Share of filters responding at an intermodulation line, control.
    pub control_intermod: f64,
}

/// Cliff's delta `P(a > b) - P(a < b)` over all pairs (finite values only).
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (finite(a), finite(b));
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut s = 0i64;
    for x in &a {
        for y in &b {
            s += (x > y) as i64 - (x < y) as i64;
        }
    }
    s as f64 / (a.len() * b.len()) as f64
}

fn finite(v: &[f64]) -> Vec<f64> {
    v.iter().copied().filter(|x| x.is_finite()).collect()
}

/// Mann-Whitney U test of two samples (finite values only): `(U of a, two-sided p)`,
/// the normal approximation with tie correction and continuity correction. NaN for an
/// empty sample or when every value is tied.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (a, b) = (finite(a), finite(b));
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut all: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut rank_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_a += r * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return (u, f64::NAN);
    }
    let z = ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt();
    let p = 2.0 * Normal::new(0.0, 1.0).expect("standard normal").sf(z);
    (u, p.min(1.0))
}

/// Compares the layers of a trained run with those of its control (same taps).
pub fn compare(trained: &[LayerImportance], control: &[LayerImportance]) -> Vec<ControlRow> {
    let share = |l: &LayerImportance| {
        l.filters.iter().filter(|f| f.response.intermod).count() as f64 / l.filters.len().max(1) as f64
    };
    trained
        .iter()
        .zip(control)
        .map(|(t, c)| {
            let a: Vec<f64> = t.filters.iter().map(|f| f.mean_score).collect();
            let b: Vec<f64> = c.filters.iter().map(|f| f.mean_score).collect();
            let mean = |v: &[f64]| {
                let f = finite(v);
                f.iter().sum::<f64>() / f.len().max(1) as f64
            };
            ControlRow {
                tap: t.tap.clone(),
                n_filters: t.n_filters,
                trained_mean: mean(&a),
                control_mean: mean(&b),
                cliffs_delta: cliffs_delta(&a, &b),
                p_value: mann_whitney(&a, &b).1,
                trained_important: t.n_important,
                control_important: c.n_important,
                trained_intermod: share(t),
                control_intermod: share(c),
            }
        })
        .collect()
}

/// `control.csv`: one row per layer.
pub fn to_csv(rows: &[ControlRow]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&[
        "tap",
        "n_filters",
        "trained_mean",
        "control_mean",
        "cliffs_delta",
        "p_value",
        "trained_important",
        "control_important",
        "trained_intermod",
        "control_intermod",
    ]);
    for r in rows {
        t.row([
            r.tap.clone(),
            num(r.n_filters),
            num(r.trained_mean),
            num(r.control_mean),
            num(r.cliffs_delta),
            num(r.p_value),
            num(r.trained_important),
            num(r.control_important),
            num(r.trained_intermod),
            num(r.control_intermod),
        ]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu([1.1, 2.3, 3.5, 4.2, 5.9], [0.5, 0.9, 1.7, 2.0, 2.2, 3.1],
        //   alternative="two-sided", method="asymptotic") -> U = 25.0, p = 0.0828374251588063
        let (u, p) = mann_whitney(&[1.1, 2.3, 3.5, 4.2, 5.9], &[0.5, 0.9, 1.7, 2.0, 2.2, 3.1]);
        assert_eq!(u, 25.0);
        assert!((p - 0.0828374251588063).abs() < 1e-9, "{p}");
        // With ties: [1, 2, 2, 3] vs [2, 3, 3, 4] -> U = 3.0, p = 0.1720337089218229.
        let (u, p) = mann_whitney(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]);
        assert_eq!(u, 3.0);
        assert!((p - 0.1720337089218229).abs() < 1e-9, "{p}");
        assert!(mann_whitney(&[1.0, 1.0], &[1.0, 1.0]).1.is_nan(), "all tied: no test");
    }

    #[test]
    fn a_planted_shift_shows_and_equal_samples_do_not() {
        let a: Vec<f64> = (0..40).map(|i| 1.0 + 0.01 * i as f64).collect();
        let shifted: Vec<f64> = a.iter().map(|x| x + 1.0).collect();
        assert_eq!(cliffs_delta(&shifted, &a), 1.0);
        assert!(mann_whitney(&shifted, &a).1 < 1e-10);
        assert_eq!(cliffs_delta(&a, &a), 0.0);
        assert!(mann_whitney(&a, &a).1 > 0.99);
    }
}
