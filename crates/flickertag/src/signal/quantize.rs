//! How frames are stored before the network sees them (`--quantize`): exact float
//! frames (flickertag's default), 8-bit pixels, or 8-bit pixels through a JPEG encoder.
//!
//! A pipeline that writes its frames as image files, as the first author's public code
//! did, quantizes each frame to 8 bits per channel and, for JPEG files, compresses it
//! lossily. Both add frame-to-frame errors that are not the network's response: 8-bit
//! rounding moves a pixel by up to 1/510, a step that depends on the frame's factor, so
//! it puts energy on bins off the response grid; JPEG adds blocking that depends on the
//! content of each frame. flickertag reproduces them to compare with such numbers:
//! each frame, mapped back to pixel units (`x · std + mean`), is clipped to [0, 1],
//! rounded to `round(255 · p)` (and, for `jpeg:Q`, encoded as a baseline JPEG of
//! quality Q, 4:2:0 for colour, by the `image` crate's encoder, and decoded), then
//! normalized again as the model expects. The authors' JPEG quality is not known to
//! us (PIL's default is 75).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::data::Preprocess;

/// Frame storage. Serialized as the text [`Quantize::from_str`](std::str::FromStr) reads
/// (`"none"`, `"uint8"`, `"jpeg:75"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantize {
    /// Float frames as computed (default).
    #[default]
    None,
    /// Pixels rounded to 8 bits per channel.
    Uint8,
    /// 8-bit pixels encoded as a JPEG of this quality (1-100) and decoded.
    Jpeg(u8),
}

impl std::str::FromStr for Quantize {
    type Err = Error;
    /// Parses `none`, `uint8` or `jpeg:Q` (Q = 1..=100).
    fn from_str(s: &str) -> Result<Quantize> {
        const ALLOWED: &str = "one of none, uint8, jpeg:Q (Q = 1..=100, the JPEG quality)";
        match s {
            "none" => Ok(Quantize::None),
            "uint8" => Ok(Quantize::Uint8),
            j if j.starts_with("jpeg:") => match j[5..].parse::<u8>() {
                Ok(q) if (1..=100).contains(&q) => Ok(Quantize::Jpeg(q)),
                _ => Err(Error::param("quantize", ALLOWED, s)),
            },
            _ => Err(Error::param("quantize", ALLOWED, s)),
        }
    }
}

impl std::fmt::Display for Quantize {
    /// The form [`Quantize::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantize::None => f.write_str("none"),
            Quantize::Uint8 => f.write_str("uint8"),
            Quantize::Jpeg(q) => write!(f, "jpeg:{q}"),
        }
    }
}

impl Serialize for Quantize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::io::json::via_str::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Quantize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Quantize, D::Error> {
        crate::io::json::via_str::deserialize(d)
    }
}

impl Quantize {
    /// Whether frames stay exact ([`Quantize::None`]).
    pub fn is_none(&self) -> bool {
        *self == Quantize::None
    }

    /// Stores and reads back every frame of `frames` (`[n, C, H, W]` normalized with
    /// `pre`, `C` = 1 or 3) as this says, in place.
    pub fn apply(&self, frames: &mut [f32], c: usize, h: usize, w: usize, pre: &Preprocess) -> Result<()> {
        if *self == Quantize::None {
            return Ok(());
        }
        let hw = h * w;
        let mut bytes = vec![0u8; hw * c];
        for frame in frames.chunks_exact_mut(c * hw) {
            // Pixel units, clipped and rounded, interleaved (HWC) as image files hold them.
            for ch in 0..c {
                for p in 0..hw {
                    let v = frame[ch * hw + p] * pre.std[ch] + pre.mean[ch];
                    bytes[p * c + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            if let Quantize::Jpeg(q) = self {
                bytes = jpeg_round_trip(&bytes, c, h, w, *q)?;
            }
            for ch in 0..c {
                for p in 0..hw {
                    frame[ch * hw + p] = (bytes[p * c + ch] as f32 / 255.0 - pre.mean[ch]) / pre.std[ch];
                }
            }
        }
        Ok(())
    }
}

/// `bytes` (`[H, W, C]`, C = 1 or 3) encoded as a JPEG of quality `q` and decoded.
fn jpeg_round_trip(bytes: &[u8], c: usize, h: usize, w: usize, q: u8) -> Result<Vec<u8>> {
    use image::{codecs::jpeg::JpegEncoder, ExtendedColorType, ImageEncoder};
    let colour = if c == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    let mut buf = Vec::new();
    let fail = |e: image::ImageError| Error::Model(format!("JPEG quantization of a {w}x{h} frame failed: {e}"));
    JpegEncoder::new_with_quality(&mut buf, q).write_image(bytes, w as u32, h as u32, colour).map_err(fail)?;
    let img = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg).map_err(fail)?;
    Ok(if c == 1 { img.into_luma8().into_raw() } else { img.into_rgb8().into_raw() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre() -> Preprocess {
        Preprocess { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], ..Preprocess::default() }
    }

    #[test]
    fn uint8_frames_hold_the_nearest_of_256_levels_and_clip_to_the_pixel_range() {
        let p = pre();
        // Pixel values 0.21, 0.50196 (= 128/255 + 1e-6), 1.2 (clipped), in normalized units.
        let px = [0.21f32, 128.0 / 255.0 + 1e-6, 1.2];
        let mut f: Vec<f32> = px.iter().map(|v| (v - p.mean[0]) / p.std[0]).collect();
        Quantize::Uint8.apply(&mut f, 1, 1, 3, &p).unwrap();
        let back: Vec<f32> = f.iter().map(|v| v * p.std[0] + p.mean[0]).collect();
        for (b, want) in back.iter().zip([54.0 / 255.0, 128.0 / 255.0, 1.0]) {
            assert!((b - want).abs() < 1e-6, "{back:?}");
        }
    }

    #[test]
    fn jpeg_frames_differ_from_uint8_ones_by_compression_and_less_at_higher_quality() {
        // A 16 x 16 colour frame with structure: JPEG moves it, quality 95 less than 30.
        let (c, h, w) = (3, 16, 16);
        let p = pre();
        let frame: Vec<f32> = (0..c * h * w).map(|i| (((i * 37) % 101) as f32 / 100.0 - 0.5) * 1.5).collect();
        let err = |q: Quantize| {
            let mut a = frame.clone();
            q.apply(&mut a, c, h, w, &p).unwrap();
            let mut u = frame.clone();
            Quantize::Uint8.apply(&mut u, c, h, w, &p).unwrap();
            a.iter().zip(&u).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
        };
        let (lo, hi) = (err(Quantize::Jpeg(30)), err(Quantize::Jpeg(95)));
        assert!(hi > 0.0 && lo > hi, "quality 30: {lo}, 95: {hi}");
        let mut none = frame.clone();
        Quantize::None.apply(&mut none, c, h, w, &p).unwrap();
        assert_eq!(none, frame);
    }

    #[test]
    fn quantize_parses_its_forms_and_names_the_parameter() {
        for s in ["none", "uint8", "jpeg:75"] {
            assert_eq!(s.parse::<Quantize>().unwrap().to_string(), s);
        }
        for bad in ["jpeg:0", "jpeg:101", "png", "jpeg:"] {
            let e = bad.parse::<Quantize>().unwrap_err().to_string();
            assert!(e.contains("quantize") && e.contains(bad), "{e}");
        }
    }
}
