//! The command line end to end: run folders, JSON output, the demo.

mod common;
use common::{data_dir, flickertag, run};

fn read_npy_shape(path: &std::path::Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.shape().to_vec()
}

#[test]
fn demo_random_runs_the_labelled_pipeline_demonstration() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = common::demo_without_data(dir.path(), &["--random"]);
    assert!(err.contains("DEMONSTRATION OF THE PIPELINE"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["model"]["name"], "demo-resnet8-random");
    assert_eq!(s["layers"].as_array().unwrap().len(), 7, "ResNet-8 has 7 convs");
}

#[test]
#[ignore = "needs the data folder"]
fn demo_without_data_runs_the_papers_experiment_from_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = common::demo_without_data(dir.path(), &[]);
    assert!(err.contains("paper's experiment") && !err.contains("DEMONSTRATION"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["model"]["name"], "resnet32");
    assert_eq!(s["model"]["source"], "embedded:resnet32-cifar10.th");
    assert_eq!(s["layers"].as_array().unwrap().len(), 31, "ResNet-32 has 31 convs");
    let names: Vec<&str> = s["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "test[3]", "test[6]", "test[25]", "test[0]", "test[22]", "test[12]", "test[4]", "test[13]", "test[1]",
            "test[11]"
        ]
    );
    // The same experiment from the data folder's own files (weights and test batch)
    // gives byte-identical scores and spectra.
    let d = data_dir();
    let ref_out = dir.path().join("from-data");
    let (code, _, err) = run(flickertag()
        .args(["analyze", "--model", "resnet32", "--taps", "conv", "--quiet", "--out", ref_out.to_str().unwrap()])
        .env("FLICKERTAG_DATA", &d));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(ref_out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(r["images"], s["images"]);
    assert!(r["model"]["source"].as_str().unwrap().ends_with("models/resnet32-cifar10.th"));
    for f in ["scores.npy", "spectra_mean.npy", "spectra.npy", "filters.csv"] {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(ref_out.join(f)).unwrap(), "{f} differs");
    }
}

#[test]
#[ignore = "needs the data folder"]
fn analyze_writes_a_complete_run_folder() {
    let d = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, stdout, err) = run(flickertag()
        .args([
            "analyze",
            "--model",
            "resnet32",
            "--images",
            "0,1,2",
            "--threads",
            "2",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("FLICKERTAG_DATA", &d));
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["schema"], 1);
    assert_eq!(s["images"].as_array().unwrap().len(), 3);
    assert_eq!(s["inference"]["path"]["path"], "folded");
    assert_eq!(s["inference"]["path"]["distinct"], 49);
    assert_eq!(s["inference"]["frames_per_image"], 49);
    assert_eq!(s["stimulus"]["bins"], serde_json::json!([12, 15]));
    // The default selection is the weighted layers: 31 convs and the Linear classifier.
    let layers = s["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 32);
    assert_eq!(layers[3]["conv_ordinal"], 4);
    assert_eq!(layers[31]["tap"], "linear");
    for f in ["summary.json", "filters.csv", "layers.csv", "lines.csv"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let filters = std::fs::read_to_string(out.join("filters.csv")).unwrap();
    assert_eq!(filters.lines().count(), 1 + 16 * 11 + 32 * 10 + 64 * 10 + 10);
    // One row per filter, in the order of filters.csv: nothing padded to the widest tap.
    let rows = 16 * 11 + 32 * 10 + 64 * 10 + 10;
    assert_eq!(read_npy_shape(&out.join("spectra.npy")), vec![3, rows, 121]);
    assert_eq!(read_npy_shape(&out.join("coefficients.npy")), vec![3, rows, 121]);
    assert_eq!(read_npy_shape(&out.join("spectra_mean.npy")), vec![rows, 121]);
    assert_eq!(read_npy_shape(&out.join("scores.npy")), vec![3, rows]);
}

#[test]
#[ignore = "needs the data folder"]
fn seeded_image_draw_is_reproducible() {
    let d = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let images = |seed: &str, name: &str| -> serde_json::Value {
        let (code, out, err) = run(flickertag()
            .args(["analyze", "--n-images", "3", "--seed", seed, "--tap", "conv1", "--json", "--no-per-image", "--out"])
            .arg(dir.path().join(name))
            .env("FLICKERTAG_DATA", &d));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["images"].clone()
    };
    assert_eq!(images("7", "a"), images("7", "b"));
    assert_ne!(images("7", "c"), images("8", "d"));
}

#[test]
fn run_folder_holds_a_complete_run_or_the_previous_one_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let analyze = |extra: &[&str]| {
        let mut c = flickertag();
        c.args(["analyze", "--quiet", "--threads", "1", "--out", out.to_str().unwrap()]).args(extra);
        c.env_remove("FLICKERTAG_DATA").env("HOME", home.path()).env("XDG_CACHE_HOME", home.path());
        c
    };
    let (code, _, err) = run(&mut analyze(&[]));
    assert_eq!(code, 0, "{err}");
    let first = std::fs::read(out.join("summary.json")).unwrap();
    // A rerun is refused without --force, before any work, and leaves the run alone.
    let (code, _, err) = run(&mut analyze(&["--threshold", "2"]));
    assert!(code == 1 && err.contains("--force"), "{err}");
    // Killed at several moments while it works and writes: the folder always holds
    // one complete run (every file present, summary readable), the first or a new one.
    for ms in [30u64, 150, 300, 500, 700, 900, 1200] {
        let mut child = analyze(&["--threshold", "2", "--force"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert!(out.join(".flickertag-run").is_file(), "after a kill at {ms} ms the run folder is incomplete");
        let s = std::fs::read(out.join("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&s).unwrap();
        assert!(v["threshold"] == 1.5 || v["threshold"] == 2.0);
        for f in ["layers.csv", "filters.csv", "lines.csv", "spectra_mean.npy", "scores.npy", "report.html"] {
            assert!(out.join(f).is_file(), "{f} missing after a kill at {ms} ms");
        }
    }
    // The next run cleans what the killed ones left and ends with only the run and its lock.
    let (code, _, err) = run(&mut analyze(&["--force"]));
    assert_eq!(code, 0, "{err}");
    // The same run again: the same summary but for its wall time (whose printed length
    // varies with its digits).
    let without_time = |b: &[u8]| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v.as_object_mut().unwrap().remove("segments");
        v
    };
    assert_eq!(without_time(&std::fs::read(out.join("summary.json")).unwrap()), without_time(&first));
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["run"], "leftovers (a lock file included): {names:?}");
}

#[test]
fn unwritable_out_is_an_error_before_any_work() {
    let (code, _, err) =
        run(flickertag().args(["analyze", "--out", "/proc/flickertag-run"]).env_remove("FLICKERTAG_DATA"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/proc") && !err.contains("important"), "{err}");
    assert_eq!(err.matches("No such file or directory").count() + err.matches("Permission denied").count(), 1, "{err}");
}

#[test]
fn lines_prints_the_catalogue_as_json() {
    let (code, out, err) = run(flickertag().args(["lines", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let l = v.as_array().unwrap();
    assert_eq!(l.len(), 40);
    assert!(l.iter().any(|x| x["label"] == "f1+f2" && x["freq"] == 13.5));
}

#[test]
fn stimulus_writes_frames_and_gif() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    flickertag::data::synthetic_image(3, 32, 32).to_rgb8().save(&img).unwrap();
    let out = dir.path().join("stim");
    let stimulus = |extra: &[&str]| {
        let base = [
            "stimulus",
            "--image-file",
            img.to_str().unwrap(),
            "--n-frames",
            "16",
            "--freqs",
            "15,30",
            "-o",
            out.to_str().unwrap(),
        ];
        run(flickertag().args(base).args(extra))
    };
    let (code, _, err) = stimulus(&["--scale", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 16);
    let f0 = image::open(out.join("frame_0000.png")).unwrap().to_rgb8();
    let f2 = image::open(out.join("frame_0002.png")).unwrap().to_rgb8();
    assert_eq!(f0.dimensions(), (64, 64));
    assert_ne!(f0, f2, "frames flicker");
    let (code, _, err) = stimulus(&["--gif"]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(out.join("stimulus.gif")).unwrap().starts_with(b"GIF89a"));
}

#[test]
fn completions_and_help_examples() {
    let (code, out, _) = run(flickertag().args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(out.contains("flickertag"));
    for sub in ["analyze", "eval", "taps", "export", "lines", "stimulus", "bench", "fetch-data", "demo"] {
        let (code, out, _) = run(flickertag().args([sub, "--help"]));
        assert_eq!(code, 0);
        assert!(out.contains("Examples:"), "{sub} --help has no examples");
    }
}

#[test]
#[ignore = "needs the data folder"]
fn noise_floor_and_grid_aware_statistics_run_end_to_end() {
    let d = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let analyze = |out: &std::path::Path| {
        run(flickertag()
            .args([
                "analyze",
                "--images",
                "0,1,2,3,4,5,6,7",
                "--tap",
                "conv1",
                "--tap",
                "layer3.4.conv2",
                "--preset",
                "grid",
            ])
            .args([
                "--noise-sigma",
                "0.05",
                "--noise-seed",
                "3",
                "--permutations",
                "5",
                "--json",
                "--no-per-image",
                "--out",
            ])
            .arg(out)
            .env("FLICKERTAG_DATA", &d))
    };
    let (code, stdout, err) = analyze(&out);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["inference"]["path"]["path"], "full", "input noise disables folding");
    assert_eq!(s["snr"]["exclude_grid"], true);
    let st = &s["stats"];
    assert_eq!(st["tested_lines"].as_array().unwrap().len(), 6);
    let f = &st["layers"][0]["filters"][0];
    assert!(f["phase_p"].as_f64().unwrap() <= 1.0 && f["whiteness_p"].as_f64().unwrap() > 0.0);
    let sweep = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert!(sweep.starts_with("criterion,value,tap,count,jaccard_mean,jaccard_sd") && sweep.contains("\nq,0.05"));
    let filters = std::fs::read_to_string(out.join("filters.csv")).unwrap();
    assert!(filters.lines().next().unwrap().ends_with("selectivity,integration"));
    // The same seed gives the same numbers.
    let (_, again, _) = analyze(&dir.path().join("again"));
    let t: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(s["layers"], t["layers"]);
}

#[test]
#[ignore = "needs the data folder"]
fn per_neuron_maps_localise_each_tag_to_its_half() {
    let d = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, err) = run(flickertag()
        .args(["analyze", "--images", "0,1", "--tap", "conv1", "--maps", "conv1", "--no-stats", "--quiet", "--out"])
        .arg(&out)
        .env("FLICKERTAG_DATA", &d));
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(out.join("maps/conv1.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[16, 3, 32, 32]);
    let v: Vec<f64> = npy.into_vec().unwrap();
    // The stem conv sees 3x3 neighbourhoods: columns 0-14 only the left half (6 Hz),
    // columns 17-31 only the right half (7.5 Hz).
    let at = |c: usize, line: usize, y: usize, x: usize| v[((c * 3 + line) * 32 + y) * 32 + x];
    let mean = |line: usize, xs: std::ops::Range<usize>| {
        let mut sum = 0.0;
        let mut n = 0;
        for c in 0..16 {
            for y in 0..32 {
                for x in xs.clone() {
                    sum += at(c, line, y, x);
                    n += 1;
                }
            }
        }
        sum / n as f64
    };
    assert!(mean(0, 0..15) > 5.0 && mean(0, 17..32) < 0.5, "f1: left {} right {}", mean(0, 0..15), mean(0, 17..32));
    assert!(mean(1, 17..32) > 5.0 && mean(1, 0..15) < 0.5, "f2: right {} left {}", mean(1, 17..32), mean(1, 0..15));
    assert!(out.join("plots/map_conv1.png").is_file());
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("Per-neuron maps"));
}

#[test]
fn analysis_without_statistics_runs() {
    // Regression: with statistics off, the per-image line coefficients were indexed anyway.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.png");
    flickertag::data::synthetic_image(5, 32, 32).to_rgb8().save(&img).unwrap();
    let onnx = dir.path().join("demo.onnx");
    flickertag::model::demo_model(2).unwrap().save_onnx(&onnx).unwrap();
    let (code, _, err) = run(flickertag()
        .args([
            "analyze",
            "--model",
            onnx.to_str().unwrap(),
            "--image-file",
            img.to_str().unwrap(),
            "--no-stats",
            "--quiet",
            "--out",
        ])
        .arg(dir.path().join("run")));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn force_keeps_a_home_like_folder_and_a_run_with_added_notes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "secret").unwrap();
    std::fs::write(home.join("thesis.tex"), "chapter 1").unwrap();
    std::fs::write(home.join("summary.json"), "{}").unwrap();
    let analyze = |out: &std::path::Path| {
        let mut c = flickertag();
        c.args(["analyze", "--quiet", "--threads", "1", "--no-stats", "--force", "--out"]).arg(out);
        c.env_remove("FLICKERTAG_DATA").env("HOME", dir.path()).env("XDG_CACHE_HOME", dir.path());
        c
    };
    let (code, _, err) = run(&mut analyze(&home));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("files flickertag did not write") && err.contains("thesis.tex"), "{err}");
    assert_eq!(std::fs::read_to_string(home.join(".ssh/id_ed25519")).unwrap(), "secret");
    let out = dir.path().join("run");
    let (code, _, err) = run(&mut analyze(&out));
    assert_eq!(code, 0, "{err}");
    std::fs::write(out.join("notes.md"), "mine").unwrap();
    let (code, _, err) = run(&mut analyze(&out));
    assert!(code == 1 && err.contains("files were added to this run (notes.md)"), "{err}");
    let (code, _, err) = run(flickertag().arg("report").arg(&out));
    assert!(code == 1 && err.contains("notes.md"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("notes.md")).unwrap(), "mine");
    std::fs::remove_file(out.join("notes.md")).unwrap();
    let (code, _, err) = run(flickertag().arg("report").arg(&out));
    assert_eq!(code, 0, "{err}");
}
