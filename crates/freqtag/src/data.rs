//! Images in: the CIFAR-10 binary format, PNG/JPEG files, and normalization.
//!
//! An [`Image`] holds pixels as `f32` in [0, 1], channel-major `[3, H, W]`.
//! CIFAR-10 (binary version): each record is one label byte then 3,072 pixel bytes
//! (1,024 red, 1,024 green, 1,024 blue; 32x32 row-major); 10,000 records per file.
//! The data folder is `FREQTAG_DATA` (with `cifar10/` and `models/` inside), else the
//! user cache `~/.cache/freqtag`, where `freqtag fetch-data` puts the official files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Bytes per CIFAR-10 record.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// CIFAR-10 class names, in label order.
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// Official download address of the binary version.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// SHA-256 of the official archive.
pub const CIFAR10_SHA256: &str = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd";
/// SHA-256 of the official `test_batch.bin`.
pub const TEST_BATCH_SHA256: &str = "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b";

/// The ImageNet channel means the pretrained CIFAR ResNets were trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet channel standard deviations the pretrained CIFAR ResNets were trained with.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Per-channel input normalization `(x/255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Channel means, in [0, 1] pixel units.
    pub mean: [f32; 3],
    /// Channel standard deviations, in [0, 1] pixel units.
    pub std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess { mean: IMAGENET_MEAN, std: IMAGENET_STD }
    }
}

/// An RGB image, `[3, H, W]`, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// `3 * height * width` values, channel-major.
    pub pixels: Vec<f32>,
    /// Class label if known.
    pub label: Option<u8>,
}

impl Image {
    /// `(x - mean) / std` per channel, `[3, H, W]`.
    pub fn normalized(&self, p: &Preprocess) -> Vec<f32> {
        let hw = self.height * self.width;
        self.pixels.iter().enumerate().map(|(i, &x)| (x - p.mean[i / hw]) / p.std[i / hw]).collect()
    }

    /// Reads a PNG or JPEG file as RGB.
    pub fn from_file(path: &Path) -> Result<Image> {
        let img = image::open(path)
            .map_err(|e| Error::Data { path: path.into(), reason: format!("not a readable image: {e}") })?;
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut pixels = vec![0.0; 3 * h * w];
        for (x, y, p) in rgb.enumerate_pixels() {
            for c in 0..3 {
                pixels[c * h * w + y as usize * w + x as usize] = p[c] as f32 / 255.0;
            }
        }
        Ok(Image { height: h, width: w, pixels, label: None })
    }

    /// Encodes as 8-bit RGB (values clamped to [0, 1]).
    pub fn to_rgb8(&self) -> image::RgbImage {
        let (h, w) = (self.height, self.width);
        image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at =
                |c: usize| (self.pixels[c * h * w + y as usize * w + x as usize].clamp(0.0, 1.0) * 255.0).round() as u8;
            image::Rgb([at(0), at(1), at(2)])
        })
    }
}

/// Which CIFAR-10 split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `test_batch.bin` (10,000 images, exact).
    Test,
    /// `data_batch_1..5.bin` (50,000 images).
    Train,
}

impl std::str::FromStr for Split {
    type Err = Error;
    /// Parses `test` or `train`.
    fn from_str(s: &str) -> Result<Split> {
        match s {
            "test" => Ok(Split::Test),
            "train" => Ok(Split::Train),
            _ => Err(Error::param("split", "one of test, train", s)),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Test => "test",
            Split::Train => "train",
        })
    }
}

/// CIFAR-10 loaded in memory: raw records.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    records: Vec<u8>,
}

impl Cifar10 {
    /// Loads a split from `dir` (a folder holding the `.bin` files, or a data folder
    /// with a `cifar10/` subfolder).
    pub fn load(dir: &Path, split: Split) -> Result<Cifar10> {
        let dir = if dir.join("cifar10").is_dir() { dir.join("cifar10") } else { dir.to_path_buf() };
        let files: Vec<String> = match split {
            Split::Test => vec!["test_batch.bin".into()],
            Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        };
        let mut records = Vec::new();
        for f in files {
            let p = dir.join(&f);
            let b = std::fs::read(&p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::Data {
                    path: p.clone(),
                    reason: "missing; set FREQTAG_DATA to a folder with cifar10/*.bin, or run `freqtag fetch-data`"
                        .into(),
                },
                _ => Error::io(&p, e),
            })?;
            check_batch(&b, &p)?;
            records.extend(b);
        }
        Ok(Cifar10 { records })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.records[i * RECORD]
    }

    /// Image `i` (with label).
    pub fn image(&self, i: usize) -> Image {
        let r = &self.records[i * RECORD..(i + 1) * RECORD];
        Image { height: 32, width: 32, pixels: r[1..].iter().map(|&b| b as f32 / 255.0).collect(), label: Some(r[0]) }
    }

    /// The first image of each class, in class order (the default image set).
    pub fn first_of_each_class(&self) -> Vec<usize> {
        (0..10u8).filter_map(|c| (0..self.len()).find(|&i| self.label(i) == c)).collect()
    }
}

/// A seeded draw of `n` distinct indices out of `0..len`, sorted (the same seed gives
/// the same images).
pub fn seeded_sample(len: usize, n: usize, seed: u64) -> Result<Vec<usize>> {
    use rand::SeedableRng;
    if n == 0 || n > len {
        return Err(Error::param("n-images", format!("1..={len}"), n));
    }
    let mut v = rand::seq::index::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), len, n).into_vec();
    v.sort_unstable();
    Ok(v)
}

/// Checks a CIFAR-10 batch file's length and labels.
pub fn check_batch(b: &[u8], path: &Path) -> Result<()> {
    if b.is_empty() || b.len() % RECORD != 0 {
        return Err(Error::Data {
            path: path.into(),
            reason: format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (a full batch is {} bytes)",
                b.len(),
                10_000 * RECORD
            ),
        });
    }
    if let Some(i) = (0..b.len() / RECORD).find(|i| b[i * RECORD] > 9) {
        return Err(Error::Data {
            path: path.into(),
            reason: format!("record {i} has label {} (must be 0-9)", b[i * RECORD]),
        });
    }
    Ok(())
}

/// The data folder: `FREQTAG_DATA` if set (it must exist), else the user cache
/// `~/.cache/freqtag` if it holds CIFAR-10, else `None`.
pub fn data_dir() -> Result<Option<PathBuf>> {
    if let Some(d) = std::env::var_os("FREQTAG_DATA") {
        let d = PathBuf::from(d);
        if !d.is_dir() {
            return Err(Error::Data { path: d, reason: "FREQTAG_DATA points to a folder that does not exist".into() });
        }
        return Ok(Some(d));
    }
    Ok(user_cache().filter(|c| c.join("cifar10/test_batch.bin").is_file()))
}

/// `~/.cache/freqtag`, where downloads go.
pub fn user_cache() -> Option<PathBuf> {
    dirs::cache_dir().map(|c| c.join("freqtag"))
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A seeded synthetic RGB image (smooth gratings and a bright disc), `[3, h, w]` in
/// [0, 1]; for demonstrations and tests that must run without CIFAR-10.
pub fn synthetic_image(seed: u64, h: usize, w: usize) -> Image {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let params: Vec<(f32, f32, f32)> = (0..3)
        .map(|_| (rng.random_range(0.1..0.6), rng.random_range(0.1..0.6), rng.random_range(0.0..std::f32::consts::TAU)))
        .collect();
    let (cy, cx, r) =
        (rng.random_range(0.2..0.8) * h as f32, rng.random_range(0.2..0.8) * w as f32, rng.random_range(3.0..8.0));
    let mut pixels = vec![0.0; 3 * h * w];
    for c in 0..3 {
        let (fy, fx, ph) = params[c];
        for y in 0..h {
            for x in 0..w {
                let g = 0.5 + 0.35 * (fy * y as f32 + fx * x as f32 + ph).sin();
                let d = ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt();
                pixels[c * h * w + y * w + x] = if d < r { 0.95 } else { g };
            }
        }
    }
    Image { height: h, width: w, pixels, label: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_of_wrong_length_is_rejected_with_the_sizes() {
        let err = check_batch(&vec![0u8; RECORD * 2 + 5], Path::new("x.bin")).unwrap_err().to_string();
        assert!(err.contains("x.bin") && err.contains("6151 bytes"), "{err}");
    }

    #[test]
    fn normalization_is_per_channel() {
        let img = Image { height: 1, width: 2, pixels: vec![0.5, 0.5, 0.25, 0.25, 1.0, 0.0], label: None };
        let p = Preprocess { mean: [0.5, 0.0, 0.5], std: [1.0, 0.5, 0.5] };
        assert_eq!(img.normalized(&p), vec![0.0, 0.0, 0.5, 0.5, 1.0, -1.0]);
    }
}
