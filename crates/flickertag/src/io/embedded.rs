//! The embedded default: the pretrained ResNet-32 of the paper and its ten test images,
//! compiled into flickertag so that the paper's experiment runs on a machine with no data
//! folder (`flickertag demo`, `flickertag analyze --model resnet32`, and
//! `flickertag.analyze("resnet32")` in Python).
//!
//! - [`RESNET32_TH`]: `resnet32-cifar10.th` of akamaster/pytorch_resnet_cifar10,
//!   BSD-2-Clause, byte for byte (1.9 MB; 92.63 % on the CIFAR-10 test set).
//! - [`PAPER_IMAGES`]: the first CIFAR-10 test image of each class, in class order
//!   (test indices [`PAPER_INDICES`]), as ten CIFAR-10 binary records.
//!
//! Licences and attribution: [`NOTICE`] (`assets/NOTICE.md`). The files are made by
//! `scripts/make-default-assets.py`, which checks their published SHA-256. A data
//! folder that holds the same files takes precedence; the two give identical runs.

use crate::io::data::{Image, RECORD};

/// The pretrained name that is embedded.
pub const RESNET32_NAME: &str = "resnet32";
/// `resnet32-cifar10.th` (legacy PyTorch serialization), as published.
pub static RESNET32_TH: &[u8] = include_bytes!("../../assets/resnet32-cifar10.th");
/// Ten CIFAR-10 binary records (label byte, then R, G, B planes of 32 x 32).
pub static PAPER_IMAGES: &[u8] = include_bytes!("../../assets/paper_images.bin");
/// CIFAR-10 test indices of [`PAPER_IMAGES`]: the first test image of each class.
pub const PAPER_INDICES: [usize; 10] = [3, 6, 25, 0, 22, 12, 4, 13, 1, 11];
/// Licence notices and attribution of the embedded files.
pub const NOTICE: &str = include_str!("../../assets/NOTICE.md");
/// What `Model::source` says for the embedded ResNet-32
/// ([`crate::inference::model::Model::embedded_resnet32`]).
pub const RESNET32_SOURCE: &str = "embedded:resnet32-cifar10.th";

/// The paper's ten test images with their labels, in class order (`[3, 32, 32]` each).
pub fn paper_images() -> Vec<Image> {
    PAPER_IMAGES
        .chunks_exact(RECORD)
        .map(|r| Image {
            height: 32,
            width: 32,
            pixels: r[1..].iter().map(|&b| b as f32 / 255.0).collect(),
            label: Some(r[0]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_images_are_one_per_class_in_class_order() {
        let imgs = paper_images();
        assert_eq!(imgs.len(), 10);
        for (c, img) in imgs.iter().enumerate() {
            assert_eq!(img.label, Some(c as u8));
            assert_eq!(img.pixels.len(), 3 * 32 * 32);
        }
    }

    #[test]
    fn embedded_resnet32_builds_with_its_31_convolutions() {
        let m = crate::inference::model::Model::embedded_resnet32().unwrap();
        assert_eq!(m.name, "resnet32");
        assert_eq!(m.input_shape, [3, 32, 32]);
        let convs = m.taps.iter().filter(|t| t.conv_ordinal.is_some()).count();
        assert_eq!(convs, 31);
    }
}
