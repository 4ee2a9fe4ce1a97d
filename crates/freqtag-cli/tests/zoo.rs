//! The model zoo (`tests/zoo/`, made by `scripts/make-model-zoo.py` with torch, timm and
//! torchvision): networks of the families users bring, exported by both PyTorch
//! exporters. The oracle is PyTorch itself: `named_modules()` names and the amplitude
//! spectra of the per-channel means that forward hooks recorded on the same stimulus.
//! freqtag must find each checked module by its `named_modules()` path and agree with
//! the hooks to 1e-4 of each channel's largest amplitude (at least 1e-3 of its layer's
//! and 1e-2, i.e. 1e-6 absolute for O(1) inputs: below that, float32 rounding in the layers before dominates).

mod common;

use std::path::{Path, PathBuf};

use common::{freqtag, run};
use serde_json::Value;

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zoo")
}

/// Reads a little-endian float32 or float64 C-order NPY file: (shape, values).
fn read_npy(p: &Path) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let f64s = header.contains("'<f8'");
    assert!(f64s || header.contains("'<f4'"), "{header}");
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_txt.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    let body = &b[start + hlen..];
    let data = if f64s {
        body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
    } else {
        body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    };
    (shape, data)
}

fn taps_of(model: &Path) -> Value {
    let (code, out, err) = run(freqtag().args(["taps", "--json", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{}: {err}", model.display());
    serde_json::from_str(&out).unwrap()
}

fn has_tap(taps: &Value, name: &str) -> bool {
    taps["taps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == name || t["aliases"].as_array().is_some_and(|a| a.iter().any(|x| x == name)))
}

/// Checks one exported file against its PyTorch oracle; returns the taps compared.
fn check_file(name: &str, exporter: &str, entry: &Value) -> usize {
    let dir = zoo();
    let file = dir.join(entry["files"][exporter].as_str().unwrap());
    let taps = taps_of(&file);
    let bn_of = &entry["bn_of"];
    let foldable: Vec<&str> = entry["foldable_bns"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // (tap name to request, oracle module)
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in entry["checks"].as_array().unwrap() {
        let c = c.as_str().unwrap();
        let bn = bn_of[c].as_str();
        if has_tap(&taps, c) {
            // A conv whose BatchNorm is no tap had it folded in: it outputs the BatchNorm's values.
            let oracle = match bn {
                Some(bn) if !has_tap(&taps, bn) => bn,
                _ => c,
            };
            pairs.push((c.to_string(), oracle.to_string()));
        } else if let Some(bn) = bn.filter(|bn| has_tap(&taps, bn)) {
            // The dynamo exporter names a folded conv after its BatchNorm.
            pairs.push((bn.to_string(), bn.to_string()));
        } else if !foldable.contains(&c) {
            // (The legacy exporter names a folded BatchNorm after its conv.)
            panic!("{name}.{exporter}: module {c} is not a tap; taps: {}", taps["taps"]);
        }
    }
    // A tap asked for twice (a folded conv and its BatchNorm) is recorded once.
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|(t, _)| seen.insert(t.clone()));
    let out = tempfile::tempdir().unwrap();
    let mut cmd = freqtag();
    cmd.args(["analyze", "--model", file.to_str().unwrap(), "--image-file", dir.join("image.png").to_str().unwrap()]);
    cmd.args(["--no-stats", "--quiet", "--force", "--out", out.path().to_str().unwrap()]);
    for (t, _) in &pairs {
        cmd.args(["--tap", t]);
    }
    let (code, _, err) = run(&mut cmd);
    assert_eq!(code, 0, "{name}.{exporter}: {err}");
    let summary: Value = serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let (shape, got) = read_npy(&out.path().join("spectra_mean.npy"));
    let (eshape, want) = read_npy(&dir.join(format!("{name}.npy")));
    let nb = shape[1];
    assert_eq!(nb, eshape[1]);
    let layers = summary["layers"].as_array().unwrap();
    let mut row = 0;
    for (i, (tap, oracle)) in pairs.iter().enumerate() {
        let off = &entry["spectra"][oracle];
        let (start, c) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        assert_eq!(layers[i]["n_filters"].as_u64().unwrap() as usize, c, "{name}.{exporter} {tap}: channels");
        // Float32 rounding upstream is about 1e-7 of the activations' scale, so channels
        // far below their layer's scale are compared to the layer's largest amplitude.
        let tap_max = want[start * nb..(start + c) * nb].iter().fold(0f64, |m, v| m.max(v.abs()));
        for ch in 0..c {
            let e = &want[(start + ch) * nb..(start + ch + 1) * nb];
            let g = &got[(row + ch) * nb..(row + ch + 1) * nb];
            let scale = e.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3 * tap_max).max(1e-2);
            for k in 0..nb {
                assert!(
                    (g[k] - e[k]).abs() <= 1e-4 * scale,
                    "{name}.{exporter} {tap} (oracle {oracle}) channel {ch} bin {k}: freqtag {} vs PyTorch {}",
                    g[k],
                    e[k]
                );
            }
        }
        row += c;
    }
    pairs.len()
}

#[test]
fn zoo_taps_are_named_as_pytorch_modules_and_agree_with_forward_hooks() {
    let index: Value = serde_json::from_slice(&std::fs::read(zoo().join("zoo.json")).unwrap()).unwrap();
    let mut compared = 0;
    for (name, entry) in index.as_object().unwrap() {
        if entry.get("checks").is_none() {
            continue;
        }
        for exporter in ["legacy", "dynamo"] {
            if entry["files"].get(exporter).is_some() {
                compared += check_file(name, exporter, entry);
            }
        }
    }
    assert!(compared >= 100, "only {compared} taps compared");
}

#[test]
fn default_export_with_external_data_and_batch_1_loads_from_any_folder() {
    // torch.onnx.export(m, (x,), "default.onnx"): weights in default.onnx.data, batch 1.
    let model = zoo().join("external/default.onnx");
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(freqtag().current_dir(elsewhere.path()).args(["taps", "--json", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(has_tap(&v, "conv1") && has_tap(&v, "act2") && has_tap(&v, "fc"), "{v}");
    // It records no normalization: analysis stops and says what to pass...
    let img = zoo().join("image.png");
    let (code, _, err) = run(freqtag().current_dir(elsewhere.path()).args([
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--image-file",
        img.to_str().unwrap(),
        "--no-stats",
        "--out",
        "r",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("--mean") && err.contains("--std"), "{err}");
    // ... and runs when told.
    let (code, _, err) = run(freqtag().current_dir(elsewhere.path()).args([
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--image-file",
        img.to_str().unwrap(),
        "--no-stats",
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--out",
        "r",
    ]));
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_slice(&std::fs::read(elsewhere.path().join("r/summary.json")).unwrap()).unwrap();
    assert_eq!(s["model"]["preprocess"]["mean"], serde_json::json!([0.5, 0.5, 0.5]));
    assert_eq!(s["model"]["preprocess"]["grayscale"], true);
}

#[test]
fn missing_external_data_names_the_file_to_keep_beside_the_model() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(zoo().join("external/default.onnx"), d.path().join("m.onnx")).unwrap();
    let (code, _, err) = run(freqtag().args(["taps", d.path().join("m.onnx").to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("does not exist") && err.contains(".data"), "{err}");
}

#[test]
fn glob_patterns_select_module_paths_and_unknown_names_list_close_ones() {
    let model = zoo().join("vit_tiny.dynamo.onnx");
    let out = tempfile::tempdir().unwrap();
    let img = zoo().join("image.png");
    let (code, _, err) = run(freqtag().args([
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--image-file",
        img.to_str().unwrap(),
        "--tap",
        "blocks.*.mlp.fc1",
        "--no-stats",
        "--quiet",
        "--force",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let names: Vec<&str> = s["taps"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]);
    assert_eq!(s["taps"][0]["layout"], serde_json::json!({"type": "tokens", "prefix": 1, "grid": [4, 4]}));
    let (code, _, err) = run(freqtag().args([
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--image-file",
        img.to_str().unwrap(),
        "--tap",
        "blocks.0.mlp.fc3",
        "--out",
        out.path().join("x").to_str().unwrap(),
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("closest") && err.contains("blocks.0.mlp.fc1"), "{err}");
}

#[test]
fn report_html_stays_under_5_mb_with_every_tap_of_a_large_model() {
    // EfficientNet with every tap kind: 82 taps, 7,858 filters; figures past the
    // budget are linked from plots/, tables show each layer's top 64 filters.
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = run(freqtag().args([
        "analyze",
        "--model",
        zoo().join("efficientnet_b0.legacy.onnx").to_str().unwrap(),
        "--image-file",
        zoo().join("image.png").to_str().unwrap(),
        "--taps",
        "all",
        "--no-stats",
        "--quiet",
        "--force",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.len() <= 5_000_000, "report.html is {} bytes", html.len());
    assert!(html.contains("src=\"plots/spectrum_"), "figures past the budget are linked");
    assert!(!out.path().join("stimulus.svg").exists(), "the stimulus is a PNG only");
    let s: Value = serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert!(s["taps"].as_array().unwrap().len() >= 80);
}
