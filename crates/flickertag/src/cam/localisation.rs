//! A localisation set with known boxes, built from CIFAR-10: each case is one object
//! image pasted at a seeded position into a larger canvas of other content.
//!
//! A case of canvas side `S` (pixels; `S ≥ 33`):
//! - the *object*: a CIFAR-10 test image (32 × 32, its class is the case's target),
//!   pasted unscaled with its top-left corner at `(x, y)`, each uniform in `0..=S − 32`;
//! - the *background*: a mosaic of `⌈S/32⌉²` other test images, each of a class other
//!   than the object's, tiled from the top-left corner (the last row and column cut at
//!   the canvas edge), drawn without replacement within the case.
//!
//! The box is `[x, x + 32) × [y, y + 32)`. The object is shown at the scale the network
//! was trained on; what surrounds it is natural image content of other classes, so a
//! map that highlights "any object" is not rewarded, only one that finds the target.
//! Everything is drawn from one seed (a ChaCha8 stream per case), never curated: the
//! same seed, pool and size give the same cases on every machine.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::data::{Cifar10, Image};

/// Side of a CIFAR-10 image, the object's box.
pub const OBJECT: usize = 32;

/// Smallest and largest canvas side.
pub const CANVAS_RANGE: (usize, usize) = (40, 256);

/// Most cases in one set.
pub const MAX_CASES: usize = 100_000;

/// One case: which object, where, on which background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Test-set index of the object image.
    pub image: usize,
    /// Its class: the target of the maps.
    pub label: u8,
    /// Left edge of the box (pixels).
    pub x: usize,
    /// Top edge of the box.
    pub y: usize,
    /// Test-set indices of the background tiles, row-major.
    pub background: Vec<usize>,
}

impl Case {
    /// Whether canvas pixel `(row, col)` lies in the box.
    pub fn in_box(&self, row: usize, col: usize) -> bool {
        (self.y..self.y + OBJECT).contains(&row) && (self.x..self.x + OBJECT).contains(&col)
    }
}

/// What surrounds the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Background {
    /// A mosaic of other test images at their own scale: competing objects.
    Mosaic,
    /// One other test image upscaled (bilinear) to the canvas: natural content with no
    /// second object at the scale the network was trained on.
    Upscaled,
}

impl Background {
    /// Background images a case of canvas side `canvas` takes.
    pub fn tiles(self, canvas: usize) -> usize {
        match self {
            Background::Mosaic => canvas.div_ceil(OBJECT).pow(2),
            Background::Upscaled => 1,
        }
    }

    /// `mosaic` / `upscaled`.
    pub fn name(self) -> &'static str {
        match self {
            Background::Mosaic => "mosaic",
            Background::Upscaled => "upscaled",
        }
    }
}

impl std::str::FromStr for Background {
    type Err = Error;
    fn from_str(s: &str) -> Result<Background> {
        [Background::Mosaic, Background::Upscaled]
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::param("background", "mosaic or upscaled", s))
    }
}

/// Draws `n` cases of canvas side `canvas`: objects drawn without replacement from
/// `pool` (test-set indices), backgrounds from the rest of `pool` with other classes.
pub fn cases(
    test: &Cifar10,
    pool: &[usize],
    n: usize,
    canvas: usize,
    background: Background,
    seed: u64,
) -> Result<Vec<Case>> {
    if !(CANVAS_RANGE.0..=CANVAS_RANGE.1).contains(&canvas) {
        return Err(Error::param("canvas", format!("{}..={} pixels a side", CANVAS_RANGE.0, CANVAS_RANGE.1), canvas));
    }
    if n == 0 || n > MAX_CASES.min(pool.len()) {
        return Err(Error::param(
            "n-cases",
            format!("1..={} (the test images outside the analysis images, at most {MAX_CASES})", pool.len()),
            n,
        ));
    }
    let tiles = background.tiles(canvas);
    let objects = crate::io::data::seeded_sample(pool.len(), n, seed)?;
    let mut out = Vec::with_capacity(n);
    for (k, &o) in objects.iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let image = pool[o];
        let label = test.label(image);
        let mut background = Vec::with_capacity(tiles);
        // Rejection draws: every class but one has ~9/10 of the pool, so this ends fast;
        // the attempt bound keeps a pathological pool (one class) from looping forever.
        let mut attempts = 0;
        while background.len() < tiles {
            attempts += 1;
            if attempts > 1000 * tiles {
                return Err(Error::param(
                    "n-cases",
                    format!("a pool with {tiles} images of classes other than {label} for each background"),
                    format!("{} test images", pool.len()),
                ));
            }
            let b = pool[rng.random_range(0..pool.len())];
            if b != image && test.label(b) != label && !background.contains(&b) {
                background.push(b);
            }
        }
        let x = rng.random_range(0..=canvas - OBJECT);
        let y = rng.random_range(0..=canvas - OBJECT);
        out.push(Case { image, label, x, y, background });
    }
    Ok(out)
}

/// Copies a 32 × 32 image into the `[3, S, S]` planes at `(top, left)`, cut at the edge.
fn paste(pixels: &mut [f32], canvas: usize, img: &Image, top: usize, left: usize) {
    for c in 0..3 {
        for r in 0..OBJECT.min(canvas - top) {
            let src = &img.pixels[c * OBJECT * OBJECT + r * OBJECT..][..OBJECT.min(canvas - left)];
            let at = c * canvas * canvas + (top + r) * canvas + left;
            pixels[at..at + src.len()].copy_from_slice(src);
        }
    }
}

/// The canvas of a case, `[3, S, S]` in [0, 1].
pub fn render(test: &Cifar10, case: &Case, canvas: usize, background: Background) -> Image {
    let per_row = canvas.div_ceil(OBJECT);
    let mut pixels = vec![0.0f32; 3 * canvas * canvas];
    match background {
        Background::Mosaic => {
            for (t, &b) in case.background.iter().enumerate() {
                paste(&mut pixels, canvas, &test.image(b), (t / per_row) * OBJECT, (t % per_row) * OBJECT);
            }
        }
        Background::Upscaled => {
            let img = test.image(case.background[0]);
            for (c, plane) in img.pixels.chunks(OBJECT * OBJECT).enumerate() {
                let v: Vec<f64> = plane.iter().map(|&x| x as f64).collect();
                let up = super::methods::upsample(&v, OBJECT, OBJECT, canvas);
                for (o, u) in pixels[c * canvas * canvas..(c + 1) * canvas * canvas].iter_mut().zip(up) {
                    *o = u as f32;
                }
            }
        }
    }
    paste(&mut pixels, canvas, &test.image(case.image), case.y, case.x);
    Image { height: canvas, width: canvas, pixels, label: Some(case.label) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_box_covers_exactly_the_object_pixels() {
        let c = Case { image: 0, label: 0, x: 5, y: 9, background: vec![] };
        let inside = (0..64).flat_map(|r| (0..64).map(move |q| (r, q))).filter(|&(r, q)| c.in_box(r, q)).count();
        assert_eq!(inside, 32 * 32);
        assert!(c.in_box(9, 5) && c.in_box(40, 36) && !c.in_box(41, 36) && !c.in_box(9, 37) && !c.in_box(8, 5));
    }
}
