//! The catalogue of response lines: tagged frequencies, their harmonics and
//! intermodulation terms.
//!
//! Every response of a network to tags `f_1..f_R` lies on frequencies `Σ n_r f_r`
//! (integers `n_r`, either sign): with two tags, harmonics `n·f1`, `m·f2` and
//! intermodulation `n·f1 + m·f2`, all on the grid of multiples of `gcd(f1, f2)`.
//! Each bin up to Nyquist that such a combination reaches is labelled with its
//! lowest-order combination (order `Σ |n_r|`).
//!
//! # Groups, symmetric in the tags
//! Each line belongs to exactly one group, by a rule that swapping the tags leaves
//! unchanged (the groups swap with them):
//! - a bin that is a harmonic (`n·f_r`, n ≤ max order) of two or more tags is
//!   [`LineKind::Shared`] (30 Hz = 5·6 = 4·7.5);
//! - a bin that is a harmonic of one tag belongs to that tag, whatever lower-order
//!   combination also reaches it (36 Hz = 6·6 = 6 + 4·7.5 is tag 1's sixth harmonic):
//!   [`LineKind::Fundamental`] for `n = 1`; [`LineKind::Harmonic`] when harmonic number
//!   `n` is a line of **every** tag (below Nyquist, no tag's `n`-th harmonic shared);
//!   otherwise [`LineKind::Unmatched`], counted for no tag, so that every tag's group
//!   holds the same harmonic numbers (for 6 and 7.5 Hz at 120 fps, N = 240: harmonics
//!   1, 2, 3, 6 and 7 of each; 24 Hz = 4·6 is unmatched because 4·7.5 = 30 Hz is
//!   shared, 54 Hz = 9·6 because 9·7.5 is above Nyquist);
//! - every other bin is [`LineKind::Intermod`].
//!
//! So a network that treats the two tags alike (`g(s_1) + g(s_2)`) has equal tag
//! sums and selectivity 0, whichever tag is which (a test).

use serde::{Deserialize, Serialize};

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// A tag frequency itself (`1·f_r`).
    Fundamental,
    /// An integer multiple (`n·f_r`, n ≥ 2) of one tag, `n` a harmonic number of every tag.
    Harmonic,
    /// A harmonic of two or more tags at once.
    Shared,
    /// A combination of two or more tags that is no tag's harmonic.
    Intermod,
    /// A harmonic `n·f_r` of one tag whose harmonic number `n` is not a line of every
    /// tag (another tag's `n`-th harmonic is shared or above Nyquist): counted for no tag.
    Unmatched,
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
    /// The tag (0-based) whose harmonic the line is, for fundamentals, harmonics and
    /// unmatched lines; `None` for shared and intermodulation lines.
    #[serde(default)]
    pub tag: Option<usize>,
    /// Human label, e.g. `2f1`, `f2-f1`, `5f1=4f2`, `6f1=f1+4f2` (a harmonic that a
    /// lower-order combination also reaches).
    pub label: String,
}

impl Line {
    /// [`Line::tag`]; for a line read from a run of an earlier version (no `tag`), a
    /// fundamental's or harmonic's single tag from its coefficients.
    pub fn group_tag(&self) -> Option<usize> {
        self.tag.or_else(|| match self.kind {
            LineKind::Fundamental | LineKind::Harmonic => self.coefs.iter().position(|&c| c != 0),
            _ => None,
        })
    }
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

/// Highest line order catalogued.
pub const MAX_ORDER: u32 = 100;
/// Largest catalogue work allowed: tags × partial sums (`2 · max_order · largest tag
/// bin + 1`). The paper's settings need 2 × 601; 16 tags on a 4 x 4 grid at 240 frames
/// about 16 × 4,801.
pub const MAX_CATALOGUE_WORK: u64 = 20_000_000;

/// Checks that [`catalogue`] can run on these tags: `max_order` in `1..=`[`MAX_ORDER`]
/// and at most [`MAX_CATALOGUE_WORK`] states; the error names the parameter.
pub fn check_catalogue(tag_bins: &[usize], max_order: u32) -> crate::error::Result<()> {
    if !(1..=MAX_ORDER).contains(&max_order) {
        return Err(crate::error::Error::param("max-order", format!("1..={MAX_ORDER}"), max_order));
    }
    let work = catalogue_work(tag_bins, max_order);
    if work > MAX_CATALOGUE_WORK {
        return Err(crate::error::Error::param(
            "max-order",
            format!(
                "a catalogue of at most {MAX_CATALOGUE_WORK} states (tags x (2 x max order x largest tag bin + 1)); \
                 lower <max-order> or <n-frames>"
            ),
            format!("{max_order} ({work} states for {} tags)", tag_bins.len()),
        ));
    }
    Ok(())
}

fn catalogue_work(tag_bins: &[usize], max_order: u32) -> u64 {
    let maxb = tag_bins.iter().copied().max().unwrap_or(0) as u64;
    (tag_bins.len() as u64).saturating_mul((2 * max_order as u64).saturating_mul(maxb).saturating_add(1))
}

/// Catalogues every line of order ≤ `max_order` on bins `1..=n_frames/2`, given the
/// tag bins (`f_r · N / fps`). Sorted by bin. Each bin is labelled with its lowest-order
/// combination `Σ n_r f_r`; ties go to fewer tags, then to positive coefficients on the
/// earlier tags.
///
/// A shortest-path dynamic programme over the partial sums of the tags taken in order:
/// the cost `(order, tags used, signs)` is additive, so the best combination reaching a
/// partial sum extends to the best overall. Each tag is added by two sweeps (one copy at
/// a time, up and down), so the work is tags × partial sums × tags (for comparing the
/// coefficient vectors), with `2 · max_order · largest bin + 1` partial sums: linear in
/// the number of bins and the order, never the enumeration of every coefficient vector.
/// Callers check the size first ([`check_catalogue`]); an empty catalogue results from
/// tags and orders outside its limits.
pub fn catalogue(tag_bins: &[usize], fps: f64, n_frames: usize, max_order: u32) -> Vec<Line> {
    if check_catalogue(tag_bins, max_order).is_err() || tag_bins.contains(&0) {
        return Vec::new();
    }
    let nyq = n_frames / 2;
    let r = tag_bins.len();
    let maxb = tag_bins.iter().copied().max().unwrap_or(0);
    let span = max_order as usize * maxb;
    let states = 2 * span + 1;
    // Per partial sum s (index s + span): (order, tags used, sign keys...) and coefficients.
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct Cost {
        order: u32,
        nz: u32,
        key: Vec<i8>,
    }
    let mut cost: Vec<Option<Cost>> = vec![None; states];
    let mut coefs: Vec<Vec<i32>> = vec![Vec::new(); states];
    cost[span] = Some(Cost { order: 0, nz: 0, key: Vec::new() });
    for (t, &b) in tag_bins.iter().enumerate() {
        // Key of this tag's sign: positive first, then unused, then negative.
        let with = |c: &Cost, n: i32, key: i8| Cost {
            order: c.order + n.unsigned_abs(),
            nz: c.nz + (n != 0) as u32,
            key: c.key.iter().copied().chain([key]).collect(),
        };
        let mut next: Vec<Option<Cost>> = cost.iter().map(|c| c.as_ref().map(|c| with(c, 0, 0))).collect();
        let mut next_coefs: Vec<Vec<i32>> = coefs.iter().map(|c| c.iter().copied().chain([0]).collect()).collect();
        for dir in [1i64, -1] {
            // run[s]: the best with at least one copy of this tag in direction `dir`.
            let mut run: Vec<Option<(Cost, Vec<i32>)>> = vec![None; states];
            let order: Box<dyn Iterator<Item = usize>> =
                if dir > 0 { Box::new(0..states) } else { Box::new((0..states).rev()) };
            for s in order {
                let from = s as i64 - dir * b as i64;
                if from < 0 || from >= states as i64 {
                    continue;
                }
                let from = from as usize;
                let key = if dir > 0 { -1 } else { 1 };
                let mut best: Option<(Cost, Vec<i32>)> = None;
                if let Some(c) = &cost[from] {
                    let nc = with(c, 1, key);
                    let mut v = coefs[from].clone();
                    v.push(dir as i32);
                    best = Some((nc, v));
                }
                if let Some((c, v)) = &run[from] {
                    let nc = Cost { order: c.order + 1, nz: c.nz, key: c.key.clone() };
                    if best.as_ref().is_none_or(|(b, _)| nc < *b) {
                        let mut v = v.clone();
                        *v.last_mut().expect("one coefficient per tag") += dir as i32;
                        best = Some((nc, v));
                    }
                }
                if let Some((c, v)) = best.filter(|(c, _)| c.order <= max_order) {
                    if next[s].as_ref().is_none_or(|n| c < *n) {
                        next[s] = Some(c.clone());
                        next_coefs[s] = v.clone();
                    }
                    run[s] = Some((c, v));
                }
            }
        }
        debug_assert!(next_coefs.iter().zip(&next).all(|(v, c)| c.is_none() || v.len() == t + 1));
        cost = next;
        coefs = next_coefs;
    }
    let top = nyq.min(span);
    // Tags whose own harmonic (of order <= max_order) lands on bin k.
    let pure_of = |k: usize| -> Vec<usize> {
        (0..r).filter(|&t| k.is_multiple_of(tag_bins[t]) && k / tag_bins[t] <= max_order as usize).collect()
    };
    // Harmonic number n is a line of every tag: below Nyquist and no tag's shared.
    let matched = |n: usize| (0..r).all(|t| n * tag_bins[t] <= top && pure_of(n * tag_bins[t]).len() == 1);
    let mut out = Vec::new();
    for k in 1..=top {
        let Some(c) = &cost[span + k] else { continue };
        let v: Vec<i64> = coefs[span + k].iter().map(|&n| n as i64).collect();
        let pure = pure_of(k);
        let harmonic = |t: usize| label(&tag_vec(r, t, (k / tag_bins[t]) as i64));
        let (kind, tag, name) = match pure.as_slice() {
            [] => (LineKind::Intermod, None, label(&v)),
            &[t] => {
                let n = k / tag_bins[t];
                let kind = if n == 1 {
                    LineKind::Fundamental
                } else if matched(n) {
                    LineKind::Harmonic
                } else {
                    LineKind::Unmatched
                };
                // A lower-order combination that also reaches it is named beside it.
                let name = if c.nz >= 2 { format!("{}={}", harmonic(t), label(&v)) } else { harmonic(t) };
                (kind, Some(t), name)
            }
            _ => (LineKind::Shared, None, pure.iter().map(|&t| harmonic(t)).collect::<Vec<_>>().join("=")),
        };
        out.push(Line {
            bin: k,
            freq: k as f64 * fps / n_frames as f64,
            coefs: v,
            order: c.order,
            kind,
            tag,
            label: name,
        });
    }
    out
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
        // Harmonics whatever lower-order combination reaches them; the same harmonic
        // numbers (1, 2, 3, 6, 7) in each tag's group, the rest unmatched.
        assert_eq!((at(&l, 36.0).kind, at(&l, 36.0).tag), (LineKind::Harmonic, Some(0)));
        assert_eq!(at(&l, 36.0).label, "6f1=f1+4f2");
        let group = |t: usize, kind: LineKind| -> Vec<f64> {
            l.iter().filter(|x| x.tag == Some(t) && x.kind == kind).map(|x| x.freq).collect()
        };
        assert_eq!(group(0, LineKind::Harmonic), [12.0, 18.0, 36.0, 42.0]);
        assert_eq!(group(1, LineKind::Harmonic), [15.0, 22.5, 45.0, 52.5]);
        assert_eq!(group(0, LineKind::Unmatched), [24.0, 48.0, 54.0]);
        assert_eq!(group(1, LineKind::Unmatched), [37.5]);
        assert!(l.iter().filter(|x| x.kind == LineKind::Intermod).all(|x| x.bin % 12 != 0 && x.bin % 15 != 0));
    }

    #[test]
    fn swapping_the_tags_swaps_the_groups_and_nothing_else() {
        for (bins, n, order) in [(vec![12, 15], 240, 20), (vec![7, 11, 13], 200, 9), (vec![5, 6], 64, 30)] {
            let a = catalogue(&bins, 120.0, n, order);
            let rev: Vec<usize> = bins.iter().rev().copied().collect();
            let b = catalogue(&rev, 120.0, n, order);
            let last = bins.len() - 1;
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((x.bin, x.kind), (y.bin, y.kind), "tags {bins:?}");
                assert_eq!(x.tag, y.tag.map(|t| last - t), "tags {bins:?}, bin {}", x.bin);
            }
        }
    }

    /// The previous catalogue: every coefficient vector enumerated (exponential in the
    /// number of tags), kept as the oracle for the dynamic programme.
    fn brute(tag_bins: &[usize], n_frames: usize, max_order: u32) -> Vec<(usize, u32, Vec<i64>)> {
        let r = tag_bins.len();
        let mut best: Vec<Option<(u32, usize, Vec<i64>)>> = vec![None; n_frames / 2 + 1];
        let mut c = vec![0i64; r];
        fn walk(t: usize, left: u32, c: &mut Vec<i64>, b: &[usize], best: &mut Vec<Option<(u32, usize, Vec<i64>)>>) {
            if t == c.len() {
                let k: i64 = c.iter().zip(b).map(|(&n, &x)| n * x as i64).sum();
                if k <= 0 || k as usize >= best.len() {
                    return;
                }
                let order = c.iter().map(|n| n.unsigned_abs() as u32).sum();
                let nz = c.iter().filter(|&&n| n != 0).count();
                let better = match &best[k as usize] {
                    None => true,
                    Some((o, z, p)) => {
                        (order, nz) < (*o, *z)
                            || ((order, nz) == (*o, *z)
                                && c.iter().map(|n| -n.signum()).lt(p.iter().map(|n| -n.signum())))
                    }
                };
                if better {
                    best[k as usize] = Some((order, nz, c.clone()));
                }
                return;
            }
            for n in -(left as i64)..=left as i64 {
                c[t] = n;
                walk(t + 1, left - n.unsigned_abs() as u32, c, b, best);
            }
            c[t] = 0;
        }
        walk(0, max_order, &mut c, tag_bins, &mut best);
        best.into_iter().enumerate().filter_map(|(k, b)| b.map(|(o, _, c)| (k, o, c))).collect()
    }

    #[test]
    fn catalogue_equals_the_enumeration_of_every_coefficient_vector() {
        for (bins, n, order) in [
            (vec![12, 15], 240, 20),
            (vec![12], 240, 20),
            (vec![12, 15, 18, 21], 240, 6),
            (vec![7, 11, 13], 200, 9),
            (vec![5, 6], 64, 30),
            (vec![40, 3], 120, 12),
        ] {
            let got: Vec<(usize, u32, Vec<i64>)> =
                catalogue(&bins, 120.0, n, order).into_iter().map(|l| (l.bin, l.order, l.coefs)).collect();
            assert_eq!(got, brute(&bins, n, order), "tags {bins:?}, N {n}, order {order}");
        }
    }

    #[test]
    fn sixteen_tags_catalogue_quickly_and_huge_orders_are_refused() {
        let bins: Vec<usize> = (0..16).map(|i| 12 + i).collect();
        let l = catalogue(&bins, 120.0, 240, 20);
        assert_eq!(l.len(), 120, "every bin 1..=120 is some combination of 16 tags");
        let e = check_catalogue(&bins, u32::MAX).unwrap_err().to_string();
        assert!(e.contains("max-order") && e.contains("4294967295"), "{e}");
        assert!(check_catalogue(&[300_000, 2], 100).unwrap_err().to_string().contains("states"));
    }

    #[test]
    fn single_tag_has_only_harmonics() {
        let l = catalogue(&[12], 120.0, 240, 20);
        assert!(l.iter().all(|x| x.kind != LineKind::Intermod));
        assert_eq!(l.len(), 10);
    }
}
