//! Cross-validated selection: is the set of "important" filters a property of the
//! network, or of the images it was chosen on?
//!
//! The images are split at random into halves A and B (seeded, repeated). On A alone the
//! threshold is chosen: among candidate thresholds (the 5 %, 10 %, ..., 95 % quantiles of
//! A's filter mean scores after the stem, and the operating threshold), the one whose
//! important set is most stable within A, as the chance-corrected Jaccard index between
//! A's own random halves (inner splits). On B the choice is checked: B's important set at
//! A's threshold against A's, by the same chance-corrected index, and the rank
//! agreement (Spearman) of the filter mean scores of A and B.
//!
//! The chance correction: two independent random sets of `a` and `b` of `n` filters
//! overlap by `ab/n` on average, so their Jaccard index is about
//! `J0 = (ab/n) / (a + b - ab/n)` by chance alone; `kappa = (J - J0) / (1 - J0)` is 1 for
//! the same set, about 0 for sets no more alike than chance (and undefined, NaN, when
//! either set is empty or every filter is in both). Without it, "select everything" is
//! the most stable rule (Jaccard 1).
//!
//! The ablation effect of A's set on B's images needs labelled images and ablations:
//! `flickertag importance-truth --crossval-splits` measures it
//! ([`crate::prune::crossval`], from [`cross_validate_sets`]).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::correlation::spearman;

/// Inner split-halves of A used to choose its threshold.
pub const INNER_SPLITS: usize = 10;

/// One outer split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValSplit {
    /// Split index (0-based).
    pub split: usize,
    /// The threshold chosen on half A.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub threshold: f64,
    /// Its chance-corrected stability within A (mean over the inner splits).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub kappa_within_a: f64,
    /// Important filters of A at that threshold.
    pub count_a: usize,
    /// Important filters of B at that threshold.
    pub count_b: usize,
    /// Jaccard index of A's and B's sets.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub jaccard: f64,
    /// The Jaccard index two random sets of those sizes would have.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub jaccard_chance: f64,
    /// `(jaccard - jaccard_chance) / (1 - jaccard_chance)`.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub kappa: f64,
    /// The same on B at the operating threshold (not chosen on data).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub kappa_operating: f64,
    /// Spearman correlation of the filter mean scores of A and of B.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub spearman: f64,
}

/// Cross-validated selection over the whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossVal {
    /// Every outer split.
    pub splits: Vec<CrossValSplit>,
}

impl CrossVal {
    /// Mean and the 2.5 and 97.5 percentiles over the splits of one column (NaN values
    /// left out; NaN when none is finite).
    pub fn summary(&self, column: impl Fn(&CrossValSplit) -> f64) -> (f64, f64, f64) {
        mean_and_range(self.splits.iter().map(column))
    }
}

/// Mean and the 2.5 and 97.5 percentiles of per-split values (NaN values left out; NaN
/// when none is finite).
pub fn mean_and_range(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let q = |p: f64| super::quantile(&v, p).unwrap_or(f64::NAN);
    (mean, q(0.025), q(0.975))
}

/// `(|A ∩ B|, |A ∪ B|)` of two sets of indices.
pub(crate) fn overlap(a: &[usize], b: &[usize]) -> (usize, usize) {
    let inter = a.iter().filter(|x| b.contains(x)).count();
    (inter, a.len() + b.len() - inter)
}

/// Jaccard index `|A ∩ B| / |A ∪ B|` of two sets of indices; NaN when both are empty
/// (two empty sets agree on nothing: counting them as 1 inflates a mean).
pub fn jaccard(a: &[usize], b: &[usize]) -> f64 {
    let (inter, union) = overlap(a, b);
    if union == 0 {
        f64::NAN
    } else {
        inter as f64 / union as f64
    }
}

/// The chance Jaccard index of independent random sets of `a` and `b` of `n` items
/// (expected overlap `ab/n`).
pub fn jaccard_chance(a: usize, b: usize, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let inter = a as f64 * b as f64 / n as f64;
    let union = a as f64 + b as f64 - inter;
    if union <= 0.0 {
        f64::NAN
    } else {
        inter / union
    }
}

/// Chance-corrected Jaccard index of two sets of filters out of `n` (NaN when either is
/// empty or the chance index is 1).
pub fn kappa(a: &[usize], b: &[usize], n: usize) -> (f64, f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let j = jaccard(a, b);
    let j0 = jaccard_chance(a.len(), b.len(), n);
    let k = if j0 < 1.0 { (j - j0) / (1.0 - j0) } else { f64::NAN };
    (j, j0, k)
}

/// Filter mean scores over `images`, every layer's filters in order. `layers[l][image][filter]`.
/// As the analysis's own mean score ([`super::aggregate`]), an image where the filter has
/// no score (NaN: below the SNR floor) is left out; NaN only when no image has one.
fn means(layers: &[&[Vec<f64>]], images: &[usize]) -> Vec<f64> {
    layers
        .iter()
        .flat_map(|s| {
            (0..s.first().map_or(0, Vec::len)).map(move |f| {
                let (sum, n) = images
                    .iter()
                    .map(|&i| s[i][f])
                    .filter(|x| x.is_finite())
                    .fold((0.0, 0usize), |(sum, n), x| (sum + x, n + 1));
                if n == 0 {
                    f64::NAN
                } else {
                    sum / n as f64
                }
            })
        })
        .collect()
}

fn set(m: &[f64], t: f64) -> Vec<usize> {
    (0..m.len()).filter(|&f| m[f] > t).collect()
}

/// The important set of one layer (`scores[image][filter]`) over `images`: the filters
/// whose mean score exceeds `threshold`.
pub(crate) fn important(scores: &[Vec<f64>], images: &[usize], threshold: f64) -> Vec<usize> {
    set(&means(&[scores], images), threshold)
}

/// Candidate thresholds from `m` (filter means; the first `stem` are the stem's): the
/// 5 %, ..., 95 % quantiles of the others (of all, for a network of one layer), and
/// `operating`.
fn candidates(m: &[f64], stem: usize, operating: f64) -> Vec<f64> {
    let skip = if stem < m.len() { stem } else { 0 };
    let mut post: Vec<f64> = m.iter().skip(skip).copied().filter(|x| x.is_finite()).collect();
    post.sort_by(f64::total_cmp);
    let mut v: Vec<f64> = (1..20).filter_map(|i| super::quantile(&post, i as f64 / 20.0)).collect();
    v.push(operating);
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Runs `splits` outer splits (seeded by `seed`) over the network's scores
/// `layers[l][image][filter]` (at least 4 images; fewer gives no splits), with the
/// operating threshold `operating`.
pub fn cross_validate(layers: &[&[Vec<f64>]], operating: f64, splits: usize, seed: u64) -> CrossVal {
    cross_validate_sets(layers, operating, splits, seed).0
}

/// The halves and the set chosen on A of one outer split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSets {
    /// Half A's images (positions in the scores' image order).
    pub half_a: Vec<usize>,
    /// Half B's images.
    pub half_b: Vec<usize>,
    /// A's important filters at A's chosen threshold, per layer (`[layer][..]`, channel
    /// indices, ascending).
    pub set_a: Vec<Vec<usize>>,
}

/// The outer splits of `n_img` images (seeded by `seed`): per split, half A (the first
/// `n_img / 2` of a fresh shuffle) and half B (the rest), in shuffled order. The same
/// halves for every use of one seed: the scores' cross-validation, its ablation check
/// and the harmonic selection's ([`crate::analysis::harmonic_crossval`]).
pub fn halves(n_img: usize, splits: usize, seed: u64) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xC055);
    let mut order: Vec<usize> = (0..n_img).collect();
    (0..splits)
        .map(|_| {
            order.shuffle(&mut rng);
            let (a, b) = order.split_at(n_img / 2);
            (a.to_vec(), b.to_vec())
        })
        .collect()
}

/// [`cross_validate`], with each split's halves and A's set.
pub fn cross_validate_sets(
    layers: &[&[Vec<f64>]],
    operating: f64,
    splits: usize,
    seed: u64,
) -> (CrossVal, Vec<SplitSets>) {
    let n_img = layers.first().map_or(0, |l| l.len());
    let n: usize = layers.iter().map(|l| l.first().map_or(0, Vec::len)).sum();
    let stem = layers.first().and_then(|l| l.first()).map_or(0, Vec::len);
    if n_img < 4 || n == 0 {
        return (CrossVal { splits: vec![] }, vec![]);
    }
    let widths: Vec<usize> = layers.iter().map(|l| l.first().map_or(0, Vec::len)).collect();
    let per_layer = |flat: &[usize]| -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); widths.len()];
        let (mut l, mut start) = (0, 0);
        for &f in flat {
            while f >= start + widths[l] {
                start += widths[l];
                l += 1;
            }
            out[l].push(f - start);
        }
        out
    };
    let mut sets = Vec::with_capacity(splits);
    let mut out = Vec::with_capacity(splits);
    for (split, (a, b)) in halves(n_img, splits, seed).into_iter().enumerate() {
        let (a, b) = (a.as_slice(), b.as_slice());
        let (ma, mb) = (means(layers, a), means(layers, b));
        // A's inner halves, the same for every candidate.
        let mut inner_rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(split as u64) ^ 0x1AA);
        let mut inner: Vec<usize> = a.to_vec();
        let halves: Vec<(Vec<f64>, Vec<f64>)> = (0..INNER_SPLITS)
            .map(|_| {
                inner.shuffle(&mut inner_rng);
                let (x, y) = inner.split_at(inner.len() / 2);
                (means(layers, x), means(layers, y))
            })
            .collect();
        let within = |t: f64| {
            let ks: Vec<f64> =
                halves.iter().map(|(x, y)| kappa(&set(x, t), &set(y, t), n).2).filter(|k| k.is_finite()).collect();
            if ks.is_empty() {
                f64::NAN
            } else {
                ks.iter().sum::<f64>() / ks.len() as f64
            }
        };
        let best = candidates(&ma, stem, operating)
            .into_iter()
            .map(|t| (t, within(t)))
            .filter(|(_, k)| k.is_finite())
            .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.total_cmp(&x.0)));
        let (threshold, kappa_within_a) = best.unwrap_or((f64::NAN, f64::NAN));
        let (sa, sb) = (set(&ma, threshold), set(&mb, threshold));
        sets.push(SplitSets { half_a: a.to_vec(), half_b: b.to_vec(), set_a: per_layer(&sa) });
        let (jaccard, jaccard_chance, k) = kappa(&sa, &sb, n);
        let kappa_operating = kappa(&set(&ma, operating), &set(&mb, operating), n).2;
        out.push(CrossValSplit {
            split,
            threshold,
            kappa_within_a,
            count_a: sa.len(),
            count_b: sb.len(),
            jaccard,
            jaccard_chance,
            kappa: k,
            kappa_operating,
            spearman: {
                // Dead filters (NaN scores) left out.
                let (x, y): (Vec<f64>, Vec<f64>) =
                    ma.iter().zip(&mb).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| (*x, *y)).unzip();
                spearman(&x, &y)
            },
        });
    }
    (CrossVal { splits: out }, sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[image][filter]` scores: filters `< planted` score `hi`, the others `lo`, plus
    /// seeded uniform noise of width `noise`.
    fn scores(images: usize, filters: usize, planted: usize, noise: f64, seed: u64) -> Vec<Vec<f64>> {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..images)
            .map(|_| {
                (0..filters)
                    .map(|f| if f < planted { 3.0 } else { 1.0 } + noise * (rng.random::<f64>() - 0.5))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_chance_jaccard_matches_random_sets_drawn_many_times() {
        // Independent oracle: the mean Jaccard of seeded random subsets.
        let (n, a, b) = (100usize, 30usize, 20usize);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut all: Vec<usize> = (0..n).collect();
        let mut total = 0.0;
        let draws = 20_000;
        for _ in 0..draws {
            all.shuffle(&mut rng);
            let x: Vec<usize> = all[..a].to_vec();
            all.shuffle(&mut rng);
            let mut y: Vec<usize> = all[..b].to_vec();
            y.sort_unstable();
            let mut x = x;
            x.sort_unstable();
            total += jaccard(&x, &y);
        }
        let sim = total / draws as f64;
        // ab/n / (a + b - ab/n) = 6 / 44; the ratio of means is within 1 % of the mean ratio here.
        assert!((jaccard_chance(a, b, n) - sim).abs() < 0.01 * sim + 0.002, "{} vs {sim}", jaccard_chance(a, b, n));
    }

    #[test]
    fn a_planted_set_is_chosen_on_one_half_and_found_again_on_the_other() {
        // 10 of 60 filters score 3, the others 1, noise far below the gap. Of the
        // candidates (quantiles, all in one group or the other, and the operating 2.0 in
        // the gap) only the gap gives the same set in every half: it is chosen on A, and
        // B finds the same set.
        let s = scores(20, 60, 10, 0.2, 1);
        let cv = cross_validate(&[&s], 2.0, 20, 0);
        assert_eq!(cv.splits.len(), 20);
        for r in &cv.splits {
            assert_eq!((r.threshold, r.count_a, r.count_b), (2.0, 10, 10), "{r:?}");
            assert!((r.kappa - 1.0).abs() < 1e-12 && (r.kappa_within_a - 1.0).abs() < 1e-12, "{r:?}");
        }
        assert!(candidates(&s[0], 60, 2.0).len() > 10, "quantile candidates for a one-layer network");
    }

    #[test]
    fn each_splits_halves_and_set_are_given_per_layer() {
        // Two layers: 8 filters all scoring 1 (below any threshold in the gap), then 60 of
        // which the first 10 score 3. A's set is filters 0..10 of the second layer, none of
        // the first; the halves partition the images.
        let first = scores(20, 8, 0, 0.2, 5);
        let second = scores(20, 60, 10, 0.2, 1);
        let (cv, sets) = cross_validate_sets(&[&first, &second], 2.0, 6, 0);
        assert_eq!((cv.splits.len(), sets.len()), (6, 6));
        for s in &sets {
            assert_eq!(s.set_a, vec![vec![], (0..10).collect::<Vec<_>>()]);
            let mut all: Vec<usize> = s.half_a.iter().chain(&s.half_b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..20).collect::<Vec<_>>());
            assert_eq!(s.half_a.len(), 10);
        }
    }

    #[test]
    fn pure_noise_selects_sets_no_better_than_chance() {
        // Every filter the same but for noise: whatever threshold A picks, B's set agrees
        // with A's by chance alone (kappa about 0), and the means' ranks do not agree.
        let s = scores(40, 200, 0, 1.0, 2);
        let cv = cross_validate(&[&s], 1.0, 30, 3);
        let (k, _, _) = cv.summary(|r| r.kappa);
        let (rho, _, _) = cv.summary(|r| r.spearman);
        assert!(k.abs() < 0.1, "kappa {k}");
        assert!(rho.abs() < 0.1, "spearman {rho}");
        // Selecting everything is never chosen as the stable answer: kappa is undefined there.
        assert!(cv.splits.iter().all(|r| r.count_a < 200), "{:?}", cv.splits[0]);
    }

    #[test]
    fn an_image_without_a_score_is_left_out_of_a_filters_mean_as_the_analysis_does() {
        // Filter 0 scores 3 on every image but one, where it is below the SNR floor (NaN):
        // its mean is 3, as `aggregate` has it, not NaN (which no threshold passes).
        let mut s = scores(20, 30, 5, 0.2, 6);
        s[7][0] = f64::NAN;
        let m = means(&[&s], &(0..20).collect::<Vec<_>>());
        let want = super::super::aggregate(
            &super::super::LayerScores { tap: "t".into(), conv_ordinal: None, scores: s.clone() },
            2.0,
        );
        assert!((m[0] - want.filters[0].mean_score).abs() < 1e-12 && m[0] > 2.5, "{}", m[0]);
        let mut dead = s.clone();
        dead.iter_mut().for_each(|r| r[1] = f64::NAN);
        assert!(means(&[&dead], &[0, 1, 2])[1].is_nan());
    }

    #[test]
    fn too_few_images_give_no_splits() {
        let s = scores(3, 10, 2, 0.1, 4);
        assert!(cross_validate(&[&s], 2.0, 5, 0).splits.is_empty());
    }
}
