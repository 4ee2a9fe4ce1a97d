//! What a tag modulates: every channel alike (the paper's), the luminance only, an
//! isoluminant chromatic direction, or one channel.
//!
//! # The opponent space
//!
//! A pixel's three channel values `c = (R, G, B)` (gamma-encoded pixel values, as a
//! network sees them) have opponent coordinates `o = M c`:
//!
//! ```text
//! lum = 0.299 R + 0.587 G + 0.114 B      (ITU-R BT.601 luma: PIL's convert("L"),
//!                                          torchvision's rgb_to_grayscale)
//! rg  = R − G                            (red-green)
//! by  = B − (R + G) / 2                  (blue-yellow)
//! ```
//!
//! Modulating component `k` by the factor `s` moves the pixel along the direction
//! `d_k = M⁻¹ e_k`: `c' = c + (s − 1) o_k d_k`, leaving the other two coordinates as
//! they were. The chromatic directions have zero luma (`lum · d_rg = lum · d_by = 0`,
//! since the first row of `M` is orthogonal to the other columns of `M⁻¹`): a
//! red-green or blue-yellow tag changes no pixel's luma, so a unit that sees luma
//! alone (any linear function of `0.299 R + 0.587 G + 0.114 B`) has no response at the
//! tag. The luma of gamma-encoded values is what a network computes, not a photometric
//! luminance: isoluminance on a display would need that display's calibration.
//!
//! With the normalized domain, `c` is the pixel minus the input mean (the modulation
//! scales contrast around the mean, as the paper's does); with the raw domain it is the
//! pixel itself. The result is not clipped to [0, 1] (clipping would add harmonics the
//! network did not make).

use crate::error::{Error, Result};

/// What each region's factor multiplies. Serialized as the text
/// [`Modulation::from_str`](std::str::FromStr) reads (`"red-green"`, `"channel:1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Modulation {
    /// Every channel alike: luma and colour together (the paper's; default).
    #[default]
    All,
    /// The luma coordinate only; colour (rg, by) held.
    Luminance,
    /// The red-green coordinate only (isoluminant).
    RedGreen,
    /// The blue-yellow coordinate only (isoluminant).
    BlueYellow,
    /// One input channel (0-based), the others held.
    Channel(usize),
}

/// The BT.601 luma weights, the first row of the opponent matrix.
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The opponent matrix `M` (rows: lum, rg, by).
pub const OPPONENT: [[f32; 3]; 3] = [LUMA, [1.0, -1.0, 0.0], [-0.5, -0.5, 1.0]];

/// The columns of `M⁻¹`: the direction in `(R, G, B)` along which each opponent
/// coordinate moves, `DIRECTIONS[k]` for coordinate `k`.
pub fn directions() -> [[f32; 3]; 3] {
    // A 3 x 3 inverse by cofactors, in f64 (hand-written: three lines do not need a
    // linear-algebra crate).
    let m = OPPONENT.map(|r| r.map(f64::from));
    let cof = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cof(0, c)).sum();
    // M⁻¹[i][k] = cof(k, i) / det; direction k is column k: [M⁻¹[0][k], M⁻¹[1][k], M⁻¹[2][k]].
    std::array::from_fn(|k| std::array::from_fn(|i| (cof(k, i) / det) as f32))
}

impl Modulation {
    /// Checks the modulation against the model's input: the opponent modulations need
    /// three colour channels (not a greyscale model), a channel one that exists.
    pub fn check_input(self, channels: usize, grayscale: bool) -> Result<()> {
        match self {
            Modulation::All => Ok(()),
            Modulation::Channel(k) if k < channels => Ok(()),
            Modulation::Channel(k) => {
                Err(Error::param("modulation", format!("channel:0 to channel:{}", channels.max(1) - 1), self_str(k)))
            }
            _ if channels == 3 && !grayscale => Ok(()),
            _ => Err(Error::param(
                "modulation",
                "all or channel:0 for a model with one (greyscale) input channel; luminance, red-green and \
                 blue-yellow need three colour channels",
                self,
            )),
        }
    }

    /// Modulates one pixel's channel values `c` (`c.len()` channels, centred or raw,
    /// see the module doc) by the factor `s`, in place.
    pub fn apply(self, c: &mut [f32], s: f32) {
        match self {
            Modulation::All => c.iter_mut().for_each(|x| *x *= s),
            Modulation::Channel(k) => {
                if let Some(x) = c.get_mut(k) {
                    *x *= s;
                }
            }
            Modulation::Luminance | Modulation::RedGreen | Modulation::BlueYellow => {
                let k = match self {
                    Modulation::Luminance => 0,
                    Modulation::RedGreen => 1,
                    _ => 2,
                };
                if c.len() != 3 {
                    return;
                }
                let o: f32 = OPPONENT[k].iter().zip(c.iter()).map(|(m, x)| m * x).sum();
                let d = directions()[k];
                for (x, d) in c.iter_mut().zip(d) {
                    *x += (s - 1.0) * o * d;
                }
            }
        }
    }
}

fn self_str(k: usize) -> String {
    format!("channel:{k}")
}

impl std::str::FromStr for Modulation {
    type Err = Error;
    /// Parses `all`, `luminance`, `red-green`, `blue-yellow` or `channel:K`.
    fn from_str(s: &str) -> Result<Modulation> {
        const ALLOWED: &str = "one of all, luminance, red-green, blue-yellow, channel:K (K = 0, 1, 2)";
        Ok(match s {
            "all" => Modulation::All,
            "luminance" => Modulation::Luminance,
            "red-green" => Modulation::RedGreen,
            "blue-yellow" => Modulation::BlueYellow,
            c if c.starts_with("channel:") => {
                Modulation::Channel(c[8..].parse().map_err(|_| Error::param("modulation", ALLOWED, s))?)
            }
            _ => return Err(Error::param("modulation", ALLOWED, s)),
        })
    }
}

impl std::fmt::Display for Modulation {
    /// The form [`Modulation::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Modulation::All => f.write_str("all"),
            Modulation::Luminance => f.write_str("luminance"),
            Modulation::RedGreen => f.write_str("red-green"),
            Modulation::BlueYellow => f.write_str("blue-yellow"),
            Modulation::Channel(k) => f.write_str(&self_str(*k)),
        }
    }
}

impl serde::Serialize for Modulation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::io::json::via_str::serialize(self, s)
    }
}

impl<'de> serde::Deserialize<'de> for Modulation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Modulation, D::Error> {
        crate::io::json::via_str::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn opponent_directions_invert_the_matrix_and_the_chromatic_ones_have_zero_luma() {
        let d = directions();
        for (r, row) in OPPONENT.iter().enumerate() {
            for (k, dk) in d.iter().enumerate() {
                let want = if r == k { 1.0 } else { 0.0 };
                assert!((dot(*row, *dk) - want).abs() < 1e-6, "M[{r}] . d[{k}] = {}", dot(*row, *dk));
            }
        }
        // Red-green moves red up and green down; blue-yellow moves blue up.
        assert!(d[1][0] > 0.0 && d[1][1] < 0.0);
        assert!(d[2][2] > 0.0 && d[2][0] < 0.0 && d[2][1] < 0.0);
    }

    #[test]
    fn each_modulation_scales_its_own_coordinate_and_holds_the_others() {
        let c = [0.3f32, -0.2, 0.5];
        let coords = |c: [f32; 3]| OPPONENT.map(|row| dot(row, c));
        let before = coords(c);
        for (m, k) in [(Modulation::Luminance, 0), (Modulation::RedGreen, 1), (Modulation::BlueYellow, 2)] {
            let mut x = c;
            m.apply(&mut x, 0.4);
            let after = coords(x);
            for j in 0..3 {
                let want = if j == k { 0.4 * before[j] } else { before[j] };
                assert!((after[j] - want).abs() < 1e-6, "{m}: coordinate {j}: {} vs {want}", after[j]);
            }
        }
        let mut x = c;
        Modulation::All.apply(&mut x, 0.5);
        assert_eq!(x, [0.15, -0.1, 0.25]);
        let mut x = c;
        Modulation::Channel(2).apply(&mut x, 0.5);
        assert_eq!(x, [0.3, -0.2, 0.25]);
    }

    #[test]
    fn modulation_parses_its_names_and_refuses_what_the_input_cannot_show() {
        for s in ["all", "luminance", "red-green", "blue-yellow", "channel:2"] {
            assert_eq!(s.parse::<Modulation>().unwrap().to_string(), s);
        }
        let e = "green".parse::<Modulation>().unwrap_err().to_string();
        assert!(e.contains("modulation") && e.contains("red-green") && e.contains("green"), "{e}");
        let e = Modulation::RedGreen.check_input(1, true).unwrap_err().to_string();
        assert!(e.contains("three colour channels") && e.contains("red-green"), "{e}");
        let e = Modulation::Channel(3).check_input(3, false).unwrap_err().to_string();
        assert!(e.contains("channel:0 to channel:2") && e.contains("channel:3"), "{e}");
        assert!(Modulation::BlueYellow.check_input(3, false).is_ok());
        assert!(Modulation::Channel(0).check_input(1, true).is_ok());
    }
}
