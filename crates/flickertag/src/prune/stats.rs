//! Statistics of every prunable filter's output where the ablation acts (where the
//! channel is consumed, see [`super::PrunableLayer::point`]) over a set of images: the
//! channel mean (what [`super::Ablation::Mean`] puts in place of a removed channel),
//! the mean absolute value (the `activation` criterion), the standard deviation (the
//! channel's activity, by which magnitude-normalised scores divide), and the average
//! rank of the post-ReLU feature maps ([`super::PrunableLayer::rank_point`]; the
//! `hrank` criterion of Lin et al., CVPR 2020: a filter whose maps have low rank
//! carries little information). One forward pass per image; no gradients.

use crate::error::{Error, Result};
use crate::inference::engine::{EngineConfig, Session};
use crate::inference::model::Layout;
use crate::inference::model::{Model, TapPoint};
use crate::io::data::Cifar10;

use super::PrunableLayer;

/// Per-filter statistics at the ablation points, each `[layer][channel]` in the order of
/// the layers given to [`point_statistics`].
#[derive(Debug, Clone, PartialEq)]
pub struct PointStats {
    /// Images averaged over.
    pub n_images: usize,
    /// Mean value over images and positions.
    pub mean: Vec<Vec<f64>>,
    /// Mean absolute value over images and positions.
    pub mean_abs: Vec<Vec<f64>>,
    /// Standard deviation over images and positions (population form).
    pub sd: Vec<Vec<f64>>,
    /// Mean over images of the rank of the `H × W` map at the rank point
    /// ([`matrix_rank`]), plus a seeded jitter below 1e-9 that breaks exact ties at
    /// random (HRank's mean ranks tie often; ties must not fall back to channel order),
    /// when asked for.
    pub rank: Option<Vec<Vec<f64>>>,
}

/// The rank of a row-major `h × w` map: the number of singular values above
/// `σ_max · max(h, w) · ε`, with ε the float32 machine epsilon (the default tolerance of
/// `torch.linalg.matrix_rank` for float32 input, which HRank's code used). The SVD is
/// nalgebra's, in f64; where it fails (it returned a NaN singular value, and panicked, on
/// one post-ReLU map of the pretrained ResNet-56 in an `importance-truth` run), the
/// singular values are the square roots of the eigenvalues of the Gram matrix
/// ([`gram_singular_values`], always finite), exact enough for a float32 tolerance. A
/// map with a non-finite value has rank 0 (no information).
pub fn matrix_rank(map: &[f32], h: usize, w: usize) -> usize {
    assert_eq!(map.len(), h * w, "a map of {h} × {w} values");
    if map.is_empty() || map.iter().any(|x| !x.is_finite()) {
        return 0;
    }
    let m = nalgebra::DMatrix::from_row_iterator(h, w, map.iter().map(|&x| x as f64));
    let sv: Vec<f64> = match nalgebra::linalg::SVD::try_new_unordered(m.clone(), false, false, f64::EPSILON, 10_000) {
        Some(svd) if svd.singular_values.iter().all(|s| s.is_finite()) => svd.singular_values.iter().copied().collect(),
        _ => gram_singular_values(&m),
    };
    let max = sv.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 || !max.is_finite() {
        return 0;
    }
    let tol = max * h.max(w) as f64 * f32::EPSILON as f64;
    sv.iter().filter(|&&s| s > tol).count()
}

/// The singular values of `m` (unordered) as the square roots of the eigenvalues of its
/// Gram matrix (`MᵀM` or `MMᵀ`, the smaller): small ones lose relative precision (about
/// `1e-8 σ_max`), far below a float32 rank tolerance.
pub fn gram_singular_values(m: &nalgebra::DMatrix<f64>) -> Vec<f64> {
    let gram = if m.nrows() >= m.ncols() { m.transpose() * m } else { m * m.transpose() };
    gram.symmetric_eigenvalues().iter().map(|&l| l.max(0.0).sqrt()).collect()
}

/// Runs `indices` of `data` through `model` and measures [`PointStats`] at the
/// ablation point of every layer of `layers` (those of an [`super::Evaluator`] of
/// `model`; ranks only with `ranks`).
pub fn point_statistics(
    model: &Model,
    layers: &[PrunableLayer],
    data: &Cifar10,
    indices: &[usize],
    cfg: &EngineConfig,
    ranks: bool,
) -> Result<PointStats> {
    if indices.is_empty() {
        return Err(Error::param("activation-images", "at least one image", 0));
    }
    let map_taps = |point: &dyn Fn(&PrunableLayer) -> &str| -> Result<Vec<TapPoint>> {
        let taps: Vec<TapPoint> = layers.iter().map(|l| model.tap(point(l))).collect::<Result<_>>()?;
        if let Some(t) = taps.iter().find(|t| t.layout != Layout::ChannelsFirst || t.dims.len() != 3) {
            return Err(Error::Model(format!(
                "the ablation point {} has layout {} and shape {:?}: pruning needs [C, H, W] maps",
                t.name,
                t.layout.describe(),
                t.dims
            )));
        }
        Ok(taps)
    };
    let mut taps = map_taps(&|l| &l.point)?;
    // Output t of the session: taps[t]; the rank maps of layer l are output rank_of[l]
    // (the ablation point's own when the rank point is the same tensor).
    let mut rank_of: Vec<usize> = (0..taps.len()).collect();
    if ranks {
        for (l, t) in
            map_taps(&|l| if l.rank_point.is_empty() { &l.point } else { &l.rank_point })?.into_iter().enumerate()
        {
            rank_of[l] = match taps.iter().position(|x| x.name == t.name) {
                Some(i) => i,
                None => {
                    taps.push(t);
                    taps.len() - 1
                }
            };
        }
    }
    let n_points = layers.len();
    let refs: Vec<&TapPoint> = taps.iter().collect();
    let mut s = Session::for_outputs(model, &[], &refs, cfg)?;
    let zeros = || layers.iter().map(|l| vec![0.0; l.channels]).collect::<Vec<Vec<f64>>>();
    let (mut mean, mut mean_abs, mut square, mut rank) = (zeros(), zeros(), zeros(), zeros());
    let n = indices.len() as f64;
    for chunk in indices.chunks(s.batch()) {
        let frames = crate::evaluate::input_frames(model, data, chunk)?;
        let outs = s.run(&frames, chunk.len())?;
        for (t, o) in outs.iter().skip(1).enumerate() {
            // The layers this output serves: as ablation point (t < n_points), as rank point.
            let ranked: Vec<usize> = if ranks { (0..n_points).filter(|&l| rank_of[l] == t).collect() } else { vec![] };
            let c = o.shape.get(1).copied().unwrap_or(0);
            let [h, w] = match o.shape.as_slice() {
                [_, _, h, w] if (t >= n_points || layers[t].channels == c) => [*h, *w],
                other => {
                    return Err(Error::Model(format!("{} gave shape {other:?}, expected [N, C, H, W]", taps[t].name)))
                }
            };
            if let Some(l) = ranked.iter().find(|&&l| layers[l].channels != c) {
                return Err(Error::Model(format!(
                    "{} has {c} channels, {} has {}",
                    taps[t].name, layers[*l].tap, layers[*l].channels
                )));
            }
            for (i, map) in o.data.chunks(h * w).enumerate() {
                let ch = i % c;
                if !ranked.is_empty() {
                    let r = matrix_rank(map, h, w) as f64;
                    ranked.iter().for_each(|&l| rank[l][ch] += r);
                }
                if t >= n_points {
                    continue;
                }
                let hw = (h * w) as f64;
                mean[t][ch] += map.iter().map(|&x| x as f64).sum::<f64>() / hw;
                mean_abs[t][ch] += map.iter().map(|&x| x.abs() as f64).sum::<f64>() / hw;
                square[t][ch] += map.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / hw;
            }
        }
    }
    // Sums over images, then the means.
    for v in [&mut mean, &mut mean_abs, &mut square, &mut rank] {
        v.iter_mut().flatten().for_each(|x| *x /= n);
    }
    let sd = mean
        .iter()
        .zip(&square)
        .map(|(m, q)| m.iter().zip(q).map(|(m, q)| (q - m * m).max(0.0).sqrt()).collect())
        .collect();
    let rank = ranks.then(|| {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(RANK_TIE_SEED);
        rank.iter_mut().flatten().for_each(|r| *r += rng.random_range(0.0..1e-9));
        rank
    });
    Ok(PointStats { n_images: indices.len(), mean, mean_abs, sd, rank })
}

/// Seed of the jitter that breaks ties between equal mean ranks.
pub const RANK_TIE_SEED: u64 = 0x0048_5241_4e4b; // "HRANK"

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A sum of `k` outer products `u_j v_jᵀ`, each vector a unit vector `e_j` plus
    /// noise: rank `k` exactly (k ≤ min(h, w)), and well conditioned.
    fn of_rank(k: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut m = vec![0.0f32; h * w];
        for j in 0..k {
            let mut noise = |n: usize| -> Vec<f32> {
                (0..n).map(|i| rng.random_range(-0.3..0.3) + if i == j { 1.0 } else { 0.0 }).collect()
            };
            let (u, v) = (noise(h), noise(w));
            for i in 0..h {
                for j in 0..w {
                    m[i * w + j] += u[i] * v[j];
                }
            }
        }
        m
    }

    #[test]
    fn matrix_rank_of_sums_of_outer_products() {
        for (h, w) in [(32, 32), (16, 16), (8, 8), (5, 9)] {
            for k in 0..=h.min(w) {
                assert_eq!(matrix_rank(&of_rank(k, h, w, k as u64), h, w), k, "{h}×{w}, rank {k}");
            }
        }
    }

    #[test]
    fn gram_fallback_gives_the_svd_rank_and_values() {
        // The fallback used where nalgebra's SVD fails, against the SVD itself.
        for (h, w) in [(32, 32), (8, 8), (5, 9), (9, 5)] {
            for k in 0..=h.min(w) {
                let map = of_rank(k, h, w, 11 + k as u64);
                let m = nalgebra::DMatrix::from_row_iterator(h, w, map.iter().map(|&x| x as f64));
                let mut a = gram_singular_values(&m);
                let mut b: Vec<f64> = m.singular_values().iter().copied().collect();
                a.sort_by(|x, y| y.total_cmp(x));
                b.sort_by(|x, y| y.total_cmp(x));
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() <= 1e-6 * b[0].max(1.0), "{h}×{w} rank {k}: {x} vs {y}");
                }
                let max = a[0];
                let tol = max * h.max(w) as f64 * f32::EPSILON as f64;
                assert_eq!(a.iter().filter(|&&s| s > tol).count(), k, "{h}×{w} rank {k}");
            }
        }
        assert_eq!(matrix_rank(&[1.0, f32::NAN, 0.0, 2.0], 2, 2), 0, "a map with NaN has no rank");
    }

    #[test]
    fn matrix_rank_of_special_maps() {
        assert_eq!(matrix_rank(&[0.0; 64], 8, 8), 0, "a dead (all-zero) map");
        assert_eq!(matrix_rank(&[3.5; 64], 8, 8), 1, "a constant map");
        let eye: Vec<f32> = (0..64).map(|i| if i % 9 == 0 { 1.0 } else { 0.0 }).collect();
        assert_eq!(matrix_rank(&eye, 8, 8), 8);
        // A duplicated row does not add to the rank, whatever its rounding.
        let mut m = of_rank(8, 8, 8, 7);
        let row: Vec<f32> = m[..8].to_vec();
        m[8..16].copy_from_slice(&row);
        assert_eq!(matrix_rank(&m, 8, 8), 7);
    }
}
