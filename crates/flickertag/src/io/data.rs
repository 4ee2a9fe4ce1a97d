//! Images in: the CIFAR-10 binary format, PNG/JPEG files, and normalization.
//!
//! An [`Image`] holds pixels as `f32` in [0, 1], channel-major `[3, H, W]`.
//! CIFAR-10 (binary version): each record is one label byte then 3,072 pixel bytes
//! (1,024 red, 1,024 green, 1,024 blue; 32x32 row-major); 10,000 records per file.
//! The data folder is `FLICKERTAG_DATA` (with `cifar10/` and `models/` inside), else the
//! user cache `~/.cache/flickertag`, where `flickertag fetch-data` puts the official files.

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

/// How an image becomes a model input: resized and centre-cropped to the model's size
/// (optional), converted to luminance for a 1-channel model, then normalized per
/// channel `(x - mean) / std` with `x` in [0, 1] (torchvision's `Normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Channel means, in [0, 1] pixel units (a 1-channel model uses the first).
    pub mean: [f32; 3],
    /// Channel standard deviations, in [0, 1] pixel units (a 1-channel model uses the first).
    pub std: [f32; 3],
    /// Resize so that the shorter side has this many pixels (bilinear), before `crop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<usize>,
    /// Centre-crop to `crop x crop` pixels, after `resize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<usize>,
    /// Convert RGB to luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B) for a
    /// 1-channel model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grayscale: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess { mean: IMAGENET_MEAN, std: IMAGENET_STD, resize: None, crop: None, grayscale: false }
    }
}

impl Preprocess {
    /// Checks a mean or std list (`what` names it in errors): one value (for every
    /// channel) or three, finite, means in [0, 1], stds in (0, 1].
    pub fn triple(what: &'static str, xs: &[f32]) -> Result<[f32; 3]> {
        let v: [f32; 3] = match xs {
            [x] => [*x; 3],
            [a, b, c] => [*a, *b, *c],
            _ => return Err(Error::param(what, "1 or 3 comma-separated values", format!("{xs:?}"))),
        };
        let is_std = what.ends_with("std");
        let ok = |x: f32| x.is_finite() && if is_std { x > 0.0 && x <= 1.0 } else { (0.0..=1.0).contains(&x) };
        if !v.iter().all(|&x| ok(x)) {
            let range = if is_std { "in (0, 1]" } else { "in [0, 1]" };
            return Err(Error::param(
                what,
                format!("values {range}, in [0, 1] pixel units as torchvision's Normalize (a model fed 0-255 pixels: mean 0, std 0.00392156862745098)"),
                format!("{xs:?}"),
            ));
        }
        Ok(v)
    }

    /// Resizes and centre-crops `img` per [`Preprocess::resize`] and [`Preprocess::crop`].
    /// A crop larger than the image (after the resize) is an error naming `crop`: it
    /// was skipped silently and still recorded as applied. Each channel plane is
    /// resized in place of a copy of the whole image (an 8192 x 8192 image held it
    /// twice, 1.6 GB, before): the same filter and arithmetic per channel as an RGB
    /// resize, so the same values (tested).
    pub fn fit(&self, img: Image) -> Result<Image> {
        let mut img = img;
        if let Some(s) = self.resize {
            let short = img.height.min(img.width).max(1);
            let (h, w) = ((img.height * s).div_ceil(short).max(1), (img.width * s).div_ceil(short).max(1));
            let (h, w) = if img.height <= img.width { (s, w) } else { (h, s) };
            if (h, w) != (img.height, img.width) {
                img = resize_planes(&img, h, w);
            }
        }
        if let Some(s) = self.crop {
            if s > img.height || s > img.width {
                return Err(Error::param(
                    "crop",
                    format!(
                        "a side of at most the image's {}x{} (height x width) after <resize>",
                        img.height, img.width
                    ),
                    s,
                ));
            }
            if (s, s) != (img.height, img.width) {
                let (top, left) = ((img.height - s) / 2, (img.width - s) / 2);
                let hw = img.height * img.width;
                let mut px = Vec::with_capacity(3 * s * s);
                for c in 0..3 {
                    for y in top..top + s {
                        let row = c * hw + y * img.width;
                        px.extend_from_slice(&img.pixels[row + left..row + left + s]);
                    }
                }
                img = Image { height: s, width: s, pixels: px, label: img.label };
            }
        }
        Ok(img)
    }

    /// Says what is applied, e.g. `resize 224, mean [0.485, ...], std [...]`.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(r) = self.resize {
            v.push(format!("resize {r}"));
        }
        if let Some(c) = self.crop {
            v.push(format!("centre crop {c}"));
        }
        if self.grayscale {
            v.push("luminance".into());
            v.push(format!("mean {}, std {}", self.mean[0], self.std[0]));
        } else {
            v.push(format!("mean {:?}, std {:?}", self.mean, self.std));
        }
        v.join(", ")
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
    /// The pixels in the model's channels: `[3, H, W]`, or `[1, H, W]` luminance when
    /// `p.grayscale`.
    pub fn channels(&self, p: &Preprocess) -> Vec<f32> {
        let hw = self.height * self.width;
        if p.grayscale {
            (0..hw)
                .map(|i| 0.299 * self.pixels[i] + 0.587 * self.pixels[hw + i] + 0.114 * self.pixels[2 * hw + i])
                .collect()
        } else {
            self.pixels.clone()
        }
    }

    /// `(x - mean) / std` per channel, `[C, H, W]` ([`Image::channels`]).
    pub fn normalized(&self, p: &Preprocess) -> Vec<f32> {
        let hw = self.height * self.width;
        self.channels(p).iter().enumerate().map(|(i, &x)| (x - p.mean[i / hw]) / p.std[i / hw]).collect()
    }

    /// Reads a PNG, JPEG or GIF file as RGB. The file must be a regular file of at most
    /// [`MAX_IMAGE_FILE_BYTES`]; its dimensions are read from the header and checked
    /// ([`MAX_IMAGE_SIDE`]) before anything is decoded; a JPEG without its end-of-image
    /// marker after its last scan (a truncated file, which decoders fill with grey) is an
    /// error.
    pub fn from_file(path: &Path) -> Result<Image> {
        let bytes = read_regular_file(path, MAX_IMAGE_FILE_BYTES)?;
        Image::from_bytes(&bytes, path)
    }

    /// Decodes an image held in memory (`path` names it in errors), as [`Image::from_file`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Image> {
        use std::io::Cursor;
        let bad = |reason: String| Error::Data { path: path.into(), reason };
        let reader = || {
            image::ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| bad(format!("not a readable image: {e}")))
        };
        let header = reader()?;
        let format = header.format().ok_or_else(|| bad("not a PNG, JPEG or GIF image".into()))?;
        let (w, h) = header.into_dimensions().map_err(|e| bad(format!("not a readable image: {e}")))?;
        if w == 0 || h == 0 || w as usize > MAX_IMAGE_SIDE || h as usize > MAX_IMAGE_SIDE {
            return Err(bad(format!("{w}x{h} pixels; flickertag reads images of 1 to {MAX_IMAGE_SIDE} pixels a side")));
        }
        if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
            return Err(bad("truncated JPEG: no end-of-image marker after the last scan".into()));
        }
        let mut r = reader()?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_IMAGE_SIDE as u32);
        limits.max_image_height = Some(MAX_IMAGE_SIDE as u32);
        limits.max_alloc = Some(256 << 20);
        r.limits(limits);
        let img = r.decode().map_err(|e| bad(format!("not a readable image: {e}")))?;
        // Straight from the decoded 8-bit pixels to float planes (no RGB copy between):
        // at most the decoded image (4 bytes a pixel) and the planes (12) at once.
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut pixels = vec![0.0; 3 * h * w];
        let mut put = |i: usize, p: &[u8]| {
            for c in 0..3 {
                pixels[c * h * w + i] = p[c] as f32 / 255.0;
            }
        };
        match &img {
            image::DynamicImage::ImageRgb8(b) => b.pixels().enumerate().for_each(|(i, p)| put(i, &p.0)),
            image::DynamicImage::ImageRgba8(b) => b.pixels().enumerate().for_each(|(i, p)| put(i, &p.0)),
            other => other.to_rgb8().pixels().enumerate().for_each(|(i, p)| put(i, &p.0)),
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

/// `img` resized to `h` x `w` (triangle filter, values clamped to [0, 1]), one channel
/// plane at a time, each read in place.
fn resize_planes(img: &Image, h: usize, w: usize) -> Image {
    let hw = img.height * img.width;
    let mut px = vec![0.0; 3 * h * w];
    for c in 0..3 {
        let plane: image::ImageBuffer<image::Luma<f32>, &[f32]> =
            image::ImageBuffer::from_raw(img.width as u32, img.height as u32, &img.pixels[c * hw..(c + 1) * hw])
                .expect("a plane holds height x width values");
        let r = image::imageops::resize(&plane, w as u32, h as u32, image::imageops::FilterType::Triangle);
        for (out, v) in px[c * h * w..(c + 1) * h * w].iter_mut().zip(r.as_raw()) {
            *out = v.clamp(0.0, 1.0);
        }
    }
    Image { height: h, width: w, pixels: px, label: img.label }
}

/// Largest image file read.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// Largest image side, pixels (checked from the header, before decoding).
pub const MAX_IMAGE_SIDE: usize = 8192;

/// Whether a JPEG stream ends its last scan: the last end-of-image marker (`FF D9`)
/// comes after the last start-of-scan (`FF DA`). Inside a scan `FF` is always followed
/// by `00` or a restart marker, so neither pair appears in the coded data.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let last = |m: u8| b.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
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
            if !p.exists() {
                return Err(Error::Data {
                    path: p.clone(),
                    reason:
                        "missing; set FLICKERTAG_DATA to a folder with cifar10/*.bin, or run `flickertag fetch-data`"
                            .into(),
                });
            }
            let b = read_regular_file(&p, BATCH_BYTES as u64)?;
            check_batch(&b, &p)?;
            if split == Split::Test {
                check_test_batch_digest(&b, &p)?;
            }
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

/// One standard normal draw (`rand_distr`'s ziggurat sampler).
pub fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    rng.sample(rand_distr::StandardNormal)
}

/// Bytes of one CIFAR-10 batch file: 10,000 records.
pub const BATCH_BYTES: usize = 10_000 * RECORD;

/// Checks the test batch against the SHA-256 of the official `test_batch.bin`: a
/// different file (another version, a re-encoding, a few flipped bytes) is an error
/// naming it, since every accuracy and every analysis of "test image i" depends on it.
pub fn check_test_batch_digest(b: &[u8], path: &Path) -> Result<()> {
    let got = sha256_hex(b);
    if got != TEST_BATCH_SHA256 {
        return Err(Error::Data {
            path: path.into(),
            reason: format!(
                "SHA-256 {got} is not that of the official CIFAR-10 test_batch.bin ({TEST_BATCH_SHA256}); \
                 fetch it again (`flickertag fetch-data`) or analyse your own images with <image-file>"
            ),
        });
    }
    Ok(())
}

/// Reads a whole regular file of at most `max` bytes. A FIFO, device or folder is
/// refused before it is opened (so nothing blocks), a larger file before it is read.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let bad = |reason: String| Error::Data { path: path.into(), reason };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(bad("not a regular file (a folder, FIFO or device)".into()));
    }
    if meta.len() > max {
        return Err(bad(format!("{} bytes, more than the {max} flickertag reads from such a file", meta.len())));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut v = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut v).map_err(|e| Error::io(path, e))?;
    if v.len() as u64 > max {
        return Err(bad(format!("grew past {max} bytes while being read")));
    }
    Ok(v)
}

/// Checks a CIFAR-10 batch file's length (exactly 10,000 records) and labels.
pub fn check_batch(b: &[u8], path: &Path) -> Result<()> {
    if b.len() != BATCH_BYTES {
        return Err(Error::Data {
            path: path.into(),
            reason: format!(
                "{} bytes is not a CIFAR-10 batch of 10,000 {RECORD}-byte records ({BATCH_BYTES} bytes)",
                b.len()
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

/// The data folder: `FLICKERTAG_DATA` if set (it must exist), else the user cache
/// `~/.cache/flickertag` if it holds CIFAR-10, else `None`.
pub fn data_dir() -> Result<Option<PathBuf>> {
    if let Some(d) = std::env::var_os("FLICKERTAG_DATA") {
        let d = PathBuf::from(d);
        if !d.is_dir() {
            return Err(Error::Data {
                path: d,
                reason: "FLICKERTAG_DATA points to a folder that does not exist".into(),
            });
        }
        return Ok(Some(d));
    }
    Ok(user_cache().filter(|c| c.join("cifar10/test_batch.bin").is_file()))
}

/// `~/.cache/flickertag`, where downloads go.
pub fn user_cache() -> Option<PathBuf> {
    dirs::cache_dir().map(|c| c.join("flickertag"))
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of `bytes`, as [`hex`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
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

    #[test]
    fn resizing_plane_by_plane_equals_the_image_crates_rgb_resize() {
        let img = synthetic_image(3, 37, 53);
        let (h, w) = (16, 23);
        let hw = img.height * img.width;
        // The oracle: image's own resize of the whole RGB image.
        let rgb = image::Rgb32FImage::from_fn(img.width as u32, img.height as u32, |x, y| {
            let i = y as usize * img.width + x as usize;
            image::Rgb([img.pixels[i], img.pixels[hw + i], img.pixels[2 * hw + i]])
        });
        let r = image::imageops::resize(&rgb, w as u32, h as u32, image::imageops::FilterType::Triangle);
        let got = resize_planes(&img, h, w);
        for (x, y, p) in r.enumerate_pixels() {
            for c in 0..3 {
                let v = got.pixels[c * h * w + y as usize * w + x as usize];
                assert_eq!(v.to_bits(), p.0[c].clamp(0.0, 1.0).to_bits(), "({x}, {y}, {c})");
            }
        }
    }

    #[test]
    fn regression_a_crop_larger_than_the_image_is_an_error_not_skipped() {
        let p = Preprocess { crop: Some(40), ..Preprocess::default() };
        let e = p.fit(synthetic_image(1, 32, 32)).unwrap_err().to_string();
        assert!(e.contains("crop") && e.contains("32x32") && e.contains("40"), "{e}");
        let p = Preprocess { resize: Some(48), crop: Some(40), ..Preprocess::default() };
        assert_eq!(p.fit(synthetic_image(1, 32, 64)).unwrap().height, 40);
    }
    use super::*;

    #[test]
    fn batch_of_wrong_length_is_rejected_with_the_sizes() {
        let err = check_batch(&vec![0u8; RECORD * 2 + 5], Path::new("x.bin")).unwrap_err().to_string();
        assert!(err.contains("x.bin") && err.contains("6151 bytes"), "{err}");
    }

    #[test]
    fn normalization_is_per_channel() {
        let img = Image { height: 1, width: 2, pixels: vec![0.5, 0.5, 0.25, 0.25, 1.0, 0.0], label: None };
        let p = Preprocess { mean: [0.5, 0.0, 0.5], std: [1.0, 0.5, 0.5], ..Preprocess::default() };
        assert_eq!(img.normalized(&p), vec![0.0, 0.0, 0.5, 0.5, 1.0, -1.0]);
    }
}
