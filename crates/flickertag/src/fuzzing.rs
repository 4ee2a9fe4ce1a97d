//! Byte-level entry points into the readers of untrusted input, for the coverage-guided
//! fuzz targets (`fuzz/`, cargo-fuzz) and the replay of their corpora in `make test`
//! (`crates/flickertag-cli/tests/fuzz.rs`). Not API: each returns whether the input was
//! accepted, and must never panic, hang or allocate beyond the reader's stated bound.

use std::path::Path;

/// ONNX bytes through the protobuf reader (nesting bounded at 100).
pub fn onnx(data: &[u8]) -> bool {
    onnx_protobuf::parse_model(data).is_ok()
}

/// A checkpoint by its file name's extension (`f.th` legacy, `f.pth` zip,
/// `f.safetensors`), read into a state dict.
pub fn checkpoint(data: &[u8], name: &str) -> bool {
    crate::model::checkpoint_from_bytes(data, Path::new(name)).is_ok()
}

/// The pickle machine alone.
pub fn pickle(data: &[u8]) -> bool {
    crate::model::pickle::load(data, 0).is_ok()
}

/// A PNG, JPEG or GIF image, then the same image as a mask of regions.
pub fn image(data: &[u8]) -> bool {
    match crate::data::Image::from_bytes(data, Path::new("i")) {
        Ok(img) => {
            let _ = crate::stimulus::mask_regions(&img, img.height, img.width);
            true
        }
        Err(_) => false,
    }
}

/// A CIFAR-10 batch's check (length and labels).
pub fn cifar(data: &[u8]) -> bool {
    crate::data::check_batch(data, Path::new("b.bin")).is_ok()
}

/// An NPY file of any shape its data fills, as float64.
pub fn npy(data: &[u8]) -> bool {
    crate::io::npy::from_bytes::<f64>(data, Path::new("a.npy"), None).is_ok()
}

/// A partial run's `partial.json` (schema and context checked).
pub fn partial_json(data: &[u8]) -> bool {
    crate::run::shard::parse_info(data, Path::new("partial.json")).is_ok()
}

/// A run folder's `summary.json`.
pub fn summary_json(data: &[u8]) -> bool {
    crate::report::Summary::from_slice(data, Path::new("summary.json")).is_ok()
}

/// A `prune-eval` checkpoint (envelope, checksum, payload).
#[cfg(feature = "report")]
pub fn prune_checkpoint(data: &[u8]) -> bool {
    crate::run::prune::PruneCheckpoint::from_file(data).is_ok()
}

/// The text `report.html` writes for a tap name or figure path: the escaped text and
/// the linked URL may hold no markup character (a panic says which leaked).
#[cfg(feature = "report")]
pub fn report_escaping(data: &[u8]) -> bool {
    let s = String::from_utf8_lossy(data);
    let (text, url) = crate::report::html::escaped(&s);
    assert!(!text.contains(['<', '>', '"']), "markup in escaped text {text:?}");
    assert!(!url.contains(['<', '>', '"', '\'', ' ', '&']), "markup in a link {url:?}");
    true
}

/// A valid `prune-eval` checkpoint (two ablations of a two-layer network, 70 images):
/// the fuzz target's seed.
#[cfg(feature = "report")]
pub fn prune_checkpoint_seed() -> Vec<u8> {
    use crate::prune::bootstrap::Hits;
    use crate::prune::curves::Measurement;
    use crate::prune::Ablation;
    let model = crate::model::ModelInfo {
        name: "m".into(),
        source: "m.th".into(),
        sha256: "0".repeat(64),
        input_shape: [3, 32, 32],
        preprocess: crate::data::Preprocess::default(),
        notes: vec![],
        time: None,
    };
    let flags: Vec<bool> = (0..70).map(|i| i % 3 != 0).collect();
    let m = |top1: f64| Measurement { top1, per_class: vec![50.0; 10], hits: Hits::from_flags(&flags) };
    let c = crate::run::prune::PruneCheckpoint {
        fingerprint: "f".repeat(64),
        model,
        measured: vec![
            ((Ablation::Zero, vec![vec![], vec![1, 3]]), m(66.0)),
            ((Ablation::Mean, vec![vec![0], vec![]]), m(60.0)),
        ],
        segment_seconds: vec![1.5],
    };
    c.to_file()
}
