//! Runs split across processes and sittings: shards merged, and kills resumed, give the
//! run one uninterrupted process writes.

mod common;
use common::{data_dir, flickertag, run};

use std::path::Path;

fn npy_f64(p: &Path) -> Vec<f64> {
    let bytes = std::fs::read(p).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
}

fn same(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
}

/// Per-image arrays and everything derived from them alone (scores, sweeps).
const IDENTICAL: [&str; 6] =
    ["scores.npy", "spectra.npy", "coefficients.npy", "layers.csv", "sweep.csv", "crossval.csv"];

/// `lines.csv`, and the baseline-corrected amplitudes, selectivity and integration of
/// `filters.csv`, come from the mean spectra (the same sums in another order): the same
/// fields, numbers equal within 1e-12 (they are written at round-trip precision; see
/// [`csv_close`]).
fn lines_close(a: &Path, b: &Path) {
    for f in ["lines.csv", "filters.csv"] {
        csv_close(&a.join(f), &b.join(f));
    }
}

/// Equal fields; numbers within 1e-12 relative, but ratios of differences
/// (`selectivity`, `integration`: within [-1, 1], where two nearly equal amplitudes
/// cancel and their relative rounding grows by the cancellation) within 1e-12 absolute.
fn csv_close(a: &Path, b: &Path) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let (x, y) = (read(a), read(b));
    assert_eq!(x.lines().count(), y.lines().count());
    let header: Vec<&str> = x.lines().next().unwrap_or_default().split(',').collect();
    for (lx, ly) in x.lines().zip(y.lines()) {
        for (i, (fx, fy)) in lx.split(',').zip(ly.split(',')).enumerate() {
            let ratio = matches!(header.get(i), Some(&"selectivity" | &"integration"));
            match (fx.parse::<f64>(), fy.parse::<f64>()) {
                (Ok(u), Ok(v)) if u.is_finite() => {
                    let scale = if ratio { 1.0 } else { u.abs().max(1e-30) };
                    assert!((u - v).abs() <= 1e-12 * scale, "{}: {lx} against {ly}", a.display())
                }
                _ => assert_eq!(fx, fy, "{}: {lx} against {ly}", a.display()),
            }
        }
    }
}

fn no_data<'a>(c: &'a mut std::process::Command, home: &Path) -> &'a mut std::process::Command {
    c.env_remove("FLICKERTAG_DATA").env("HOME", home).env("XDG_CACHE_HOME", home)
}

#[test]
fn four_shards_merged_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..4 {
        let (code, _, err) = run(no_data(
            flickertag()
                .args(["analyze", "--quiet", "--shard", &format!("{i}/4"), "--out"])
                .arg(d.join(format!("p{i}"))),
            d,
        ));
        assert_eq!(code, 0, "{err}");
    }
    // Parts in any order.
    let (code, _, err) = run(no_data(
        flickertag().arg("merge").args(["p2", "p0", "p3", "p1"].map(|p| d.join(p))).arg("--out").arg(d.join("merged")),
        d,
    ));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(no_data(flickertag().args(["analyze", "--quiet", "--out"]).arg(d.join("single")), d));
    assert_eq!(code, 0, "{err}");
    same(&d.join("merged"), &d.join("single"), &IDENTICAL);
    lines_close(&d.join("merged"), &d.join("single"));
    // Mean spectra: the same sums in another order (documented tolerance 1e-12 relative).
    let (a, b) = (npy_f64(&d.join("merged/spectra_mean.npy")), npy_f64(&d.join("single/spectra_mean.npy")));
    let worst = a
        .iter()
        .zip(&b)
        .filter(|(x, _)| x.is_finite())
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-30))
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "mean spectra differ by {worst:e}");
    let s = |p: &str| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(p).join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v.as_object_mut().unwrap().remove("segments");
        v
    };
    assert_eq!(s("merged")["images"], s("single")["images"]);
    // The merged run records each shard's work (shard i holds images 10i/4 to 10(i+1)/4)
    // and the merge's, and their total.
    let summary = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(p).join("summary.json")).unwrap()).unwrap()
    };
    let merged = summary("merged");
    let parts: Vec<(String, u64)> = merged["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["part"].as_str().unwrap().to_string(), g["images"].as_u64().unwrap()))
        .collect();
    let want: Vec<(String, u64)> = ["shard 0/4", "shard 1/4", "shard 2/4", "shard 3/4", "merge"]
        .iter()
        .zip([2, 3, 2, 3, 0])
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    assert_eq!(parts, want);
    let total: f64 = merged["segments"].as_array().unwrap().iter().map(|g| g["seconds"].as_f64().unwrap()).sum();
    assert!((merged["seconds"].as_f64().unwrap() - total).abs() < 1e-9 && total > 0.0, "{merged}");
    assert_eq!(summary("single")["segments"].as_array().unwrap().len(), 1);
    // Layers: identical, but for each filter's rounding floor, which comes from the mean
    // spectrum (the same sums in another order).
    let floors = |v: &mut serde_json::Value| -> Vec<f64> {
        let mut out = Vec::new();
        for l in v.as_array_mut().unwrap() {
            for f in l["filters"].as_array_mut().unwrap() {
                out.push(f["response"]["floor"].as_f64().unwrap());
                f["response"].as_object_mut().unwrap().remove("floor");
            }
        }
        out
    };
    let (mut lm, mut ls) = (s("merged")["layers"].clone(), s("single")["layers"].clone());
    for (x, y) in floors(&mut lm).into_iter().zip(floors(&mut ls)) {
        assert!((x - y).abs() <= 1e-12 * x.abs().max(1e-300), "floor {x} vs {y}");
    }
    assert_eq!(lm, ls);
    // Statistics: the tests come from the per-image coefficients (identical); the
    // baseline-corrected amplitudes from the mean spectra (summation order).
    for (a, b) in s("merged")["stats"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(s("single")["stats"]["layers"].as_array().unwrap())
    {
        assert_eq!(a["phase_consistent"], b["phase_consistent"]);
        for (x, y) in a["filters"].as_array().unwrap().iter().zip(b["filters"].as_array().unwrap()) {
            assert_eq!(
                (&x["phase_p_lines"], &x["phase_p"], &x["phase_q"]),
                (&y["phase_p_lines"], &y["phase_p"], &y["phase_q"])
            );
            let (u, v) = (x["selectivity"].as_f64().unwrap(), y["selectivity"].as_f64().unwrap());
            assert!((u - v).abs() <= 1e-9 * u.abs().max(1e-12), "{u} {v}");
        }
    }
}

#[test]
fn merge_names_missing_repeated_and_foreign_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, extra) in [(0, vec![]), (1, vec![]), (1, vec!["--threshold", "2"])] {
        let out = d.join(format!("p{i}{}", extra.len()));
        let (code, _, err) = run(no_data(
            flickertag().args(["analyze", "--quiet", "--shard", &format!("{i}/3"), "--out"]).arg(&out).args(extra),
            d,
        ));
        assert_eq!(code, 0, "{err}");
    }
    let m = |parts: &[&str]| {
        run(no_data(flickertag().arg("merge").args(parts.iter().map(|p| d.join(p))).arg("--out").arg(d.join("m")), d))
    };
    let (code, _, err) = m(&["p00", "p10"]);
    assert!(code == 1 && err.contains("missing: 2/3"), "{err}");
    let (code, _, err) = m(&["p00", "p10", "p10"]);
    assert!(code == 1 && err.contains("given more than once: 1/3"), "{err}");
    let (code, _, err) = m(&["p00", "p12"]);
    assert!(code == 1 && err.contains("differ in options or taps"), "{err}");
    assert!(!d.join("m").exists(), "a refused merge writes nothing");
}

#[test]
#[ignore = "needs the data folder"]
fn resume_after_kill_9_ends_with_the_uninterrupted_run() {
    const N: usize = 20;
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let analyze = |out: &str, extra: &[&str]| {
        let mut c = flickertag();
        c.args([
            "analyze",
            "--n-images",
            &N.to_string(),
            "--seed",
            "3",
            "--threads",
            "1",
            "--checkpoint-every",
            "0.05",
        ])
        .arg("--out")
        .arg(d.join(out))
        .args(extra)
        .env("FLICKERTAG_DATA", &data);
        c
    };
    let t = std::time::Instant::now();
    let (code, _, err) = run(&mut analyze("whole", &[]));
    assert_eq!(code, 0, "{err}");
    let whole = t.elapsed();
    // Killed (SIGKILL) at several moments within the time a whole run takes, resumed
    // each time from the checkpoint the previous one left; then finished.
    let ck = d.join(".resumed.flickertag-checkpoint");
    // Short delays: each kill also waits for a fresh checkpoint, so every run makes
    // progress, and together they stay well short of the whole run on any machine load.
    for frac in [0.1, 0.05, 0.05, 0.05] {
        let child = analyze("resumed", &["--resume"]).stderr(std::process::Stdio::null()).spawn().unwrap();
        kill_after(child, whole.mul_f64(frac), &ck);
    }
    assert!(ck.is_dir(), "the killed runs left a checkpoint");
    assert!(!d.join("resumed").exists(), "no run folder before the run completes");
    let (code, _, err) = run(&mut analyze("resumed", &["--resume"]));
    assert_eq!(code, 0, "{err}");
    let after: usize = err.split("resuming after ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(after > 0 && after < N, "resumed after {after} images: {err}");
    // The same sums in the same order: every file byte for byte.
    same(&d.join("resumed"), &d.join("whole"), &IDENTICAL);
    same(&d.join("resumed"), &d.join("whole"), &["filters.csv", "lines.csv"]);
    same(&d.join("resumed"), &d.join("whole"), &["spectra_mean.npy"]);
    assert!(!d.join(".resumed.flickertag-checkpoint").exists(), "the checkpoint is removed with the finished run");
    // The resumed run records the work of every start that left a checkpoint, then the
    // last one: their images add up to the run's, their seconds to its total.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("resumed/summary.json")).unwrap()).unwrap();
    let segs = v["segments"].as_array().unwrap();
    assert!(segs.len() >= 2, "a resumed run has several segments: {segs:?}");
    assert_eq!(segs.iter().map(|g| g["images"].as_u64().unwrap()).sum::<u64>(), N as u64, "{segs:?}");
    assert_eq!(segs.last().unwrap()["images"].as_u64().unwrap() as usize, N - after);
    let total: f64 = segs.iter().map(|g| g["seconds"].as_f64().unwrap()).sum();
    assert!((v["seconds"].as_f64().unwrap() - total).abs() < 1e-9, "{v}");
}

#[test]
#[ignore = "needs the data folder"]
fn prune_eval_resumed_after_kill_9_ends_with_the_uninterrupted_result() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prune = |out: &str, extra: &[&str]| {
        let mut c = flickertag();
        // Small (about 15 s on 2 cores), and still about 300 checkpoints at 0.05 s.
        c.args(["prune-eval", "--n-images", "40", "--seed", "1", "--random-seeds", "2", "--layers", "#1"])
            .args(["--criteria", "weight_l1,bn_gamma", "--fractions", "0,0.3,0.6", "--layer-fractions", "0,0.5"])
            .args(["--threads", "1", "--checkpoint-every", "0.05", "--out"])
            .arg(d.join(out))
            .args(extra)
            .env("FLICKERTAG_DATA", &data);
        c
    };
    let t = std::time::Instant::now();
    let (code, _, err) = run(&mut prune("whole", &["--quiet"]));
    assert_eq!(code, 0, "{err}");
    let whole = t.elapsed();
    // Killed once mid-way (once a checkpoint exists: on a loaded machine the run is
    // slower than `whole`), then once more early in the resumed run.
    let ck = d.join(".resumed.flickertag-checkpoint.json");
    for frac in [0.6, 0.15] {
        kill_after(prune("resumed", &["--resume", "--quiet"]).spawn().unwrap(), whole.mul_f64(frac), &ck);
    }
    assert!(ck.is_file(), "the killed runs left a checkpoint");
    assert!(!d.join("resumed").exists());
    let (code, _, err) = run(&mut prune("resumed", &["--resume"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming with"), "{err}");
    same(&d.join("resumed"), &d.join("whole"), &["prune_curves.csv", "prune_summary.csv"]);
    let j = |p: &str| -> (serde_json::Value, usize) {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(p).join("prune.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        let segments = v.as_object_mut().unwrap().remove("segment_seconds").unwrap();
        (v, segments.as_array().unwrap().len())
    };
    assert_eq!(j("resumed").0, j("whole").0);
    assert_eq!(j("whole").1, 1);
    assert!(j("resumed").1 >= 2, "each start that left a checkpoint, and the last, is recorded");
    assert!(!d.join(".resumed.flickertag-checkpoint.json").exists());
}

#[test]
#[ignore = "needs the data folder"]
fn regression_edited_or_foreign_prune_checkpoints_are_refused_naming_the_file() {
    use sha2::Digest;
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("r.th");
    std::fs::copy(data.join("models/resnet20-cifar10.th"), &model).unwrap();
    let prune = |extra: &[&str]| {
        let mut c = flickertag();
        c.args(["prune-eval", "--quiet", "--n-images", "40", "--seed", "1", "--random-seeds", "2", "--layers", "#1"])
            .args(["--criteria", "weight_l1,bn_gamma", "--fractions", "0,0.3,0.6", "--layer-fractions", "0,0.5"])
            .args(["--threads", "1", "--checkpoint-every", "0.05", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(d.join("p"))
            .args(extra)
            .env("FLICKERTAG_DATA", &data);
        c
    };
    let ck = d.join(".p.flickertag-checkpoint.json");
    kill_after(prune(&[]).spawn().unwrap(), std::time::Duration::from_millis(500), &ck);
    let pristine = std::fs::read(&ck).expect("the killed run left a checkpoint");
    let envelope: serde_json::Value = serde_json::from_slice(&pristine).unwrap();
    assert!(!envelope["payload"]["measured"].as_array().unwrap().is_empty());
    // Writes a checkpoint whose payload is `edit`ed; with `fix`, its checksum made to match.
    let write = |edit: &dyn Fn(&mut serde_json::Value), fix: bool| {
        let mut payload = envelope["payload"].clone();
        edit(&mut payload);
        let text = serde_json::to_string(&payload).unwrap();
        let sum: String = if fix {
            sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        } else {
            envelope["checksum"].as_str().unwrap().to_string()
        };
        std::fs::write(&ck, format!("{{\"payload\":{text},\"checksum\":\"{sum}\"}}")).unwrap();
    };
    let refused = |what: &str, needles: &[&str]| {
        let (code, _, err) = run(&mut prune(&["--resume"]));
        assert_eq!(code, 1, "{what}: {err}");
        assert!(needles.iter().all(|n| err.contains(n)) && !err.contains("panicked"), "{what}: {err}");
        assert!(!d.join("p").exists(), "{what}");
    };
    write(&|p| p["measured"][0][1]["top1"] = 99.0.into(), false);
    refused("an accuracy edited", &[".p.flickertag-checkpoint.json", "checksum mismatch"]);
    write(&|p| p["measured"][0][1]["top1"] = 99.0.into(), true);
    refused("an accuracy edited, its checksum made to match", &["resume", "hit set gives"]);
    write(&|p| p["measured"][0][1]["hits"]["words"] = serde_json::json!([0]), true);
    refused("a hit set emptied, its checksum made to match", &["resume", "hit set gives"]);
    write(&|p| p["measured"][0][0][1][0] = serde_json::json!([99999]), true);
    refused("a filter index past the layer", &["resume", "increasing filter indices below"]);
    // Another network at the same path (ResNet-32's weights where ResNet-20's were).
    std::fs::write(&ck, &pristine).unwrap();
    std::fs::copy(data.join("models/resnet32-cifar10.th"), &model).unwrap();
    refused("another network at the same path", &["a checkpoint of r (sha256", "not of this model r (sha256"]);
}

/// Kills (SIGKILL) `child` after `delay`, and once the checkpoint `ck` has been written
/// in this run (it exists and differs from what it was when the child started: each
/// save records the time worked so far), waiting at most 2 minutes more, or until the
/// child ends. So every killed run leaves progress behind, whatever the machine's load,
/// and no run is killed before its first checkpoint.
fn kill_after(mut child: std::process::Child, delay: std::time::Duration, ck: &std::path::Path) {
    let read = |p: &std::path::Path| -> Option<Vec<u8>> {
        if p.is_dir() {
            std::fs::read(p.join("partial.json")).ok()
        } else {
            std::fs::read(p).ok()
        }
    };
    let before = read(ck);
    std::thread::sleep(delay);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < give_up && child.try_wait().unwrap().is_none() {
        let now = read(ck);
        if now.is_some() && now != before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
