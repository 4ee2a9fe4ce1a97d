//! Class activation maps (`flickertag cam`) on the pretrained CIFAR ResNets: the
//! localisation canvases, and the channel weights against exact maths of the network's
//! head (global average pool, then a linear layer).

mod common;
use common::{data_dir, flickertag};

use flickertag::cam::localisation::{cases, render, Background};
use flickertag::data::{Cifar10, Split};
use flickertag::model::{load_checkpoint, Model};
use flickertag::run::cam::CamOptions;

#[test]
#[ignore = "needs the data folder"]
fn a_canvas_holds_the_object_in_its_box_and_the_background_tiles_elsewhere() {
    let d = data_dir();
    let test = Cifar10::load(&d, Split::Test).unwrap();
    let pool: Vec<usize> = (0..10_000).collect();
    let cs = cases(&test, &pool, 20, 64, Background::Mosaic, 3).unwrap();
    for c in &cs {
        assert_eq!(c.background.len(), 4);
        assert!(c.background.iter().all(|&b| test.label(b) != c.label && b != c.image));
        assert!(c.x <= 32 && c.y <= 32);
        let img = render(&test, c, 64, Background::Mosaic);
        let obj = test.image(c.image);
        for ch in 0..3 {
            for r in 0..64 {
                for q in 0..64 {
                    let got = img.pixels[ch * 4096 + r * 64 + q];
                    let want = if (c.y..c.y + 32).contains(&r) && (c.x..c.x + 32).contains(&q) {
                        obj.pixels[ch * 1024 + (r - c.y) * 32 + (q - c.x)]
                    } else {
                        // Tiles row-major: tile (r / 32, q / 32), pixel (r % 32, q % 32).
                        test.image(c.background[(r / 32) * 2 + q / 32]).pixels[ch * 1024 + (r % 32) * 32 + q % 32]
                    };
                    assert_eq!(got, want, "case {c:?} channel {ch} pixel ({r}, {q})");
                }
            }
        }
    }
    // Upscaled: one other image enlarged 2x with half-pixel centres, so canvas pixel
    // (2i + 1, 2j + 1) mixes source pixels (i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)
    // with weights 9/16, 3/16, 3/16, 1/16.
    for c in cases(&test, &pool, 10, 64, Background::Upscaled, 3).unwrap() {
        assert_eq!(c.background.len(), 1);
        let img = render(&test, &c, 64, Background::Upscaled);
        let bg = test.image(c.background[0]);
        let (i, j) = if c.y >= 8 { (1, 1) } else { (28, 28) }; // outside the box
        if c.in_box(2 * i + 1, 2 * j + 1) {
            continue;
        }
        for ch in 0..3 {
            let p = |r: usize, q: usize| bg.pixels[ch * 1024 + r * 32 + q] as f64;
            let want = (9.0 * p(i, j) + 3.0 * p(i, j + 1) + 3.0 * p(i + 1, j) + p(i + 1, j + 1)) / 16.0;
            let got = img.pixels[ch * 4096 + (2 * i + 1) * 64 + 2 * j + 1] as f64;
            assert!((got - want).abs() < 1e-6, "case {c:?}: {got} vs {want}");
        }
    }
    // The same seed draws the same cases; another seed others.
    assert_eq!(cs, cases(&test, &pool, 20, 64, Background::Mosaic, 3).unwrap());
    assert_ne!(cs, cases(&test, &pool, 20, 64, Background::Mosaic, 4).unwrap());
}

#[test]
#[ignore = "needs the data folder"]
fn ablation_cam_weights_at_the_last_block_are_the_head_weights_times_the_pooled_channel() {
    // At the tap the global average pool reads, the logit is y = Σ_k W[y, k] · mean(A_k)
    // + b_y, so zeroing channel k lowers it by exactly W[y, k] · mean(A_k) ≥ 0 times the
    // sign of W[y, k] (post-ReLU maps have mean ≥ 0), and the weights sum to y − b_y.
    let d = data_dir();
    let m = Model::load("resnet20", Some(&d)).unwrap();
    let opts = CamOptions {
        n_cases: 4,
        methods: vec!["ablation-cam".into(), "score-cam".into()],
        steps: 4,
        keep_maps: 4,
        bootstrap: 50,
        threads: 2,
        ..CamOptions::default()
    };
    let run = opts.run(&m, &d, &mut |_, _| {}).unwrap();
    let r = &run.result;
    assert_eq!(r.layer, "layer3.2.relu2");
    assert_eq!(r.map_size, [16, 16], "a 64 x 64 canvas gives 16 x 16 maps at stride 4");
    let sd = load_checkpoint(&d.join("models/resnet20-cifar10.th")).unwrap();
    let w = &sd.tensors["linear.weight"].data;
    let b = &sd.tensors["linear.bias"].data;
    for k in &r.kept {
        let y = r.config.cases[k.case].label as usize;
        let ablation = &k.weights[0];
        let sum: f64 = ablation.iter().sum();
        let want = k.logits[y] as f64 - b[y] as f64;
        assert!((sum - want).abs() < 1e-3 * want.abs().max(1.0), "case {}: Σ w = {sum}, y − b = {want}", k.case);
        for (c, &v) in ablation.iter().enumerate() {
            let head = w[y * 64 + c] as f64;
            assert!(v * head >= -1e-4, "case {} channel {c}: weight {v} against head weight {head}", k.case);
        }
        // Score-CAM weights are probabilities (0 for a constant map).
        assert!(k.weights[1].iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(k.weights[1].iter().any(|&p| p > 0.0));
    }
    // Every comparison is paired: its means are those of the two sets' columns of the
    // per-case metrics, and its difference is theirs.
    let sets = flickertag::cam::SETS;
    assert_eq!(r.comparisons.len(), 2 * 4 * 4, "2 methods x (3 sets against all + tagging against random) x 4");
    for c in &r.comparisons {
        let mi = r.config.method_names().iter().position(|n| *n == c.method).unwrap();
        let metric = flickertag::cam::metrics::METRICS.iter().position(|n| *n == c.metric).unwrap();
        let mean_of = |set: &str| {
            let si = sets.iter().position(|s| *s == set).unwrap();
            r.outcomes.iter().map(|o| o.metrics[mi][si][metric]).sum::<f64>() / r.outcomes.len() as f64
        };
        assert!((c.control - mean_of(&c.against)).abs() < 1e-12 && (c.mean - mean_of(&c.set)).abs() < 1e-12);
        assert!((c.difference - (c.mean - c.control)).abs() < 1e-12);
        assert!(c.against == "all" || (c.set == "tagging" && c.against == "random"));
    }
}

#[test]
#[ignore = "needs the data folder"]
fn cam_writes_its_run_folder_and_refuses_what_it_cannot_run() {
    let d = data_dir();
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("cam");
    let o = flickertag()
        .args(["cam", "--model", "resnet56", "--n-cases", "3", "--steps", "2", "--methods", "eigencam"])
        .args(["--bootstrap", "20", "--keep-maps", "2", "--threads", "2", "--out"])
        .arg(&folder)
        .env("FLICKERTAG_DATA", &d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["cam.json", "cam_cases.csv", "cam_metrics.csv", "cam_comparison.csv", "cam_channels.csv", "report.html"] {
        assert!(folder.join(f).is_file(), "{f}");
    }
    assert!(folder.join("plots/cam_grid.png").is_file());
    // `flickertag report` redraws analyze runs; on a cam run it says what the folder is.
    let o = flickertag().arg("report").arg(&folder).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("a `flickertag cam` run"), "{err}");
    let metrics = std::fs::read_to_string(folder.join("cam_metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 3 * 4, "3 cases x 4 sets of one method");
    for (args, needle) in [
        (vec!["--k", "64"], "invalid --k: 1..64"),
        (vec!["--criterion", "weight_l1"], "criterion"),
        (vec!["--methods", "grad-cam"], "score-cam, ablation-cam or eigencam"),
        (vec!["--canvas", "32"], "canvas"),
        (vec!["--layer", "linear"], "layer"),
        (vec!["--background", "noise"], "mosaic or upscaled"),
        (vec!["--bootstrap", "0"], "every verdict needs its interval"),
    ] {
        let o = flickertag()
            .args(["cam", "--model", "resnet20", "--n-cases", "3"])
            .args(&args)
            .arg("--out")
            .arg(out.path().join("refused"))
            .env("FLICKERTAG_DATA", &d)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{args:?}: {err}");
        assert!(!out.path().join("refused").exists(), "{args:?}: nothing written");
    }
}
