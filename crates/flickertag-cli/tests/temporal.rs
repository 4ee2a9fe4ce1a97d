//! Models with time (`tests/zoo/temporal/`, made by `scripts/make-temporal-models.py`):
//! a 3-D convolutional clip model and a trained recurrent convolutional network, each
//! exported by both PyTorch exporters. The oracle is PyTorch: forward hooks on the same
//! stimulus run as a sliding periodic window of clips, or frame by frame with the state
//! fed back after the same warm-up. flickertag must find the modules by their
//! `named_modules()` paths, run them as models with time, never fold, and agree with
//! the hooks to 1e-4 of each channel's largest amplitude (as the zoo).

mod common;

use std::path::{Path, PathBuf};

use common::{flickertag, read_npy, run};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zoo/temporal")
}

fn index() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("temporal.json")).unwrap()).unwrap()
}

/// Runs `analyze` on `file` with the zoo's image and `extra` flags; returns the run folder.
fn analyze(file: &Path, checks: &[&str], extra: &[&str]) -> (tempfile::TempDir, i32, String) {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = flickertag();
    let image = dir().join("../image.png");
    cmd.args(["analyze", "--model", file.to_str().unwrap(), "--image-file", image.to_str().unwrap()]);
    cmd.args(["--no-stats", "--quiet", "--force", "--out", out.path().to_str().unwrap()]);
    for c in checks {
        cmd.args(["--tap", c]);
    }
    cmd.args(extra);
    let (code, _, err) = run(&mut cmd);
    (out, code, err)
}

/// Compares the run in `out` with the oracle of `name`, channel by channel.
fn compare(name: &str, exporter: &str, out: &Path, entry: &Value, tol: f64) {
    let checks: Vec<&str> = entry["checks"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let (shape, got) = read_npy(&out.join("spectra_mean.npy"));
    let (eshape, want) = read_npy(&dir().join(format!("{name}.npy")));
    let nb = shape[1];
    assert_eq!(nb, eshape[1]);
    let mut row = 0;
    for c in &checks {
        let off = &entry["spectra"][c];
        let (start, n) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        let tap_max = want[start * nb..(start + n) * nb].iter().fold(0f64, |m, v| m.max(v.abs()));
        for ch in 0..n {
            let e = &want[(start + ch) * nb..(start + ch + 1) * nb];
            let g = &got[(row + ch) * nb..(row + ch + 1) * nb];
            let scale = e.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3 * tap_max).max(1e-2);
            for k in 0..nb {
                assert!(
                    (g[k] - e[k]).abs() <= tol * scale,
                    "{name}.{exporter} {c} channel {ch} bin {k}: flickertag {} vs PyTorch {}",
                    g[k],
                    e[k]
                );
            }
        }
        row += n;
    }
    assert_eq!(row, shape[0], "{name}.{exporter}: every recorded channel compared");
}

fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn clip_and_recurrent_models_agree_with_pytorch_run_in_time() {
    let index = index();
    for name in ["clip3d", "recurrent"] {
        let entry = &index[name];
        let checks: Vec<&str> = entry["checks"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for exporter in ["legacy", "dynamo"] {
            let file = dir().join(entry["files"][exporter].as_str().unwrap());
            let warmup = entry["warmup"].as_u64().map(|w| w.to_string());
            let extra: Vec<&str> = warmup.iter().flat_map(|w| ["--warmup", w.as_str()]).collect();
            let (out, code, err) = analyze(&file, &checks, &extra);
            assert_eq!(code, 0, "{name}.{exporter}: {err}");
            let s = summary(out.path());
            let kind = if name == "clip3d" { "clip" } else { "recurrent" };
            assert_eq!(s["model"]["time"]["kind"], kind, "{name}.{exporter}: {}", s["model"]);
            // Frames interact: nothing is folded or reused.
            assert_eq!(s["inference"]["frames_per_image"], 240, "{name}.{exporter}: {}", s["inference"]);
            compare(name, exporter, out.path(), entry, 1e-4);
        }
    }
}

#[test]
fn a_recurrent_model_settles_by_itself_to_the_warmed_up_steady_state() {
    // Without --warmup the window repeats until the state's change over a window is
    // at most 1e-4 of it: the spectra are those after the oracle's 1,200-frame warm-up
    // to that precision.
    let index = index();
    let entry = &index["recurrent"];
    assert!(entry["state_change_after_warmup"].as_f64().unwrap() < 1e-5, "the oracle's own state settled");
    let checks: Vec<&str> = entry["checks"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let (out, code, err) = analyze(&dir().join("recurrent.legacy.onnx"), &checks, &[]);
    assert_eq!(code, 0, "{err}");
    compare("recurrent", "legacy", out.path(), entry, 1e-3);
}

#[test]
fn a_warmup_for_a_model_without_state_is_refused_naming_it() {
    let (_, code, err) = analyze(&dir().join("clip3d.legacy.onnx"), &["conv2"], &["--warmup", "10"]);
    assert_ne!(code, 0);
    assert!(err.contains("warmup") && err.contains("recurrent state"), "{err}");
}

#[test]
fn commands_that_run_images_alone_refuse_a_model_with_time() {
    let file = dir().join("recurrent.legacy.onnx");
    let mut cmd = flickertag();
    cmd.args(["analyze", "--model", file.to_str().unwrap(), "--image-file"]);
    cmd.arg(dir().join("../image.png")).args(["--control", "permuted", "--quiet", "--no-stats"]);
    let out = tempfile::tempdir().unwrap();
    cmd.args(["--force", "--out", out.path().to_str().unwrap()]);
    let (code, _, err) = run(&mut cmd);
    assert_ne!(code, 0);
    assert!(err.contains("model with time") && err.contains("recurrent"), "{err}");
}
