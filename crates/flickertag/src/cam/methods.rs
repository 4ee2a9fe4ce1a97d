//! Class activation maps from a layer's activations, restricted to a channel set.
//!
//! Every method combines the layer's maps `A_k` (`[C, h, w]`, one case) over the
//! channels `k` of a set `S`, then keeps the positive part and is upsampled to the
//! canvas ([`upsample`]):
//! - **Score-CAM** (Wang et al., CVPRW 2020): `w_k` = softmax probability of the target
//!   class for the input multiplied by `H_k`, the map `A_k` upsampled to the canvas and
//!   min-max normalised to [0, 1] (a constant map gets weight 0, as the authors' code
//!   skips it); map `ReLU(Σ_{k∈S} w_k A_k)`. Gradient-free: one forward per channel.
//! - **Ablation-CAM** (Desai & Ramaswamy, WACV 2020): `w_k = y_c − y_c^(k)`, the drop of
//!   the target logit when channel `k` of the layer is zeroed; map `ReLU(Σ w_k A_k)`.
//!   The paper divides by `y_c`; that only scales the map (every metric here is
//!   scale-free) and would flip it where `y_c < 0`, so it is left out.
//! - **EigenCAM** (Muhammad & Yeasin, IJCNN 2020): the projection of the centred
//!   activations `X` (`[h·w, |S|]`) on their first right singular vector `v`; its sign,
//!   which an SVD leaves arbitrary, is fixed by `Σ v_k ≥ 0` (post-ReLU channels load
//!   positively), then `ReLU`. Class-agnostic: no forward at all.
//!
//! A channel's weight does not depend on which other channels are in the set (each is
//! measured with the full layer in place), so Score- and Ablation-CAM weights are
//! computed once per case over all channels and every set reuses them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A class-activation-map method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// Score-CAM: the target probability of the input masked by each channel's map.
    #[serde(rename = "score-cam")]
    Score,
    /// Ablation-CAM: the drop of the target logit when each channel is zeroed.
    #[serde(rename = "ablation-cam")]
    Ablation,
    /// EigenCAM: the first principal component of the activations.
    #[serde(rename = "eigencam")]
    Eigen,
}

impl Method {
    /// Every gradient-free method, in table order.
    pub const ALL: [Method; 3] = [Method::Score, Method::Ablation, Method::Eigen];

    /// `score-cam`, `ablation-cam`, `eigencam`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Score => "score-cam",
            Method::Ablation => "ablation-cam",
            Method::Eigen => "eigencam",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::param("methods", "score-cam, ablation-cam or eigencam", s))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `ReLU(Σ_{k∈set} w_k A_k)` at the layer's resolution: `act` is `[C, hw]`.
pub fn weighted(act: &[f32], hw: usize, weights: &[f64], set: &[usize]) -> Vec<f64> {
    let mut m = vec![0.0f64; hw];
    for &k in set {
        let w = weights[k];
        if w != 0.0 {
            for (o, &a) in m.iter_mut().zip(&act[k * hw..(k + 1) * hw]) {
                *o += w * a as f64;
            }
        }
    }
    m.iter_mut().for_each(|v| *v = v.max(0.0));
    m
}

/// EigenCAM over the channels `set`: the centred `[hw, |set|]` activations projected
/// on their first right singular vector (sign: `Σ v ≥ 0`), positive part.
pub fn eigen(act: &[f32], hw: usize, set: &[usize]) -> Vec<f64> {
    let s = set.len();
    if s == 0 || hw == 0 {
        return vec![0.0; hw];
    }
    // Centred columns: X[p, j] = A_{set[j]}(p) − mean_p.
    let mut x = vec![0.0f64; hw * s];
    for (j, &k) in set.iter().enumerate() {
        let col = &act[k * hw..(k + 1) * hw];
        let mean = col.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
        for (p, &v) in col.iter().enumerate() {
            x[p * s + j] = v as f64 - mean;
        }
    }
    // The first right singular vector of X is the top eigenvector of XᵀX (|set|², at
    // most C², small beside X).
    let xm = nalgebra::DMatrix::from_row_slice(hw, s, &x);
    let gram = xm.transpose() * &xm;
    let eig = nalgebra::SymmetricEigen::new(gram);
    let top = (0..s).max_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b])).expect("s > 0");
    let mut v: Vec<f64> = eig.eigenvectors.column(top).iter().copied().collect();
    if v.iter().sum::<f64>() < 0.0 {
        v.iter_mut().for_each(|c| *c = -*c);
    }
    (0..hw).map(|p| (0..s).map(|j| x[p * s + j] * v[j]).sum::<f64>().max(0.0)).collect()
}

/// Bilinear upsampling of an `h × w` map to `side × side`, with half-pixel centres
/// (`align_corners = False` in PyTorch, OpenCV's `resize`): output pixel `i` reads the
/// input at `(i + 0.5)·h/side − 0.5`, clamped to the edge.
pub fn upsample(map: &[f64], h: usize, w: usize, side: usize) -> Vec<f64> {
    let coord = |i: usize, n: usize| -> (usize, usize, f64) {
        let s = ((i as f64 + 0.5) * n as f64 / side as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        (lo, hi, s - lo as f64)
    };
    let cols: Vec<(usize, usize, f64)> = (0..side).map(|j| coord(j, w)).collect();
    let mut out = Vec::with_capacity(side * side);
    for i in 0..side {
        let (r0, r1, fr) = coord(i, h);
        for &(c0, c1, fc) in &cols {
            let top = map[r0 * w + c0] * (1.0 - fc) + map[r0 * w + c1] * fc;
            let bottom = map[r1 * w + c0] * (1.0 - fc) + map[r1 * w + c1] * fc;
            out.push(top * (1.0 - fr) + bottom * fr);
        }
    }
    out
}

/// Score-CAM's mask of one channel: its map upsampled to the canvas and min-max
/// normalised to [0, 1]; `None` for a constant map.
pub fn score_mask(channel: &[f32], h: usize, w: usize, side: usize) -> Option<Vec<f32>> {
    let up = upsample(&channel.iter().map(|&v| v as f64).collect::<Vec<_>>(), h, w, side);
    let (lo, hi) = up.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    (hi > lo).then(|| up.iter().map(|&v| ((v - lo) / (hi - lo)) as f32).collect())
}

/// Checks a channel count `k` for a layer of `c` channels: a set smaller than the layer.
pub fn check_k(k: usize, c: usize) -> Result<()> {
    if k == 0 || k >= c {
        return Err(Error::param("k", format!("1..{c} (fewer channels than the layer's {c})"), k));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_pytorch_bilinear_without_aligned_corners() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        // size=4, mode="bilinear", align_corners=False), printed by PyTorch 2.
        let want = [0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0];
        let got = upsample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        // A 3 x 4 map to 7 x 7 (torch.arange(12.).reshape(1, 1, 3, 4), size=7; float32 there).
        let want7 = [
            0.0, 0.357143, 0.928571, 1.5, 2.071429, 2.642857, 3.0, 0.571429, 0.928572, 1.5, 2.071429, 2.642858,
            3.214286, 3.571429, 2.285714, 2.642857, 3.214286, 3.785714, 4.357143, 4.928572, 5.285714, 4.0, 4.357143,
            4.928572, 5.5, 6.071429, 6.642857, 7.0, 5.714286, 6.071428, 6.642858, 7.214286, 7.785715, 8.357143,
            8.714286, 7.428572, 7.785715, 8.357143, 8.928572, 9.5, 10.071429, 10.428572, 8.0, 8.357142, 8.928572,
            9.500001, 10.071428, 10.642858, 11.000001,
        ];
        let got7 = upsample(&(0..12).map(f64::from).collect::<Vec<_>>(), 3, 4, 7);
        for (g, w) in got7.iter().zip(want7) {
            assert!((g - w).abs() < 2e-6, "{got7:?}");
        }
    }

    #[test]
    fn eigencam_of_one_rank_activations_is_their_spatial_pattern() {
        // A_k(p) = a_k · u(p): every channel is the same pattern u scaled, so the first
        // principal component is u − mean(u) (up to scale), positive where u is high.
        let u = [0.0f32, 1.0, 4.0, 1.0];
        let a = [1.0f32, 2.0, 0.5];
        let act: Vec<f32> = a.iter().flat_map(|&s| u.iter().map(move |&v| s * v)).collect();
        let m = eigen(&act, 4, &[0, 1, 2]);
        let mean = 1.5f64;
        let ratio = m[2] / (4.0 - mean);
        for (p, &v) in u.iter().enumerate() {
            assert!((m[p] - ratio * (v as f64 - mean).max(0.0)).abs() < 1e-9, "{m:?}");
        }
        assert!(ratio > 0.0);
    }

    #[test]
    fn weighted_maps_sum_only_the_set_and_keep_the_positive_part() {
        let act = [1.0f32, 2.0, 10.0, -10.0, 3.0, 0.0];
        assert_eq!(weighted(&act, 2, &[1.0, 1.0, -1.0], &[0, 2]), vec![0.0, 2.0]);
        assert_eq!(weighted(&act, 2, &[1.0, 1.0, -1.0], &[0, 1]), vec![11.0, 0.0]);
    }
}
