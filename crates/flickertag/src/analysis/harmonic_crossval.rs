//! Cross-validated line selection for the harmonic-sum response: are the harmonics a
//! layer is said to respond at, and the filters said to respond, properties of the
//! network, or of the images they were chosen on? (`--harmonic-sum` with at least 4
//! images and per-image spectra: `harmonic_sum_crossval.csv`.)
//!
//! The images are split into halves A and B by the same seeded splits as the score's
//! cross-validation ([`crate::importance::crossval::halves`]). Per split, tap and tag:
//! 1. on A's grand average (the mean over the layer's filters of their mean amplitude
//!    spectra over A's images) the layer's harmonics are chosen by the FPVS rule of
//!    [`super::harmonic_sum`] (`z > 1.64`, stopping at two consecutive misses): the line
//!    set chosen on data; B's own choice is made the same way, for comparison;
//! 2. each filter responds on a half when its smallest Holm-adjusted p over **A's**
//!    harmonics, from its mean amplitude spectrum over that half's images, is at most
//!    0.05;
//! 3. stability on the other half: the chance-corrected Jaccard index (`kappa`, as in
//!    [`crate::importance::crossval`]) of A's and B's responding sets, both with A's
//!    harmonics; and of B's responding set with A's harmonics against B's with its own
//!    (how much the choice of lines, rather than the images, decides who responds).
//!
//! Shapes: `per_image.amplitude` is `[image][row][bin]` with the rows of every tap in
//! order (its channels); spectra here are `[filter][bin]` means over a half.

use serde::{Deserialize, Serialize};

use super::harmonic_sum::{
    candidates, check_noise, consecutive_selection, filter_response, grand_average, response_grid, z_at, ALPHA,
};
use super::Analysis;
use crate::error::{Error, Result};
use crate::importance::crossval::{halves, kappa};

/// One split's line selection and its check on the other half, for one tap and tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarmonicSplit {
    /// Split index (0-based).
    pub split: usize,
    /// The tap.
    pub tap: String,
    /// The tagged region.
    pub region: String,
    /// Half A's images (positions in the run's image order).
    pub images_a: Vec<usize>,
    /// The harmonic numbers `k` chosen on A's grand average.
    pub harmonics_a: Vec<usize>,
    /// The harmonic numbers B's grand average would choose.
    pub harmonics_b: Vec<usize>,
    /// Jaccard index of the two harmonic sets (NaN when both are empty).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub jaccard_harmonics: f64,
    /// Filters responding on A's images with A's harmonics.
    pub responding_a: usize,
    /// Filters responding on B's images with A's harmonics.
    pub responding_b: usize,
    /// Filters responding on B's images with B's own harmonics.
    pub responding_b_own: usize,
    /// Filters of the tap.
    pub filters: usize,
    /// Chance-corrected agreement of A's and B's responding sets, A's harmonics (NaN
    /// when either set is empty or both hold every filter).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub kappa: f64,
    /// The same for B's responding sets with A's harmonics and with B's own.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub kappa_own: f64,
}

/// Mean spectra `[filter][bin]` of the `rows` rows starting at `row0` over `images`.
fn half_means(per_image: &super::PerImage, images: &[usize], row0: usize, rows: usize, nb: usize) -> Vec<Vec<f64>> {
    (0..rows)
        .map(|c| {
            let mut m = vec![0.0f64; nb];
            for &i in images {
                let at = (i * per_image.rows + row0 + c) * nb;
                for (x, &v) in m.iter_mut().zip(&per_image.amplitude[at..at + nb]) {
                    *x += v as f64;
                }
            }
            m.iter_mut().for_each(|x| *x /= images.len() as f64);
            m
        })
        .collect()
}

/// The harmonics (indices into `cands`) a half's spectra choose.
fn choose(spectra: &[Vec<f64>], cands: &[(usize, usize)], grid: usize) -> Vec<usize> {
    let grand = grand_average(spectra);
    let z: Vec<f64> = cands.iter().map(|&(_, h)| z_at(&grand, h, grid)).collect();
    consecutive_selection(&z)
}

/// The filters of `spectra` that respond at the harmonic bins `hs`.
fn responding(spectra: &[Vec<f64>], hs: &[usize], grid: usize) -> Vec<usize> {
    (0..spectra.len()).filter(|&c| filter_response(&spectra[c], hs, grid).1 <= ALPHA).collect()
}

/// One tap and tag of one split (`a_spec`, `b_spec`: the halves' mean spectra).
#[allow(clippy::too_many_arguments)]
pub(crate) fn split_row(
    split: usize,
    tap: &str,
    region: &str,
    images_a: &[usize],
    a_spec: &[Vec<f64>],
    b_spec: &[Vec<f64>],
    cands: &[(usize, usize)],
    grid: usize,
) -> HarmonicSplit {
    let (ca, cb) = (choose(a_spec, cands, grid), choose(b_spec, cands, grid));
    let bins_of = |c: &[usize]| c.iter().map(|&i| cands[i].1).collect::<Vec<usize>>();
    let (ha, hb) = (bins_of(&ca), bins_of(&cb));
    let ra = responding(a_spec, &ha, grid);
    let rb = responding(b_spec, &ha, grid);
    let rb_own = responding(b_spec, &hb, grid);
    let n = a_spec.len();
    HarmonicSplit {
        split,
        tap: tap.to_string(),
        region: region.to_string(),
        images_a: images_a.to_vec(),
        harmonics_a: ca.iter().map(|&i| cands[i].0).collect(),
        harmonics_b: cb.iter().map(|&i| cands[i].0).collect(),
        jaccard_harmonics: crate::importance::crossval::jaccard(&ca, &cb),
        responding_a: ra.len(),
        responding_b: rb.len(),
        responding_b_own: rb_own.len(),
        filters: n,
        kappa: kappa(&ra, &rb, n).2,
        kappa_own: kappa(&rb, &rb_own, n).2,
    }
}

/// The cross-validated harmonic selection of every tap and tag of `a` over `splits`
/// splits seeded by `seed` (see the module doc). Needs an input noise floor, per-image
/// spectra and at least 4 images.
pub fn harmonic_crossval(a: &Analysis, splits: usize, seed: u64) -> Result<Vec<HarmonicSplit>> {
    check_noise(a)?;
    let Some(per_image) = &a.per_image else {
        return Err(Error::param(
            "per-image",
            "per-image spectra for the cross-validated harmonic selection (halves of the images)",
            "off",
        ));
    };
    let n_img = a.images.len();
    if n_img < 4 {
        return Err(Error::param(
            "n-images",
            "at least 4 images for the cross-validated harmonic selection (two halves of at least 2)",
            n_img,
        ));
    }
    let bins = &a.plan.bins;
    let grid = response_grid(bins);
    let mut out = Vec::new();
    for (s, (ia, ib)) in halves(n_img, splits, seed).into_iter().enumerate() {
        let mut row0 = 0;
        for (t, tap) in a.taps.iter().enumerate() {
            let rows = a.mean_amplitude[t].len();
            let nb = a.mean_amplitude[t].first().map_or(0, Vec::len);
            if rows > 0 && nb > 0 {
                let (sa, sb) = (half_means(per_image, &ia, row0, rows, nb), half_means(per_image, &ib, row0, rows, nb));
                for r in 0..bins.len() {
                    let region = a.plan.region_names.get(r).cloned().unwrap_or_else(|| format!("tag{r}"));
                    let cands = candidates(bins, r, nb);
                    out.push(split_row(s, &tap.tap.name, &region, &ia, &sa, &sb, &cands, grid));
                }
            }
            row0 += rows;
        }
    }
    Ok(out)
}

/// `harmonic_sum_crossval.csv`: one row per split, tap and tag (harmonic numbers and
/// images space-separated).
pub fn to_csv(rows: &[HarmonicSplit]) -> String {
    use crate::io::table::{num, Table};
    let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
    let mut t = Table::new(&[
        "split",
        "tap",
        "region",
        "harmonics_a",
        "harmonics_b",
        "jaccard_harmonics",
        "responding_a",
        "responding_b",
        "responding_b_own",
        "filters",
        "kappa",
        "kappa_own",
        "images_a",
    ]);
    for r in rows {
        t.row([
            num(r.split),
            r.tap.clone(),
            r.region.clone(),
            list(&r.harmonics_a),
            list(&r.harmonics_b),
            num(r.jaccard_harmonics),
            num(r.responding_a),
            num(r.responding_b),
            num(r.responding_b_own),
            num(r.filters),
            num(r.kappa),
            num(r.kappa_own),
            list(&r.images_a),
        ]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// `[filter][bin]` spectra of 121 bins: noise (uniform 0.5-1.5) between the
    /// harmonics of a tag at bin 12, its mean (1) on them, plus `amp` at bins 12 and 24
    /// (harmonics 1 and 2) for the first `planted` filters. Unplanted harmonics sit at the
    /// noise's mean: z about 0 (its sd about 0.25), never significant by chance.
    fn spectra(filters: usize, planted: usize, amp: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..filters)
            .map(|f| {
                let mut s: Vec<f64> =
                    (0..121).map(|k| if k % 12 == 0 { 1.0 } else { rng.random_range(0.5..1.5) }).collect();
                if f < planted {
                    s[12] += amp;
                    s[24] += amp;
                }
                s
            })
            .collect()
    }

    #[test]
    fn planted_harmonics_are_chosen_on_either_half_and_their_responders_agree() {
        // Harmonics 1 and 2 in 10 of 30 filters, well above the noise: both halves
        // choose exactly {1, 2}; the same 10 filters respond on either half (kappa 1).
        let cands = candidates(&[12], 0, 121);
        let (a, b) = (spectra(30, 10, 20.0, 1), spectra(30, 10, 20.0, 2));
        let r = split_row(0, "conv", "tag", &[0, 1], &a, &b, &cands, 0);
        assert_eq!(r.harmonics_a, vec![1, 2]);
        assert_eq!(r.harmonics_b, vec![1, 2]);
        assert_eq!(r.jaccard_harmonics, 1.0);
        assert_eq!((r.responding_a, r.responding_b, r.responding_b_own), (10, 10, 10));
        assert!((r.kappa - 1.0).abs() < 1e-12 && (r.kappa_own - 1.0).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn pure_noise_chooses_no_harmonic_and_no_responder() {
        // With nothing planted the grand average's z stays small: no line is chosen, no
        // filter responds, and agreement is undefined rather than perfect.
        let cands = candidates(&[12], 0, 121);
        let (a, b) = (spectra(30, 0, 0.0, 3), spectra(30, 0, 0.0, 4));
        let r = split_row(0, "conv", "tag", &[0, 1], &a, &b, &cands, 0);
        assert!(r.harmonics_a.is_empty() && r.harmonics_b.is_empty(), "{r:?}");
        assert!(r.jaccard_harmonics.is_nan());
        assert_eq!((r.responding_a, r.responding_b), (0, 0));
        assert!(r.kappa.is_nan());
    }

    #[test]
    fn responders_on_b_are_judged_with_the_harmonics_chosen_on_a() {
        // A carries harmonic 1 only, B harmonic 2 only: each half chooses its own line
        // (B's harmonic 1 is one miss, which does not stop the selection).
        let cands = candidates(&[12], 0, 121);
        let mut a = spectra(30, 0, 0.0, 5);
        let mut b = spectra(30, 0, 0.0, 6);
        for f in 0..10 {
            a[f][12] += 20.0;
            b[f][24] += 20.0;
        }
        let r = split_row(0, "conv", "tag", &[0, 1], &a, &b, &cands, 0);
        assert_eq!(r.harmonics_a, vec![1]);
        assert_eq!(r.harmonics_b, vec![2]);
        assert_eq!(r.jaccard_harmonics, 0.0);
        // B's filters carry nothing at harmonic 1 (A's line): none responds on B with
        // A's lines; with B's own line the 10 planted ones do.
        assert_eq!((r.responding_a, r.responding_b, r.responding_b_own), (10, 0, 10));
        assert!(r.kappa.is_nan());
    }
}
