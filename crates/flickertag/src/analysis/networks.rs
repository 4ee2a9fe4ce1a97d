//! Trained against many control networks, compared as networks.
//!
//! One control network is one draw: a difference between the trained network and it
//! may be that draw's. With `N` controls (`--controls N`, each put at the trained
//! network's operating point, [`crate::inference::calibrate`]), each statistic of the
//! trained network is placed among the controls' values of the same statistic: its
//! percentile among them and a two-sided Monte Carlo p-value, `p = min(1, 2 · (1 +
//! #{controls at least as extreme on the trained value's side}) / (N + 1))` (the
//! trained network counted as one of `N + 1` exchangeable draws under the null that
//! training makes no difference; the smallest p that `N` controls can give is
//! `2 / (N + 1)`, 0.095 for 20). Statistics, per layer and for the whole network:
//! the count of important filters, the mean score, the share of filters responding at
//! an intermodulation line, and the mean integration index and mean |selectivity| of
//! the filters (from their mean spectra, baseline-corrected).

use serde::{Deserialize, Serialize};

use super::Analysis;
use crate::importance::line_sums;
use crate::signal::snr::SnrConfig;

/// The statistics compared, in `control_networks.csv` order.
pub const STATISTICS: [&str; 5] = ["important", "mean_score", "intermod_share", "integration", "abs_selectivity"];

/// One statistic of one layer (or of the whole network: `level` `(network)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRow {
    /// Tap, or `(network)`.
    pub level: String,
    /// One of [`STATISTICS`].
    pub statistic: String,
    /// The trained network's value.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub trained: f64,
    /// Mean over the controls.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub control_mean: f64,
    /// Standard deviation over the controls (`n - 1`).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub control_sd: f64,
    /// Smallest control value.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub control_min: f64,
    /// Largest control value.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub control_max: f64,
    /// Percentile of the trained value among the controls' (ties counted half), 0-100.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub percentile: f64,
    /// Two-sided Monte Carlo p-value (see the module docs).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub p_value: f64,
    /// Number of control networks.
    pub n_controls: usize,
}

/// `(percentile, two-sided Monte Carlo p)` of `t` among `controls` (finite values).
pub fn place(t: f64, controls: &[f64]) -> (f64, f64) {
    let c: Vec<f64> = controls.iter().copied().filter(|x| x.is_finite()).collect();
    if c.is_empty() || !t.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let n = c.len() as f64;
    let below = c.iter().filter(|&&x| x < t).count() as f64;
    let ties = c.iter().filter(|&&x| x == t).count() as f64;
    let at_least = c.iter().filter(|&&x| x >= t).count() as f64;
    let at_most = c.iter().filter(|&&x| x <= t).count() as f64;
    let p = (2.0 * (1.0 + at_least.min(at_most)) / (n + 1.0)).min(1.0);
    (100.0 * (below + 0.5 * ties) / n, p)
}

/// Per layer (in tap order) then for the whole network, the value of each of
/// [`STATISTICS`] in `a`.
pub fn statistics(a: &Analysis) -> Statistics {
    let nb = crate::signal::spectrum::n_bins(a.plan.config.n_frames);
    let base = SnrConfig::grid_baseline(crate::signal::lines::grid_bins(&a.plan.bins), nb);
    let n_tags = a.plan.config.freqs.len();
    let mean = |v: &[f64]| {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if f.is_empty() {
            f64::NAN
        } else {
            f.iter().sum::<f64>() / f.len() as f64
        }
    };
    let (mut all_scores, mut all_int, mut all_sel, mut all_im, mut important) = (vec![], vec![], vec![], vec![], 0.0);
    let mut out = Vec::new();
    for (t, layer) in a.layers.iter().enumerate() {
        let scores: Vec<f64> = layer.filters.iter().map(|f| f.mean_score).collect();
        let im: Vec<f64> = layer.filters.iter().map(|f| f.response.intermod as u8 as f64).collect();
        let (mut int, mut sel) = (Vec::new(), Vec::new());
        for amp in &a.mean_amplitude[t] {
            let s = line_sums(&base.baseline_corrected(amp), &a.lines, n_tags);
            int.push(s.integration());
            sel.push(s.selectivity().abs());
        }
        out.push((layer.tap.clone(), [layer.n_important as f64, mean(&scores), mean(&im), mean(&int), mean(&sel)]));
        important += layer.n_important as f64;
        all_scores.extend(scores);
        all_im.extend(im);
        all_int.extend(int);
        all_sel.extend(sel);
    }
    out.push(("(network)".to_string(), [important, mean(&all_scores), mean(&all_im), mean(&all_int), mean(&all_sel)]));
    out
}

/// Per level, the values of [`STATISTICS`] ([`statistics`]).
pub type Statistics = Vec<(String, [f64; 5])>;

/// The trained network's statistics placed among those of the controls (each from
/// [`statistics`] of an analysis of the same taps; kept instead of the analyses,
/// which are large).
pub fn compare(trained: &Analysis, controls: &[Statistics]) -> Vec<NetworkRow> {
    let t = statistics(trained);
    let c = controls;
    let mut rows = Vec::new();
    for (i, (level, tv)) in t.iter().enumerate() {
        for (k, name) in STATISTICS.iter().enumerate() {
            let vals: Vec<f64> = c.iter().filter_map(|s| s.get(i)).map(|s| s.1[k]).filter(|x| x.is_finite()).collect();
            let (m, sd) = crate::importance::mean_sd(&vals);
            let (percentile, p_value) = place(tv[k], &vals);
            rows.push(NetworkRow {
                level: level.clone(),
                statistic: name.to_string(),
                trained: tv[k],
                control_mean: m,
                control_sd: sd,
                control_min: vals.iter().copied().fold(f64::NAN, f64::min),
                control_max: vals.iter().copied().fold(f64::NAN, f64::max),
                percentile,
                p_value,
                n_controls: vals.len(),
            });
        }
    }
    rows
}

/// `control_networks.csv`: one row per level and statistic.
pub fn to_csv(rows: &[NetworkRow]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&[
        "level",
        "statistic",
        "trained",
        "control_mean",
        "control_sd",
        "control_min",
        "control_max",
        "percentile",
        "p_value",
        "n_controls",
    ]);
    for r in rows {
        t.row([
            r.level.clone(),
            r.statistic.clone(),
            num(r.trained),
            num(r.control_mean),
            num(r.control_sd),
            num(r.control_min),
            num(r.control_max),
            num(r.percentile),
            num(r.p_value),
            num(r.n_controls),
        ]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monte_carlo_p_counts_the_trained_network_as_one_of_n_plus_one_draws() {
        let controls: Vec<f64> = (1..=19).map(|x| x as f64).collect();
        // Above all 19 controls: percentile 100, p = 2 (1 + 0) / 20 = 0.1.
        assert_eq!(place(100.0, &controls), (100.0, 0.1));
        // Below all: percentile 0, same p.
        assert_eq!(place(0.0, &controls), (0.0, 0.1));
        // In the middle (equal to the 10th of 19): percentile (9 + 0.5) / 19, p = 1.
        let (pc, p) = place(10.0, &controls);
        assert!((pc - 100.0 * 9.5 / 19.0).abs() < 1e-12 && p == 1.0);
        // 39 controls are needed for p = 0.05.
        let c39: Vec<f64> = (1..=39).map(|x| x as f64).collect();
        assert_eq!(place(40.0, &c39).1, 0.05);
        assert!(place(f64::NAN, &controls).1.is_nan() && place(1.0, &[]).1.is_nan());
    }

    #[test]
    fn p_values_of_an_exchangeable_trained_value_are_uniform_enough() {
        // Under the null (the "trained" value is one more draw from the controls'
        // distribution), P(p <= 0.1) = 0.1 for 19 controls, as for any valid test.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let trials = 4000;
        let mut hits = 0;
        for _ in 0..trials {
            let draws: Vec<f64> = (0..20).map(|_| rng.random::<f64>()).collect();
            hits += (place(draws[0], &draws[1..]).1 <= 0.1) as usize;
        }
        let rate = hits as f64 / trials as f64;
        assert!((0.085..=0.115).contains(&rate), "{rate}");
    }
}
