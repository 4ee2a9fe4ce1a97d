//! The catalogue of response lines: tagged frequencies, their harmonics and
//! intermodulation terms.
//!
//! Every response of a network to tags `f_1..f_R` lies on frequencies `Σ n_r f_r`
//! (integers `n_r`, either sign): with two tags, harmonics `n·f1`, `m·f2` and
//! intermodulation `n·f1 + m·f2`, all on the grid of multiples of `gcd(f1, f2)`.
//! Each bin up to Nyquist that such a combination reaches is labelled with its
//! lowest-order combination (order `Σ |n_r|`); a bin that is a pure harmonic of two
//! or more tags is [`LineKind::Shared`] (30 Hz = 5·6 = 4·7.5).

use serde::{Deserialize, Serialize};

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// A tag frequency itself (`1·f_r`).
    Fundamental,
    /// An integer multiple (`n·f_r`, n ≥ 2) of one tag.
    Harmonic,
    /// A harmonic of two or more tags at once.
    Shared,
    /// A combination of two or more tags.
    Intermod,
}

/// One catalogued line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// FFT bin.
    pub bin: usize,
    /// Frequency, Hz.
    pub freq: f64,
    /// Lowest-order coefficients `n_r`, one per tag.
    pub coefs: Vec<i64>,
    /// `Σ |n_r|`.
    pub order: u32,
    /// Kind.
    pub kind: LineKind,
    /// Human label, e.g. `2f1`, `f2-f1`, `5f1=4f2`.
    pub label: String,
}

/// Greatest common divisor (`gcd(0, b) = b`).
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Greatest common divisor of the tag bins (the response grid, in bins).
pub fn grid_bins(tag_bins: &[usize]) -> usize {
    tag_bins.iter().fold(0, |g, &k| gcd(g, k))
}

fn label(coefs: &[i64]) -> String {
    // Positive terms first, so that differences read `f2-f1`.
    let mut s = String::new();
    let pos = coefs.iter().enumerate().filter(|(_, &n)| n > 0);
    let neg = coefs.iter().enumerate().filter(|(_, &n)| n < 0);
    for (r, &n) in pos.chain(neg) {
        let sign = if n < 0 {
            "-"
        } else if s.is_empty() {
            ""
        } else {
            "+"
        };
        let mag = if n.abs() == 1 { String::new() } else { n.abs().to_string() };
        s.push_str(&format!("{sign}{mag}f{}", r + 1));
    }
    s
}

/// Catalogues every line of order ≤ `max_order` on bins `1..=n_frames/2`, given the
/// tag bins (`f_r · N / fps`). Sorted by bin.
pub fn catalogue(tag_bins: &[usize], fps: f64, n_frames: usize, max_order: u32) -> Vec<Line> {
    let nyq = n_frames / 2;
    let r = tag_bins.len();
    // best[k] = (order, nonzero terms, coefs) of the lowest-order combination reaching bin k.
    let mut best: Vec<Option<(u32, usize, Vec<i64>)>> = vec![None; nyq + 1];
    let mut pure: Vec<Vec<usize>> = vec![Vec::new(); nyq + 1];
    let mut coefs = vec![0i64; r];
    fn walk(
        t: usize,
        left: u32,
        coefs: &mut Vec<i64>,
        tag_bins: &[usize],
        nyq: usize,
        best: &mut Vec<Option<(u32, usize, Vec<i64>)>>,
        pure: &mut Vec<Vec<usize>>,
    ) {
        if t == coefs.len() {
            let k: i64 = coefs.iter().zip(tag_bins).map(|(&n, &b)| n * b as i64).sum();
            if k <= 0 || k as usize > nyq {
                return;
            }
            let k = k as usize;
            let order = coefs.iter().map(|n| n.unsigned_abs() as u32).sum();
            let nz = coefs.iter().filter(|&&n| n != 0).count();
            // Prefer lower order, then fewer terms, then positive leading coefficients.
            let cand = (order, nz, coefs.clone());
            let better = match &best[k] {
                None => true,
                Some((o, z, c)) => {
                    (order, nz) < (*o, *z)
                        || ((order, nz) == (*o, *z)
                            && coefs.iter().map(|n| -n.signum()).lt(c.iter().map(|n| -n.signum())))
                }
            };
            if better {
                best[k] = Some(cand);
            }
            if nz == 1 {
                let tag = coefs.iter().position(|&n| n != 0).unwrap();
                if coefs[tag] > 0 && !pure[k].contains(&tag) {
                    pure[k].push(tag);
                }
            }
            return;
        }
        let l = left as i64;
        for n in -l..=l {
            coefs[t] = n;
            walk(t + 1, left - n.unsigned_abs() as u32, coefs, tag_bins, nyq, best, pure);
        }
        coefs[t] = 0;
    }
    walk(0, max_order, &mut coefs, tag_bins, nyq, &mut best, &mut pure);
    pure.iter_mut().for_each(|p| p.sort_unstable());
    best.into_iter()
        .enumerate()
        .filter_map(|(k, b)| {
            let (order, nz, coefs) = b?;
            let kind = if pure[k].len() >= 2 {
                LineKind::Shared
            } else if nz >= 2 {
                LineKind::Intermod
            } else if order == 1 {
                LineKind::Fundamental
            } else {
                LineKind::Harmonic
            };
            let label = if kind == LineKind::Shared {
                pure[k].iter().map(|&t| label(&tag_vec(r, t, (k / tag_bins[t]) as i64))).collect::<Vec<_>>().join("=")
            } else {
                label(&coefs)
            };
            Some(Line { bin: k, freq: k as f64 * fps / n_frames as f64, coefs, order, kind, label })
        })
        .collect()
}

fn tag_vec(r: usize, t: usize, n: i64) -> Vec<i64> {
    let mut v = vec![0; r];
    v[t] = n;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lines: &[Line], f: f64) -> &Line {
        lines.iter().find(|l| (l.freq - f).abs() < 1e-9).unwrap_or_else(|| panic!("no line at {f}"))
    }

    #[test]
    fn paper_tags_catalogue() {
        let l = catalogue(&[12, 15], 120.0, 240, 20);
        assert_eq!(grid_bins(&[12, 15]), 3);
        // Every line is on the 1.5 Hz grid, and every grid bin up to Nyquist is reached.
        assert!(l.iter().all(|x| x.bin % 3 == 0));
        assert_eq!(l.len(), 40);
        assert_eq!(at(&l, 6.0).kind, LineKind::Fundamental);
        assert_eq!(at(&l, 7.5).label, "f2");
        assert_eq!(at(&l, 12.0).label, "2f1");
        assert_eq!(at(&l, 12.0).kind, LineKind::Harmonic);
        assert_eq!(at(&l, 1.5).label, "f2-f1");
        assert_eq!(at(&l, 1.5).kind, LineKind::Intermod);
        assert_eq!(at(&l, 13.5).label, "f1+f2");
        assert_eq!(at(&l, 13.5).order, 2);
        assert_eq!(at(&l, 30.0).kind, LineKind::Shared);
        assert_eq!(at(&l, 30.0).label, "5f1=4f2");
    }

    #[test]
    fn single_tag_has_only_harmonics() {
        let l = catalogue(&[12], 120.0, 240, 20);
        assert!(l.iter().all(|x| x.kind != LineKind::Intermod));
        assert_eq!(l.len(), 10);
    }
}
