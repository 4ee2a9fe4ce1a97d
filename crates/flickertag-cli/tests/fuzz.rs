//! Mutation fuzzing of every reader on stable Rust: the pickle machine, the checkpoint
//! loader (legacy, zip, safetensors), ONNX import, the CIFAR-10 batch check, images and
//! masks, and the `summary.json` reader. Seeds are valid inputs built here; each
//! iteration applies a few seeded mutations (bit flips, interesting bytes, inserted,
//! deleted or duplicated spans, truncation) and feeds the result to the reader, which
//! must return (Ok or an error) without panicking. A panic writes the input to
//! `target/fuzz-failures/` and fails the test.
//!
//! `cargo test --release --test fuzz` runs 3,000 inputs per reader (30 for the 30 MB
//! CIFAR-10 batches; seconds in all). The long
//! offline run sets `FLICKERTAG_FUZZ_ITERS` (e.g. 10000000) and prints, per reader, the
//! inputs tried, how many were accepted or refused, and the slowest input: see the
//! reliability table (docs/reliability.md).

mod common;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use flickertag::data::Image;
use flickertag::model::{checkpoint_from_bytes, Model};
use flickertag::report::Summary;

/// A small, fast, seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'(', b'.', b'q', 0x8a, 0x95];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = v.len();
        match rng.below(7) {
            0 if n > 0 => {
                let i = rng.below(n);
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if n > 0 => {
                // A little-endian length or index field overwritten with a large value.
                let i = rng.below(n);
                let big = [0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff];
                for (k, b) in big.iter().enumerate().take(rng.below(8) + 1) {
                    if i + k < n {
                        v[i + k] = *b;
                    }
                }
            }
            3 => {
                let i = rng.below(n + 1);
                let len = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let len = 1 + rng.below(64.min(n - i));
                v.drain(i..i + len);
            }
            5 if n > 0 => {
                // A span duplicated (repeated opcodes, nested structures).
                let i = rng.below(n);
                let len = 1 + rng.below(32.min(n - i));
                let span = v[i..i + len].to_vec();
                let at = rng.below(n + 1);
                for _ in 0..1 + rng.below(8) {
                    v.splice(at..at, span.iter().copied());
                }
            }
            _ if n > 0 => v.truncate(rng.below(n)),
            _ => {}
        }
    }
    v
}

/// What one reader did over a run.
struct Stats {
    tried: u64,
    accepted: u64,
    slowest_us: u128,
}

fn fuzz(name: &str, seeds: &[Vec<u8>], reader: &dyn Fn(&[u8]) -> bool) -> Stats {
    fuzz_scaled(name, seeds, 1, reader)
}

/// As [`fuzz`], with `1/divisor` of the inputs (for readers whose inputs are large).
fn fuzz_scaled(name: &str, seeds: &[Vec<u8>], divisor: u64, reader: &dyn Fn(&[u8]) -> bool) -> Stats {
    let iters: u64 =
        (std::env::var("FLICKERTAG_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000) / divisor).max(30);
    let mut rng = Rng(0x0F4E_E7A6 ^ name.len() as u64);
    let mut st = Stats { tried: 0, accepted: 0, slowest_us: 0 };
    // The seeds themselves must be accepted: the fuzzer starts from valid inputs.
    for s in seeds {
        assert!(reader(s), "{name}: a seed is refused");
    }
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..iters {
        let input = mutate(&seeds[rng.below(seeds.len())], &mut rng);
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| reader(&input)));
        st.slowest_us = st.slowest_us.max(t.elapsed().as_micros());
        st.tried += 1;
        match r {
            Ok(ok) => st.accepted += ok as u64,
            Err(_) => {
                let _ = std::panic::take_hook();
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
                std::fs::create_dir_all(&dir).unwrap();
                let p = dir.join(format!("{name}-{}.bin", st.tried));
                std::fs::File::create(&p).unwrap().write_all(&input).unwrap();
                panic!("{name}: the reader panicked on input {} (saved to {})", st.tried, p.display());
            }
        }
    }
    let _ = std::panic::take_hook();
    eprintln!(
        "fuzz {name}: {} inputs, {} accepted, {} refused with an error, 0 panics; slowest {} us",
        st.tried,
        st.accepted,
        st.tried - st.accepted,
        st.slowest_us
    );
    st
}

/// A legacy checkpoint `{"w": tensor [2, 2]}` over a 4-element float storage.
fn legacy_seed() -> Vec<u8> {
    common::one_view(b"K\x02K\x02\x86", b"K\x02K\x01\x86", [1.0, 2.0, 3.0, 4.0])
}

/// The same state dict as a zip checkpoint (data.pkl plus one storage file).
fn zip_seed() -> Vec<u8> {
    let legacy = legacy_seed();
    let start = legacy.windows(3).position(|w| w == b"\x80\x02}").unwrap(); // sys_info
    let obj_start = start + legacy[start..].iter().position(|&b| b == b'.').unwrap() + 1;
    let obj_end = obj_start + legacy[obj_start..].windows(3).position(|w| w == b"s.\x80").unwrap() + 2;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", o).unwrap();
        z.write_all(&legacy[obj_start..obj_end]).unwrap();
        z.start_file("archive/data/0", o).unwrap();
        z.write_all(&legacy[legacy.len() - 16..]).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

fn safetensors_seed() -> Vec<u8> {
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data).unwrap();
    safetensors::serialize([("w".to_string(), view)], None).unwrap()
}

/// A one-conv ONNX model, input [N, 3, 4, 4], built with the protobuf crates.
fn onnx_seed() -> Vec<u8> {
    common::onnx(
        &[0, 3, 4, 4],
        vec![common::node("Conv", "/conv/Conv", &["input", "w"], "output")],
        &[("w", &[2, 3, 1, 1], 0.5)],
    )
}

fn image_seeds() -> Vec<Vec<u8>> {
    let img = flickertag::data::synthetic_image(5, 8, 8).to_rgb8();
    [image::ImageFormat::Png, image::ImageFormat::Jpeg, image::ImageFormat::Gif]
        .iter()
        .map(|&f| {
            let mut c = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(img.clone()).write_to(&mut c, f).unwrap();
            c.into_inner()
        })
        .collect()
}

#[test]
fn fuzz_pickle_machine() {
    let seeds = vec![
        legacy_seed(),
        b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(K\x02M,\x01eu.".to_vec(),
        b"\x80\x02]q\x00h\x00a.".to_vec(),
    ];
    fuzz("pickle", &seeds, &|b| flickertag::model::pickle::load(b, 0).is_ok());
}

#[test]
fn fuzz_legacy_checkpoints() {
    fuzz("legacy", &[legacy_seed()], &|b| checkpoint_from_bytes(b, Path::new("f.th")).is_ok());
}

#[test]
fn fuzz_zip_checkpoints() {
    fuzz("zip", &[zip_seed()], &|b| checkpoint_from_bytes(b, Path::new("f.pth")).is_ok());
}

#[test]
fn fuzz_safetensors() {
    fuzz("safetensors", &[safetensors_seed()], &|b| checkpoint_from_bytes(b, Path::new("f.safetensors")).is_ok());
}

#[test]
fn fuzz_onnx_import() {
    fuzz("onnx", &[onnx_seed()], &|b| Model::from_onnx_bytes(b, Path::new("f.onnx"), "f").is_ok());
}

#[test]
fn fuzz_cifar_batches() {
    // The reader checks a whole batch's length and labels; the seed is a valid batch
    // of 10,000 records and the mutations change its length and bytes.
    let mut batch = vec![0u8; 10_000 * 3073];
    for i in 0..10_000 {
        batch[i * 3073] = (i % 10) as u8;
    }
    // A batch is 30 MB and its check a length test and a label scan: a thousandth of
    // the inputs.
    fuzz_scaled("cifar", &[batch], 1000, &|b| flickertag::data::check_batch(b, Path::new("b.bin")).is_ok());
}

#[test]
fn fuzz_images_and_masks() {
    fuzz("image", &image_seeds(), &|b| match Image::from_bytes(b, Path::new("i")) {
        Ok(img) => {
            // The same decoded bytes as a mask of regions by grey level.
            let _ = flickertag::stimulus::mask_regions(&img, img.height, img.width);
            true
        }
        Err(_) => false,
    });
}

/// A small but complete summary (one tap, one filter, two lines), so that each input
/// parses in microseconds; the run-folder tests read real ones.
fn summary_seed() -> Vec<u8> {
    let snr = serde_json::to_value(flickertag::snr::SnrConfig::preset("authors").unwrap()).unwrap();
    serde_json::json!({
        "schema": 1, "flickertag_version": "0", "model": {"name": "m", "source": "m.onnx", "input_shape": [3, 2, 2],
        "preprocess": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}},
        "stimulus": {"config": {"layout": "halves", "freqs": [6.0, 7.5], "phases": [], "fps": 120.0, "n_frames": 240,
          "lo": 0.5, "hi": 1.0, "domain": "normalized", "allow_leakage": false,
          "modulation": "all", "depth": 1.0}, "bins": [12, 15], "period": 80,
          "region_names": ["left", "right"]},
        "inference": {"path": {"path": "folded", "period": 80, "distinct": 49}, "frames_per_image": 49, "description": "folded"},
        "snr": snr, "threshold": 1.5,
        "images": [{"name": "test[3]", "index": 3, "label": 3, "class": "cat"}],
        "lines": [{"bin": 12, "freq": 6.0, "coefs": [1, 0], "order": 1, "kind": "fundamental", "label": "f1"},
                  {"bin": 3, "freq": 1.5, "coefs": [-1, 1], "order": 2, "kind": "intermod", "label": "f2-f1"}],
        "taps": [{"name": "c", "tensor": "c", "kind": "conv", "conv_ordinal": 1, "layout": {"type": "channels_first"},
            "dims": [1, 2, 2], "chw": [1, 2, 2], "shape": [1, 2, 2]}],
        "layers": [{"tap": "c", "conv_ordinal": 1, "n_filters": 1, "n_important": 1, "important": [0], "mean_score": 2.0,
          "filters": [{"channel": 0, "mean_score": 2.0, "sd_score": 0.0, "pass_fraction": 1.0, "important": true}]}],
        "stats": null, "maps": [], "seconds": 0.1, "segments": []
    })
    .to_string()
    .into_bytes()
}

#[test]
fn fuzz_summary_reader() {
    fuzz("summary", &[summary_seed()], &|b| Summary::from_slice(b, Path::new("summary.json")).is_ok());
}

/// The coverage-guided targets of `fuzz/` (cargo-fuzz), each with the library entry it
/// calls (the same function the target's `fuzz_target!` calls).
type Reader = fn(&[u8]) -> bool;

fn targets() -> Vec<(&'static str, Reader)> {
    use flickertag::fuzzing as f;
    vec![
        ("onnx", f::onnx),
        ("pickle", f::pickle),
        ("checkpoint_legacy", |b| f::checkpoint(b, "f.th")),
        ("checkpoint_zip", |b| f::checkpoint(b, "f.pth")),
        ("safetensors", |b| f::checkpoint(b, "f.safetensors")),
        ("image", f::image),
        ("cifar", f::cifar),
        ("npy", f::npy),
        ("partial_json", f::partial_json),
        ("summary_json", f::summary_json),
        ("prune_checkpoint", f::prune_checkpoint),
        ("report_escaping", f::report_escaping),
    ]
}

/// Seeds of the cargo-fuzz corpora: valid inputs of each reader, and the nested
/// shapes that once crashed or hung a reader (structure the mutator would take long
/// to find).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let nested = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n)).into_bytes();
    match target {
        "onnx" => {
            // A model, and groups nested a thousand deep (RUSTSEC-2024-0437's shape).
            vec![onnx_seed(), vec![0x0b; 1000]] // 0x0b: field 1, start group
        }
        "pickle" => vec![legacy_seed(), b"\x80\x02]q\x00h\x00a.".to_vec(), b"\x80\x02]]a]a]a.".to_vec()],
        "checkpoint_legacy" => vec![legacy_seed()],
        "checkpoint_zip" => vec![zip_seed()],
        "safetensors" => vec![safetensors_seed()],
        "image" => image_seeds(),
        "cifar" => vec![vec![0u8; 3073 * 3]],
        "npy" => {
            let header = |h: &str| {
                let mut b = b"\x93NUMPY\x01\x00".to_vec();
                b.extend_from_slice(&(h.len() as u16).to_le_bytes());
                b.extend_from_slice(h.as_bytes());
                b
            };
            let mut ok = header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n");
            ok.extend_from_slice(&[0u8; 16]);
            vec![ok, header(&format!("{}\n", String::from_utf8(nested("{", "}", 16)).unwrap()))]
        }
        "partial_json" => {
            // A real one: shard 0/2 of the embedded default with its first tap only.
            let d = tempfile::tempdir().unwrap();
            let out = d.path().join("p");
            let (code, _, err) = common::run(
                common::flickertag()
                    .args(["analyze", "--quiet", "--tap", "#1", "--no-per-image", "--shard", "0/2", "--out"])
                    .arg(&out)
                    .env_remove("FLICKERTAG_DATA")
                    .env("HOME", d.path())
                    .env("XDG_CACHE_HOME", d.path()),
            );
            assert_eq!(code, 0, "{err}");
            vec![std::fs::read(out.join("partial.json")).unwrap(), nested("[", "]", 200)]
        }
        "summary_json" => vec![summary_seed(), nested("{\"a\":", "}", 200)],
        "prune_checkpoint" => vec![flickertag::fuzzing::prune_checkpoint_seed()],
        "report_escaping" => vec![b"layer1.0.conv1".to_vec(), b"x\" onerror=\"alert(1)\" <script>&".to_vec()],
        _ => unreachable!("{target}"),
    }
}

/// Every committed input of the coverage-guided fuzzing, replayed on stable Rust: the
/// seeds above, the corpora (`fuzz/corpus/<target>.zip`, what `scripts/fuzz.sh` found
/// and minimized) and every input that once crashed, hung or blew up a reader
/// (`fuzz/regressions/<target>/`). Each must come back without a panic, in under 10 s.
/// With `FLICKERTAG_WRITE_FUZZ_SEEDS=1` the seeds are also written into
/// `fuzz/work/<target>/`, where `scripts/fuzz.sh` starts from them.
#[test]
fn committed_fuzz_corpora_and_regressions_replay_without_a_panic() {
    use std::io::Read as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, read) in targets() {
        let seeds = seeds(target);
        if std::env::var("FLICKERTAG_WRITE_FUZZ_SEEDS").is_ok_and(|v| v == "1") {
            let dir = root.join("work").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
            }
        }
        // The first seed is a valid input (so the fuzzer starts deep inside the reader),
        // but for CIFAR-10, whose valid batch is 30 MB.
        assert!(target == "cifar" || read(&seeds[0]), "the first seed of {target} is refused");
        let mut inputs: Vec<(String, Vec<u8>)> =
            seeds.into_iter().enumerate().map(|(i, s)| (format!("seed {i}"), s)).collect();
        let zip = root.join("corpus").join(format!("{target}.zip"));
        let mut z =
            zip::ZipArchive::new(std::fs::File::open(&zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display())))
                .unwrap();
        assert!(!z.is_empty(), "{} is empty", zip.display());
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            inputs.push((format!("{}:{}", zip.display(), f.name()), data));
        }
        if let Ok(dir) = std::fs::read_dir(root.join("regressions").join(target)) {
            for e in dir {
                let p = e.unwrap().path();
                inputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
        for (name, data) in &inputs {
            let t = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| read(data)));
            assert!(r.is_ok(), "{target}: {name} panicked");
            assert!(t.elapsed().as_secs() < 10, "{target}: {name} took {:?}", t.elapsed());
        }
        replayed += inputs.len();
    }
    println!("replayed {replayed} committed fuzz inputs");
}
