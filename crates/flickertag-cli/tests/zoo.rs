//! The model zoo (`tests/zoo/`, made by `scripts/make-model-zoo.py` with torch, timm and
//! torchvision): networks of the families users bring, exported by both PyTorch
//! exporters. The oracle is PyTorch itself: `named_modules()` names and the amplitude
//! spectra of the per-channel means that forward hooks recorded on the same stimulus.
//! flickertag must find each checked module by its `named_modules()` path and agree with
//! the hooks to 1e-4 of each channel's largest amplitude (at least 1e-3 of its layer's
//! and 1e-2, i.e. 1e-6 absolute for O(1) inputs: below that, float32 rounding in the layers before dominates).

mod common;

use std::path::{Path, PathBuf};

use common::{flickertag, read_npy, run};
use serde_json::Value;

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zoo")
}

fn taps_of(model: &Path) -> Value {
    let (code, out, err) = run(flickertag().args(["taps", "--json", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{}: {err}", model.display());
    serde_json::from_str(&out).unwrap()
}

/// The name of the tap found by `name` (its own or an alias).
fn tap_of(taps: &Value, name: &str) -> Option<String> {
    taps["taps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name || t["aliases"].as_array().is_some_and(|a| a.iter().any(|x| x == name)))
        .map(|t| t["name"].as_str().unwrap().to_string())
}

fn has_tap(taps: &Value, name: &str) -> bool {
    tap_of(taps, name).is_some()
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
    let tap_named = |t: &str| taps["taps"].as_array().unwrap().iter().find(|x| x["name"] == t).unwrap().clone();
    for c in entry["checks"].as_array().unwrap() {
        let c = c.as_str().unwrap();
        let bn = bn_of[c].as_str();
        match (tap_of(&taps, c), bn) {
            // A conv with its BatchNorm folded in: the dynamo exporter's tap is the
            // BatchNorm's (the conv is no tap, with the reason); the legacy exporter's
            // keeps the conv's name. Either holds the BatchNorm's output and says so.
            (None, Some(bn)) => {
                let skipped = taps["skipped"].as_array().unwrap().iter().find(|s| s["name"] == c);
                let reason = skipped.map(|s| s["reason"].as_str().unwrap()).unwrap_or_default();
                assert!(reason.contains(&format!("folded {bn} into it")), "{name}.{exporter}: {c}: {reason:?}");
                let t = tap_of(&taps, bn).unwrap_or_else(|| panic!("{name}.{exporter}: {bn} is not a tap"));
                assert_eq!(t, bn, "{name}.{exporter}");
                assert_eq!(tap_named(&t)["folded"], format!("{c} + {bn}"), "{name}.{exporter}: {c}");
                pairs.push((t, bn.to_string()));
            }
            (Some(t), Some(bn)) => {
                assert_eq!(t, c, "{name}.{exporter}: {c} is found as {t}");
                match tap_of(&taps, bn) {
                    // Not folded: the conv and the BatchNorm are taps of their own.
                    Some(b) if b != t => {
                        assert!(tap_named(&t).get("folded").is_none(), "{name}.{exporter}: {c}");
                        pairs.push((t, c.to_string()));
                    }
                    Some(_) => panic!("{name}.{exporter}: {bn} is an alias of {c}"),
                    None => {
                        let f = tap_named(&t)["folded"].clone();
                        assert_eq!(f, format!("{c} + BatchNorm (unnamed)"), "{name}.{exporter}: {c}");
                        pairs.push((t, bn.to_string()));
                    }
                }
            }
            (Some(t), None) => {
                // No BatchNorm after it: a folding is claimed only by the tap of a
                // BatchNorm (the check is that BatchNorm) or of a block ending in one.
                let tap = tap_named(&t);
                if let (Some(f), true) = (tap["folded"].as_str(), t == c) {
                    assert!(f.ends_with(&format!(" + {c}")), "{name}.{exporter}: {c}: {tap}");
                }
                pairs.push((t, c.to_string()));
            }
            (None, None) if foldable.contains(&c) => {} // a BatchNorm folded away (legacy)
            (None, None) => panic!("{name}.{exporter}: module {c} is not a tap; taps: {}", taps["taps"]),
        }
    }
    // Every conv tap is named as a module of named_modules() (convs are modules), but
    // one holding a folded BatchNorm's values, named by what it computes.
    let modules: Vec<&str> = entry["named_modules"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for t in taps["taps"].as_array().unwrap().iter().filter(|t| t["kind"] == "conv" && t.get("folded").is_none()) {
        let n = t["name"].as_str().unwrap();
        assert!(modules.contains(&n), "{name}.{exporter}: conv tap {n} is not in named_modules()");
    }
    // A tap found twice (a folded conv and its BatchNorm, a block and its last
    // module) is recorded once.
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|(t, _)| seen.insert(t.clone()));
    let out = tempfile::tempdir().unwrap();
    let mut cmd = flickertag();
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
    // 1e-4 of each channel's scale; a float16 model agrees to float16 rounding only,
    // which is at the scale of the whole tap.
    let tol = entry["tolerance"].as_f64().unwrap_or(1e-4);
    let per_tap = entry["tolerance_of"] == "tap";
    let mut row = 0;
    for (i, (tap, oracle)) in pairs.iter().enumerate() {
        let off = &entry["spectra"][oracle];
        let (start, c) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        assert_eq!(layers[i]["n_filters"].as_u64().unwrap() as usize, c, "{name}.{exporter} {tap}: channels");
        // Float32 rounding upstream is about 1e-7 of the activations' scale, so channels
        // far below their layer's scale are compared to the layer's largest amplitude.
        let tap_max = want[start * nb..(start + c) * nb].iter().fold(0f64, |m, v| m.max(v.abs()));
        let tol = entry["tolerance_by_check"][oracle.as_str()].as_f64().unwrap_or(tol);
        for ch in 0..c {
            let e = &want[(start + ch) * nb..(start + ch + 1) * nb];
            let g = &got[(row + ch) * nb..(row + ch + 1) * nb];
            let scale = match per_tap {
                true => tap_max,
                false => e.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3 * tap_max).max(1e-2),
            };
            for k in 0..nb {
                assert!(
                    (g[k] - e[k]).abs() <= tol * scale,
                    "{name}.{exporter} {tap} (oracle {oracle}) channel {ch} bin {k}: flickertag {} vs PyTorch {}",
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
    eprintln!("{compared} taps compared with PyTorch's forward hooks");
    assert!(compared >= 100, "only {compared} taps compared");
}

#[test]
fn default_export_with_external_data_and_batch_1_loads_from_any_folder() {
    // torch.onnx.export(m, (x,), "default.onnx"): weights in default.onnx.data, batch 1.
    let model = zoo().join("external/default.onnx");
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(flickertag().current_dir(elsewhere.path()).args(["taps", "--json", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(has_tap(&v, "conv1") && has_tap(&v, "act2") && has_tap(&v, "fc"), "{v}");
    // It records no normalization: analysis stops and says what to pass...
    let img = zoo().join("image.png");
    let analyze = |extra: &[&str]| {
        let mut cmd = flickertag();
        cmd.current_dir(elsewhere.path()).args(["analyze", "--model", model.to_str().unwrap(), "--image-file"]);
        run(cmd.args([img.to_str().unwrap(), "--no-stats", "--out", "r"]).args(extra))
    };
    let (code, _, err) = analyze(&[]);
    assert_ne!(code, 0);
    assert!(err.contains("--mean") && err.contains("--std"), "{err}");
    // ... and runs when told.
    let (code, _, err) = analyze(&["--mean", "0.5", "--std", "0.25"]);
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_slice(&std::fs::read(elsewhere.path().join("r/summary.json")).unwrap()).unwrap();
    assert_eq!(s["model"]["preprocess"]["mean"], serde_json::json!([0.5, 0.5, 0.5]));
    assert_eq!(s["model"]["preprocess"]["grayscale"], true);
}

#[test]
fn missing_external_data_names_the_file_to_keep_beside_the_model() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(zoo().join("external/default.onnx"), d.path().join("m.onnx")).unwrap();
    let (code, _, err) = run(flickertag().args(["taps", d.path().join("m.onnx").to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("does not exist") && err.contains(".data"), "{err}");
}

#[test]
fn glob_patterns_select_module_paths_and_unknown_names_list_close_ones() {
    let model = zoo().join("vit_tiny.dynamo.onnx");
    let out = tempfile::tempdir().unwrap();
    let img = zoo().join("image.png");
    let (code, _, err) = run(flickertag().args([
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
    let (code, _, err) = run(flickertag().args([
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
    let (code, _, err) = run(flickertag().args([
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

#[test]
fn regression_filters_below_the_snr_floor_are_reported_dead_not_scored_zero() {
    use common::{node, onnx};
    // Two convs: one with weights 1e-12 (its spectrum lies wholly below the 1e-8 floor),
    // one with weights 0.5.
    let nodes = vec![
        node("Conv", "/tiny/Conv", &["input", "wt"], "t"),
        node("Conv", "/big/Conv", &["input", "wb"], "b"),
        node("Add", "/Add", &["t", "b"], "output"),
    ];
    let m = onnx(&[0, 3, 32, 32], nodes, &[("wt", &[2, 3, 3, 3], 1e-12), ("wb", &[2, 3, 3, 3], 0.5)]);
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.onnx");
    std::fs::write(&model, m).unwrap();
    let run_with = |extra: &[&str]| {
        let out = d.path().join(format!("r{}", extra.len()));
        let mut cmd = flickertag();
        cmd.args(["analyze", "--model", model.to_str().unwrap(), "--image-file"]);
        cmd.args([zoo().join("image.png").to_str().unwrap(), "--no-stats", "--out", out.to_str().unwrap()]);
        let (code, _, err) = run(cmd.args(extra));
        assert_eq!(code, 0, "{err}");
        let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        (s, err)
    };
    let (s, err) = run_with(&[]);
    let tiny = &s["layers"][0];
    assert_eq!(tiny["tap"], "tiny");
    assert!(tiny["filters"].as_array().unwrap().iter().all(|f| f["dead"] == true && f["mean_score"].is_null()));
    assert!(s["layers"][1]["filters"].as_array().unwrap().iter().all(|f| f["dead"] == false));
    assert!(err.contains("2 filter(s) dead"), "{err}");
    // With no floor they are measured, and the preset is recorded as changed.
    let (s, _) = run_with(&["--floor", "0"]);
    assert!(s["layers"][0]["filters"].as_array().unwrap().iter().all(|f| f["dead"] == false));
    assert_eq!(s["snr"]["preset"], "custom");
    assert_eq!(s["snr"]["floor"], 0.0);
}

#[test]
fn images_of_another_size_stop_with_the_flag_to_pass_and_run_resized() {
    use common::{node, onnx};
    let m = onnx(
        &[0, 3, 64, 64],
        vec![node("Conv", "/conv/Conv", &["input", "w"], "output")],
        &[("w", &[4, 3, 3, 3], 0.1)],
    );
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m64.onnx");
    std::fs::write(&model, m).unwrap();
    let img = zoo().join("image.png");
    let args = |out: &str| {
        vec![
            "analyze".to_string(),
            "--model".into(),
            model.to_str().unwrap().into(),
            "--image-file".into(),
            img.to_str().unwrap().into(),
            "--no-stats".into(),
            "--out".into(),
            d.path().join(out).to_str().unwrap().into(),
        ]
    };
    let (code, _, err) = run(flickertag().args(args("a")));
    assert_ne!(code, 0);
    assert!(err.contains("32x32") && err.contains("64x64") && err.contains("--resize 64"), "{err}");
    let (code, _, err) = run(flickertag().args(args("b")).args(["--resize", "80", "--crop", "64"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("preprocessing: resize 80, centre crop 64"), "{err}");
    let s: Value = serde_json::from_slice(&std::fs::read(d.path().join("b/summary.json")).unwrap()).unwrap();
    assert_eq!(s["model"]["preprocess"]["resize"], 80);
    assert_eq!(s["model"]["preprocess"]["crop"], 64);
    assert_eq!(s["model"]["input_shape"], serde_json::json!([3, 64, 64]));
}

#[test]
fn mean_and_std_are_checked_before_any_work() {
    let model = zoo().join("gray_cnn.legacy.onnx");
    for (flags, want) in [
        (vec!["--mean", "0.5,0.5", "--std", "0.5"], "1 or 3"),
        (vec!["--mean", "120", "--std", "60"], "[0, 1] pixel units"),
        (vec!["--mean", "0.5"], "--std together with --mean"),
        (vec!["--mean", "0.5", "--std", "0"], "in (0, 1]"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let (code, _, err) = run(flickertag()
            .args(["analyze", "--model", model.to_str().unwrap(), "--image-file"])
            .args([zoo().join("image.png").to_str().unwrap(), "--out", out.path().join("r").to_str().unwrap()])
            .args(&flags));
        assert_ne!(code, 0, "{flags:?}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
}

/// Reads `maps/<tap>.npy` (`[channel, line, h, w]`) of a run with `--maps`.
fn map_of(run: &Path, tap: &str) -> (Vec<usize>, Vec<f64>) {
    read_npy(&run.join("maps").join(format!("{tap}.npy")))
}

#[test]
fn maps_lay_tokens_and_channels_last_tensors_out_on_the_image_grid() {
    // Known answer: before any mixing across the image, a position whose receptive
    // field lies in the left half responds at 6 Hz only, one in the right half at
    // 7.5 Hz only. The ViT's patch tokens (tokens layout, 4 x 4 grid of 8-pixel patches)
    // and ConvNeXt's first MLP on channels-last [N, 8, 8, C] (4-pixel stem, 7 x 7
    // depthwise conv: columns 0 and 7 see one half each) must be laid out so.
    for (model, tap, left_cols, right_cols, w) in [
        ("vit_tiny.dynamo.onnx", "patch_embed", vec![0, 1], vec![2, 3], 4),
        ("vit_tiny.legacy.onnx", "patch_embed", vec![0, 1], vec![2, 3], 4),
        ("convnext_atto.legacy.onnx", "stages.0.blocks.0.mlp.fc1", vec![0], vec![7], 8),
        ("convnext_atto.dynamo.onnx", "stages.0.blocks.0.mlp.fc1", vec![0], vec![7], 8),
    ] {
        let out = tempfile::tempdir().unwrap();
        let (code, _, err) = run(flickertag().args([
            "analyze",
            "--model",
            zoo().join(model).to_str().unwrap(),
            "--image-file",
            zoo().join("image.png").to_str().unwrap(),
            "--tap",
            tap,
            "--maps",
            tap,
            "--no-stats",
            "--quiet",
            "--force",
            "--out",
            out.path().to_str().unwrap(),
        ]));
        assert_eq!(code, 0, "{model}: {err}");
        let (shape, m) = map_of(out.path(), tap);
        let (c, nl, h) = (shape[0], shape[1], shape[2]);
        assert_eq!((nl, shape[3]), (3, w), "{model}: lines f1, f2, f1+f2 on a {w}-wide grid");
        let at = |ch: usize, line: usize, y: usize, x: usize| m[((ch * nl + line) * h + y) * w + x];
        let (mut left6, mut right75) = (0, 0);
        for ch in 0..c {
            for y in 0..h {
                for &x in &left_cols {
                    assert_eq!(at(ch, 1, y, x), 0.0, "{model} {tap}: left position ({y},{x}) ch {ch} has 7.5 Hz");
                    left6 += (at(ch, 0, y, x) > 3.0) as usize;
                }
                for &x in &right_cols {
                    assert_eq!(at(ch, 0, y, x), 0.0, "{model} {tap}: right position ({y},{x}) ch {ch} has 6 Hz");
                    right75 += (at(ch, 1, y, x) > 3.0) as usize;
                }
            }
        }
        // Most positions carry their own half's line well above the noise.
        let n = c * h;
        assert!(
            left6 * 2 > n * left_cols.len() && right75 * 2 > n * right_cols.len(),
            "{model}: {left6} {right75} of {n}"
        );
    }
}

#[test]
fn shifted_windows_are_laid_back_on_the_grid_where_they_came_from() {
    // Known answer for Swin's windowed attention ([N·16 windows, 16 tokens, C] on a
    // 16 x 16 grid of 2-pixel patches, 4 x 4 windows; the image's halves are columns
    // 0-7 and 8-15). Attention mixes tokens within a window only. Unshifted (block 0),
    // no window straddles the midline: every position carries its own half's line only.
    // Shifted by 2 (block 1, the windows start at column 2 and a mask keeps the
    // wrapped-around window apart), the window of columns 6-9 mixes both halves: those
    // four columns carry both lines, columns 2-5 and 10-13 one. A map laid out without
    // the window reverse or the shift puts the mixed columns elsewhere.
    let line = |m: &[f64], shape: &[usize], l: usize, x: usize| -> f64 {
        let (c, nl, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        (0..c).flat_map(|ch| (0..h).map(move |y| m[((ch * nl + l) * h + y) * w + x].abs())).fold(0.0, f64::max)
    };
    for exporter in ["legacy", "dynamo"] {
        let model = zoo().join(format!("swin.{exporter}.onnx"));
        let out = tempfile::tempdir().unwrap();
        let taps = ["layers.0.blocks.0.attn.proj", "layers.0.blocks.1.attn.proj"];
        let mut cmd = flickertag();
        cmd.args(["analyze", "--model", model.to_str().unwrap(), "--image-file"]);
        cmd.arg(zoo().join("image.png"));
        for t in taps {
            cmd.args(["--tap", t, "--maps", t]);
        }
        let (code, _, err) = run(cmd.args(["--no-stats", "--quiet", "--force", "--out", out.path().to_str().unwrap()]));
        assert_eq!(code, 0, "{exporter}: {err}");
        for (tap, mixed) in [(taps[0], vec![]), (taps[1], vec![6, 7, 8, 9])] {
            let (shape, m) = map_of(out.path(), tap);
            assert_eq!((shape[2], shape[3]), (16, 16), "{exporter} {tap}");
            let scale = (0..16).map(|x| line(&m, &shape, 0, x).max(line(&m, &shape, 1, x))).fold(0.0, f64::max);
            for x in 0..16 {
                // The other half's line: 7.5 Hz (line 1) on the left, 6 Hz (line 0) on the right.
                let other = line(&m, &shape, if x < 8 { 1 } else { 0 }, x) / scale;
                if mixed.contains(&x) {
                    assert!(other > 1e-2, "{exporter} {tap}: column {x} should mix both halves ({other})");
                } else {
                    assert!(other < 1e-4, "{exporter} {tap}: column {x} has the other half's line ({other})");
                }
            }
        }
    }
}

#[test]
fn both_exporters_give_every_zoo_network_the_same_tap_names() {
    // Functional ops are `<module>.<op>` counted per module in graph order, and a
    // module called twice has its calls named alike (the legacy exporter's scope
    // `relu_1` is the second call of `relu`). What only one exporter computes has no
    // counterpart: DenseNet's `torch.cat` of a one-element list and its functional
    // pooling are elided by the dynamo exporter.
    let elided = [
        "adaptive_avg_pool2d",
        "features.denseblock1.denselayer1.cat",
        "features.denseblock2.denselayer1.cat",
        "features.denseblock3.denselayer1.cat",
        "features.denseblock4.denselayer1.cat",
    ];
    let index: Value = serde_json::from_slice(&std::fs::read(zoo().join("zoo.json")).unwrap()).unwrap();
    let mut compared = 0;
    for (name, entry) in index.as_object().unwrap() {
        let (Some(l), Some(d)) = (entry["files"]["legacy"].as_str(), entry["files"]["dynamo"].as_str()) else {
            continue;
        };
        // A folded conv+BatchNorm is keyed by its conv: the legacy exporter leaves no
        // name for the BatchNorm (`conv1 + BatchNorm (unnamed)`), the dynamo one names
        // the tap after it (`bn1`, folded `conv1 + bn1`).
        let names = |f: &str| -> std::collections::BTreeSet<String> {
            let t = taps_of(&zoo().join(f));
            t["taps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| match t["folded"].as_str() {
                    Some(f) => f.split(" + ").next().unwrap().to_string(),
                    None => t["name"].as_str().unwrap().to_string(),
                })
                .collect()
        };
        let (l, d) = (names(l), names(d));
        // The legacy exporter names modules by the calls that reach them: timm's
        // MetaFormer calls `self.head.fc(x)` from its own forward, so the legacy file
        // says `fc` where named_modules() (and the dynamo exporter) say `head.fc`.
        // The legacy exporter writes `torch.roll` (Swin's cyclic shift, one per axis) as
        // Slice + Concat, with nothing left to say it was a roll: `cat` there, `roll` in
        // the dynamo file.
        let d: std::collections::BTreeSet<String> = match name.as_str() {
            "poolformer" => d.into_iter().map(|n| n.strip_prefix("head.").map_or(n.clone(), str::to_string)).collect(),
            "swin" => d.into_iter().map(|n| n.replace(".roll", ".cat")).collect(),
            _ => d,
        };
        // A module whose output the dynamo optimizer merged into the next reshape
        // (LeViT's LinearNorm `qkv`: BatchNorm on `[N·T, C]`, reshaped back, reshaped
        // again by the attention) is found in both, as an alias of the tap that holds
        // its values (`qkv.bn`) in the dynamo file.
        let d_aliases: std::collections::BTreeSet<String> =
            taps_of(&zoo().join(entry["files"]["dynamo"].as_str().unwrap()))["taps"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|t| t["aliases"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
        let only_legacy: Vec<&String> =
            l.difference(&d).filter(|n| !elided.contains(&n.as_str()) && !d_aliases.contains(*n)).collect();
        let only_dynamo: Vec<&String> = d.difference(&l).collect();
        assert!(
            only_legacy.is_empty() && only_dynamo.is_empty(),
            "{name}: legacy only {only_legacy:?}, dynamo only {only_dynamo:?}"
        );
        compared += 1;
    }
    assert!(compared >= 15, "{compared} networks with both exports");
}

#[test]
fn decomposed_groupnorm_is_laid_out_as_its_input_with_no_one_channel_stand_ins() {
    // PoolFormer's GroupNorm (one group) is exported as a reshape to [N, 1, C*H*W], an
    // InstanceNormalization of that, a reshape back and the affine. The module output
    // is a norm tap on the input's grid (its values are checked against hooks in the
    // zoo test); the per-group tensor in between has one "channel" that is none of the
    // model's, and is no tap.
    for exporter in ["legacy", "dynamo"] {
        let taps = taps_of(&zoo().join(format!("poolformer.{exporter}.onnx")));
        let all = taps["taps"].as_array().unwrap();
        let norm = all.iter().find(|t| t["name"] == "stages.0.blocks.0.norm1").expect("norm1 is a tap");
        assert_eq!(norm["kind"], "norm", "{exporter}");
        assert_eq!(norm["chw"], serde_json::json!([8, 8, 8]), "{exporter}");
        let one: Vec<&Value> = all.iter().filter(|t| t["chw"][0] == 1).collect();
        assert!(one.is_empty(), "{exporter}: one-channel taps {one:?}");
    }
}

#[test]
fn an_int8_qdq_model_has_the_float_models_tap_names_and_kinds() {
    // ONNX Runtime's quantize_static (QDQ) inserts QuantizeLinear/DequantizeLinear pairs
    // named after tensors and removes the ReLUs the quantization range makes redundant;
    // the quantized file still names every tap as the float one does, with its kind
    // (its values are checked against onnxruntime-python in the zoo test).
    let names = |f: &str| -> std::collections::BTreeMap<String, String> {
        let t = taps_of(&zoo().join(f));
        t["taps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t["kind"].as_str().unwrap().to_string()))
            .collect()
    };
    let (float, int8) = (names("resnet18.legacy.onnx"), names("resnet18_qdq.legacy.onnx"));
    assert_eq!(float, int8);
    assert_eq!(int8.get("relu").map(String::as_str), Some("act"), "the removed stem ReLU");
    assert_eq!(int8.get("layer1.0.add").map(String::as_str), Some("add"));
}

#[test]
fn a_conv_folded_into_a_batchnorm_with_its_activation_is_named_as_the_normalization() {
    // timm's BatchNormAct2d holds the BatchNorm and its activation: a hook on `bn1` sees
    // the activation's output (checked in the zoo test), and the folded conv's value,
    // the normalization before it, is no module's. Dynamo: `bn1.batch_norm`, the conv no
    // tap and why; legacy (no BatchNorm name left): the conv's name, folded said.
    for (exporter, name, folded) in
        [("dynamo", "bn1.batch_norm", "conv_stem + bn1"), ("legacy", "conv_stem", "conv_stem + BatchNorm (unnamed)")]
    {
        let taps = taps_of(&zoo().join(format!("timm_efficientnet.{exporter}.onnx")));
        let t = taps["taps"].as_array().unwrap().iter().find(|t| t["name"] == name).expect(name).clone();
        assert_eq!((t["kind"].as_str(), t["folded"].as_str()), (Some("conv"), Some(folded)), "{exporter}");
        assert_eq!(tap_of(&taps, "bn1").as_deref(), Some("bn1.act"), "{exporter}: bn1 is its activation's output");
    }
    let taps = taps_of(&zoo().join("timm_efficientnet.dynamo.onnx"));
    let conv = taps["skipped"].as_array().unwrap().iter().find(|s| s["name"] == "conv_stem").unwrap();
    assert!(conv["reason"].as_str().unwrap().contains("bn1.batch_norm"), "{conv}");
}

#[test]
fn a_module_called_twice_is_no_tap_and_its_error_lists_the_calls() {
    // torchvision's BasicBlock calls its `relu` twice: after bn1, and after the
    // residual add (the block's output). Neither call is picked for the other.
    for exporter in ["legacy", "dynamo"] {
        let model = zoo().join(format!("resnet18.{exporter}.onnx"));
        let taps = taps_of(&model);
        assert!(has_tap(&taps, "layer1.0.relu.relu") && has_tap(&taps, "layer1.0.relu.relu_1"), "{exporter}");
        assert_ne!(tap_of(&taps, "layer1.0.relu.relu"), tap_of(&taps, "layer1.0.relu.relu_1"));
        assert_eq!(tap_of(&taps, "layer1.0.relu.relu_1").as_deref(), Some("layer1.0"), "{exporter}: the block output");
        let o = tempfile::tempdir().unwrap();
        let (code, _, err) = run(flickertag().args([
            "analyze",
            "--model",
            model.to_str().unwrap(),
            "--image-file",
            zoo().join("image.png").to_str().unwrap(),
            "--tap",
            "layer1.0.relu",
            "--quiet",
            "--out",
            o.path().to_str().unwrap(),
        ]));
        assert_ne!(code, 0, "{exporter}");
        assert!(err.contains("layer1.0.relu.relu, layer1.0"), "{exporter}: {err}");
    }
}

#[test]
fn float16_models_run_with_a_note_and_refuse_controls_they_cannot_redraw() {
    // (Their taps are checked against PyTorch's float16 hooks in the zoo test.)
    let dir = zoo();
    let model = dir.join("resnet18_half.dynamo.onnx");
    let (code, out, err) = run(flickertag().args(["taps", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("float16 model"), "{err}");
    assert!(out.contains("layer1.0.conv1") && !out.contains("flickertag.input_float16"), "{out}");
    let o = tempfile::tempdir().unwrap();
    let (code, _, err) = run(flickertag().args([
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--image-file",
        dir.join("image.png").to_str().unwrap(),
        "--control",
        "random-weights",
        "--taps",
        "conv",
        "--force",
        "--quiet",
        "--out",
        o.path().to_str().unwrap(),
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("--control") && err.contains("element type 10"), "{err}");
}

#[test]
fn control_networks_are_compared_layer_by_layer() {
    use common::{node, onnx};
    let d = tempfile::tempdir().unwrap();
    // Known answer: shuffling a constant weight tensor changes nothing (delta 0); a zoo
    // network's permuted control differs.
    let m = onnx(
        &[0, 3, 32, 32],
        vec![node("Conv", "/conv/Conv", &["input", "w"], "output")],
        &[("w", &[4, 3, 3, 3], 0.5)],
    );
    std::fs::write(d.path().join("const.onnx"), m).unwrap();
    for (model, out) in [(d.path().join("const.onnx"), "c"), (zoo().join("resnet18.legacy.onnx"), "r")] {
        let (code, _, err) = run(flickertag()
            .args(["analyze", "--model", model.to_str().unwrap(), "--image-file"])
            .args([zoo().join("image.png").to_str().unwrap(), "--no-stats", "--control", "permuted", "--out"])
            .arg(d.path().join(out)));
        assert_eq!(code, 0, "{err}");
    }
    let rows = |out: &str| -> Vec<Value> {
        let v: Value =
            serde_json::from_slice(&std::fs::read(d.path().join(out).join("control.json")).unwrap()).unwrap();
        v["layers"].as_array().unwrap().clone()
    };
    let c = rows("c");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["cliffs_delta"], 0.0);
    assert_eq!(c[0]["trained_mean"], c[0]["control_mean"]);
    let r = rows("r");
    assert!(r.len() > 10 && r.iter().any(|x| x["cliffs_delta"].as_f64().unwrap() != 0.0));
    assert!(std::fs::read_to_string(d.path().join("r/control.csv")).unwrap().starts_with("tap,n_filters,trained_mean"));
    // A shard cannot carry a control.
    let (code, _, err) =
        run(flickertag().args(["analyze", "--control", "permuted", "--shard", "0/2", "--out"]).arg(d.path().join("s")));
    assert_ne!(code, 0);
    assert!(err.contains("shard"), "{err}");
}

#[test]
fn random_weights_control_shows_a_planted_absence_of_intermodulation() {
    // Known answer. The "trained" network is a 3x3 conv whose weights lie in the
    // kernel's middle column only, then a square. No unit sees both halves of the image
    // (the regions meet at a vertical edge), so the square makes harmonics and no
    // intermodulation at all. Its random-weights control redraws the weights from a
    // Gaussian with the tensor's mean and SD: every column is used, the units on the
    // edge see both regions, and the square mixes them. A constant tensor has SD 0:
    // its control is the network itself (delta 0).
    use common::{node, onnx};
    use protobuf::Message;
    let d = tempfile::tempdir().unwrap();
    let nodes =
        || vec![node("Conv", "/conv/Conv", &["input", "w"], "c"), node("Mul", "/sq/Mul", &["c", "c"], "output")];
    let mut m =
        onnx_protobuf::ModelProto::parse_from_bytes(&onnx(&[0, 3, 32, 32], nodes(), &[("w", &[4, 3, 3, 3], 0.0)]))
            .unwrap();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    // [out, in, kh, kw]: kw == 1 is the middle column.
    w.float_data = (0..108).map(|i| if i % 3 == 1 { 0.2 + 0.05 * (i / 27) as f32 } else { 0.0 }).collect();
    std::fs::write(d.path().join("column.onnx"), m.write_to_bytes().unwrap()).unwrap();
    std::fs::write(d.path().join("const.onnx"), onnx(&[0, 3, 32, 32], nodes(), &[("w", &[4, 3, 3, 3], 0.1)])).unwrap();
    let json = |model: &str| -> Value {
        let out = d.path().join(format!("{model}.run"));
        let (code, _, err) = run(flickertag()
            .args(["analyze", "--model", d.path().join(model).to_str().unwrap(), "--image-file"])
            .args([zoo().join("image.png").to_str().unwrap(), "--taps", "all", "--no-stats", "--control"])
            .args(["random-weights", "--controls", "5", "--force", "--out"])
            .arg(&out));
        assert_eq!(code, 0, "{err}");
        serde_json::from_slice(&std::fs::read(out.join("control.json")).unwrap()).unwrap()
    };
    let rows = |model: &str| -> Vec<Value> { json(model)["layers"].as_array().unwrap().clone() };
    // Network by network, 5 controls: the trained network's share of filters at
    // intermodulation (0) is below every control's (1 in the squared layer), its
    // percentile 0 and its Monte Carlo p 2 (1 + 0) / 6; where the weights are constant
    // the controls are the trained network, percentile 50 (all ties) and p 1.
    let network = |model: &str, stat: &str| -> Value {
        let v = json(model);
        let rows = v["networks"].as_array().unwrap();
        rows.iter().find(|r| r["level"] == "(network)" && r["statistic"] == stat).unwrap().clone()
    };
    let im = network("column.onnx", "intermod_share");
    assert_eq!(
        (im["trained"].as_f64(), im["percentile"].as_f64(), im["n_controls"].as_u64()),
        (Some(0.0), Some(0.0), Some(5))
    );
    assert!((im["p_value"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-12, "{im}");
    let same = network("const.onnx", "mean_score");
    assert_eq!((same["percentile"].as_f64(), same["p_value"].as_f64()), (Some(50.0), Some(1.0)), "{same}");
    let column = rows("column.onnx");
    let squared: Vec<&Value> = column.iter().filter(|r| r["tap"] != "conv").collect();
    assert!(!squared.is_empty(), "{column:?}");
    for r in &squared {
        assert_eq!(r["trained_intermod"], 0.0, "{r}");
        assert_eq!(r["control_intermod"], 1.0, "{r}");
    }
    let conv = column.iter().find(|r| r["tap"] == "conv").unwrap();
    assert_eq!(
        (conv["trained_intermod"].as_f64(), conv["control_intermod"].as_f64()),
        (Some(0.0), Some(0.0)),
        "linear"
    );
    for r in rows("const.onnx") {
        assert_eq!(r["cliffs_delta"], 0.0, "{r}");
        assert_eq!(r["trained_intermod"], r["control_intermod"], "{r}");
    }
}

#[test]
fn region_swap_finds_the_linear_stem_bound_to_its_regions() {
    // Known answer: the stem conv is linear and sees each frame alone, so a filter's
    // left/right balance is the image content's, whatever frequency flickers where:
    // every filter follows the region, and the selectivity is the same in both runs.
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = run(flickertag()
        .args(["analyze", "--model", "resnet32", "--tap", "conv1", "--region-swap", "--no-stats", "--out"])
        .arg(out.path().join("r"))
        .env_remove("FLICKERTAG_DATA"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("conv1              16 / 0 of 16"), "{err}");
    let csv = std::fs::read_to_string(out.path().join("r/region_swap.csv")).unwrap();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (a, b): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!((a - b).abs() <= 1e-4, "{line}");
        assert_eq!((f[7], f[8]), ("true", "false"), "{line}");
    }
}

#[test]
fn f_test_detects_the_stems_lines_and_keeps_its_false_positive_rate_on_lines_it_lacks() {
    // Known answer: the stem conv is linear, so at its harmonics and intermodulation
    // lines the null is true: the detection rate there must be about alpha (0.05); at
    // the fundamentals, with little noise, nearly 1.
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = run(flickertag()
        .args(["analyze", "--model", "resnet32", "--tap", "conv1", "--noise-sigma", "0.05,5", "--no-stats", "--out"])
        .arg(out.path().join("r"))
        .env_remove("FLICKERTAG_DATA"));
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(out.path().join("r/noise_sweep.csv")).unwrap();
    let rate = |sigma: &str, line: &str| -> f64 {
        csv.lines()
            .find(|l| l.starts_with(&format!("{sigma},conv1,{line},")))
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let null: f64 = ["2f1", "2f2", "f2-f1", "f1+f2"].iter().map(|l| rate("0.05", l)).sum::<f64>() / 4.0;
    // 4 lines x 160 tests: binomial SD of the mean about 0.009.
    assert!(null <= 0.08, "false-positive rate {null}");
    assert!(rate("0.05", "f1") > 0.9 && rate("0.05", "f2") > 0.9, "{csv}");
    // Much more noise: fewer detections at the fundamentals.
    assert!(rate("5", "f1") < rate("0.05", "f1"), "{csv}");
}

#[test]
fn bootstrap_intervals_bracket_the_means_and_follow_the_seed() {
    let out = tempfile::tempdir().unwrap();
    let runs: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            let (code, _, err) = run(flickertag()
                .args([
                    "analyze",
                    "--model",
                    "resnet32",
                    "--tap",
                    "conv1",
                    "--tap",
                    "layer3.4.conv2",
                    "--bootstrap",
                    "200",
                ])
                .args(["--no-stats", "--quiet", "--out"])
                .arg(out.path().join(n))
                .env_remove("FLICKERTAG_DATA"));
            assert_eq!(code, 0, "{err}");
            std::fs::read_to_string(out.path().join(n).join("bootstrap.csv")).unwrap()
        })
        .collect();
    assert_eq!(runs[0], runs[1], "seeded");
    let rows: Vec<Vec<&str>> = runs[0].lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6 * (16 + 64) + 6 * 2, "per filter and per layer, six quantities");
    for r in &rows {
        let (m, lo, hi): (f64, f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap(), r[5].parse().unwrap());
        assert!(lo <= m * (1.0 + 1e-9) + 1e-12 && m <= hi * (1.0 + 1e-9) + 1e-12, "{r:?}");
    }
    // The linear stem has no intermodulation; the last block integrates both halves.
    let integration = |tap: &str| -> f64 {
        rows.iter().find(|r| r[0] == tap && r[1].is_empty() && r[2] == "integration").unwrap()[4].parse().unwrap()
    };
    assert!(integration("conv1") < 1e-3 && integration("layer3.4.conv2") > 0.2);
}
