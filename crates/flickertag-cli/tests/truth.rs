//! The ground truth of filter importance (`importance-truth`) and the HRank point, on
//! the pretrained CIFAR ResNets.

mod common;
use common::{data_dir, flickertag};

use flickertag::data::{Cifar10, Split};
use flickertag::engine::{EngineConfig, Session};
use flickertag::evaluate;
use flickertag::model::{load_checkpoint, Model};
use flickertag::prune::stats::point_statistics;
use flickertag::prune::truth::{run, TRUTH_CRITERIA};
use flickertag::prune::Evaluator;
use flickertag::run::truth::TruthOptions;

fn cfg() -> EngineConfig {
    EngineConfig { threads: 2, batch: 100, ..Default::default() }
}

/// Mean cross-entropy (nats) and top-1 (%) of logits `[n, 10]`, written out here rather
/// than taken from flickertag.
fn loss_and_top1(logits: &[f32], labels: &[u8]) -> (f64, f64) {
    let (mut loss, mut hits) = (0.0, 0usize);
    for (row, &y) in logits.chunks(10).zip(labels) {
        let z: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        loss += m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - z[y as usize];
        let best = (0..10).max_by(|&a, &b| z[a].partial_cmp(&z[b]).unwrap().then(b.cmp(&a))).unwrap();
        hits += (best == y as usize) as usize;
    }
    (loss / labels.len() as f64, 100.0 * hits as f64 / labels.len() as f64)
}

/// The data folder's ResNet-20 with the BatchNorm `bn`'s channels `filters` set to
/// output 0 (γ = β = 0): the oracle of an ablation, rebuilt as a plain model.
fn resnet20_without(d: &std::path::Path, bn: &str, filters: &[usize]) -> Model {
    let mut sd = load_checkpoint(&d.join("models/resnet20-cifar10.th")).unwrap();
    for &f in filters {
        sd.tensors.get_mut(&format!("{bn}.weight")).unwrap().data[f] = 0.0;
        sd.tensors.get_mut(&format!("{bn}.bias")).unwrap().data[f] = 0.0;
    }
    Model::from_checkpoint(&sd, std::path::Path::new("pruned.th"), "resnet20").unwrap()
}

#[test]
#[ignore = "needs the data folder"]
fn single_filter_truth_equals_the_network_rebuilt_without_that_filter() {
    // Oracle: the checkpoint with the filter's BatchNorm channel set to output 0 (γ = β = 0),
    // rebuilt and evaluated as a plain model; its loss and accuracy against the intact one.
    let d = data_dir();
    let test = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet20", Some(&d)).unwrap();
    let opts = TruthOptions {
        n_images: 300,
        statistics_images: 200,
        layers: vec!["layer1.0.conv1".into(), "layer2.1.conv2".into()],
        bootstrap: 100,
        threads: 2,
        ..TruthOptions::default()
    };
    let c = opts.config(&test).unwrap();
    assert!(c.images.iter().all(|i| *i < 9800 && !c.analysis_images.contains(i)), "disjoint image sets");
    let r = run(&m, &test, &c, &mut |_, _| {}).unwrap();
    assert_eq!(r.filters.len(), 16 + 32);
    let labels: Vec<u8> = c.images.iter().map(|&i| test.label(i)).collect();
    let eval = |model: &Model| {
        let mut s = Session::for_model(model, &[], false, &cfg()).unwrap();
        loss_and_top1(&evaluate::logits(model, &mut s, &test, &c.images, |_| {}).unwrap(), &labels)
    };
    let (base_loss, base_top1) = eval(&m);
    assert!((r.base_loss - base_loss).abs() < 1e-5 && (r.base_top1 - base_top1).abs() < 1e-9);
    for (layer, bn, filter) in [("layer1.0.conv1", "layer1.0.bn1", 5), ("layer2.1.conv2", "layer2.1.bn2", 17)] {
        let (loss, top1) = eval(&resnet20_without(&d, bn, &[filter]));
        let f = r.filters.iter().find(|f| f.layer == layer && f.filter == filter).unwrap();
        assert!(
            (f.delta_loss - (loss - base_loss)).abs() < 1e-4,
            "{layer}/{filter}: {} vs {}",
            f.delta_loss,
            loss - base_loss
        );
        assert!(
            (f.delta_top1 - (base_top1 - top1)).abs() < 1e-9,
            "{layer}/{filter}: {} vs {}",
            f.delta_top1,
            base_top1 - top1
        );
        assert!(f.delta_loss.abs() > 1e-4, "the ablation changes the loss");
    }
    // Every criterion and both truths, per layer and pooled, and the reliability rows.
    assert_eq!(r.correlations.len(), 3 * 2 * (TRUTH_CRITERIA.len() + 1));
    for x in r.correlations.iter().filter(|x| x.criterion != "reliability") {
        assert!(x.rho.is_finite() && (-1.0..=1.0).contains(&x.rho), "{x:?}");
        assert!(x.ci_low <= x.ci_high, "{x:?}");
    }
}

#[test]
#[ignore = "needs the data folder"]
fn truth_refuses_evaluation_images_a_statistic_saw() {
    let d = data_dir();
    let test = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet20", Some(&d)).unwrap();
    let mut c = TruthOptions { n_images: 50, statistics_images: 100, ..TruthOptions::default() }.config(&test).unwrap();
    c.statistics_images.push(c.images[3]);
    let e = run(&m, &test, &c, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("statistics-images") && e.contains(&c.images[3].to_string()), "{e}");
    // And through the command line: analysis images inside the held-out statistics images.
    let out = flickertag()
        .args(["importance-truth", "--model", "resnet20", "--statistics-images", "1000", "--analysis-images", "9500"])
        .env("FLICKERTAG_DATA", &d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("analysis-images") && err.contains("9500"), "{err}");
}

#[test]
#[ignore = "needs the data folder"]
fn hrank_ranks_post_relu_maps_and_its_scores_vary_across_filters() {
    // HRank's code ranks the maps after the ReLU (after the residual addition in a
    // block's second conv). The BatchNorm outputs almost always have full rank, so
    // there the scores tie and fall back to channel order.
    let d = data_dir();
    let test = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let e = Evaluator::new(&m, &test, &[0], &cfg()).unwrap();
    let by_tap = |t: &str| e.layers.iter().find(|l| l.tap == t).unwrap();
    assert_eq!(by_tap("conv1").rank_point, "relu");
    assert_eq!(by_tap("layer1.0.conv1").rank_point, "layer1.0.relu1");
    assert_eq!(by_tap("layer1.0.conv2").rank_point, "layer1.0.relu2");
    assert_eq!(by_tap("layer3.4.conv2").rank_point, "layer3.4.relu2");
    let idx: Vec<usize> = (9000..9040).collect();
    let st = point_statistics(&m, &e.layers, &test, &idx, &cfg(), true).unwrap();
    let rank = st.rank.unwrap();
    let mut many = 0;
    for (l, layer) in e.layers.iter().enumerate() {
        // The ranks without the tie-breaking jitter (below 1e-9).
        let r: Vec<f64> = rank[l].iter().map(|x| (x * 1e6).round() / 1e6).collect();
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / r.len() as f64).sqrt();
        assert!(sd > 0.0, "{}: every filter has the same mean rank {mean}", layer.tap);
        let mut distinct = r.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        many += (distinct.len() > 3) as usize;
        let mut jittered = rank[l].clone();
        jittered.sort_by(f64::total_cmp);
        jittered.dedup();
        assert_eq!(jittered.len(), r.len(), "{}: ties are broken", layer.tap);
    }
    eprintln!("{many} of {} layers have more than 3 distinct mean ranks", e.layers.len());
    // At the BatchNorm outputs 29 of the 31 layers had at most 3 distinct mean ranks.
    assert!(many >= 20, "{many} of {} layers have more than 3 distinct mean ranks", e.layers.len());
}

#[test]
#[ignore = "needs the data folder"]
fn crossval_ablation_is_the_network_rebuilt_without_the_set_chosen_on_the_other_half() {
    // Oracles: (1) the set of a layer is the filters whose mean `authors` score over half
    // A (an analysis of A's images alone) exceeds A's threshold; (2) its loss change on
    // B's images equals the checkpoint rebuilt with those BatchNorm channels set to
    // output 0 (γ = β = 0), evaluated as a plain model, against the intact one.
    let d = data_dir();
    let test = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet20", Some(&d)).unwrap();
    let analysis: Vec<usize> = (0..20).collect();
    let opts = TruthOptions {
        n_images: 20,
        statistics_images: 200,
        analysis_images: analysis.clone(),
        layers: vec!["layer1.0.conv1".into(), "layer3.2.conv2".into()],
        bootstrap: 0,
        crossval_splits: 2,
        crossval_random: 4,
        threads: 2,
        ..TruthOptions::default()
    };
    let c = opts.config(&test).unwrap();
    let r = run(&m, &test, &c, &mut |_, _| {}).unwrap();
    let cv = r.crossval.as_ref().expect("asked for");
    assert_eq!(cv.splits.len(), 2);
    let e = Evaluator::new(&m, &test, &[0], &cfg()).unwrap();
    let eval = |model: &Model, images: &[usize]| {
        let labels: Vec<u8> = images.iter().map(|&i| test.label(i)).collect();
        let mut s = Session::for_model(model, &[], false, &cfg()).unwrap();
        loss_and_top1(&evaluate::logits(model, &mut s, &test, images, |_| {}).unwrap(), &labels).0
    };
    let mut compared = 0;
    for split in &cv.splits {
        assert_eq!(split.images_b.len(), 10);
        let half_a: Vec<usize> = analysis.iter().copied().filter(|i| !split.images_b.contains(i)).collect();
        let base = eval(&m, &split.images_b);
        for (row, (tap, bn)) in
            split.layers.iter().zip([("layer1.0.conv1", "layer1.0.bn1"), ("layer3.2.conv2", "layer3.2.bn2")])
        {
            assert_eq!(row.layer, tap);
            let layer = e.layers.iter().find(|l| l.tap == tap).unwrap();
            let ft = flickertag::prune::experiment::tagging_scores(
                &m,
                &[(layer.point.clone(), layer.channels)],
                &test,
                &c.analysis,
                &half_a,
                &[flickertag::prune::curves::CriterionKind::FtAuthors],
            )
            .unwrap();
            // The threshold is a quantile of A's means, so one filter's mean can be the
            // threshold itself: within rounding (1e-9) it may fall either way.
            let mean = |f: usize| ft.criteria[0].scores[0][f];
            for f in 0..layer.channels {
                if (mean(f) - split.threshold).abs() > 1e-9 {
                    assert_eq!(
                        row.set.contains(&f),
                        mean(f) > split.threshold,
                        "split {} {tap} filter {f}",
                        split.split
                    );
                }
            }
            if row.set.is_empty() {
                continue;
            }
            let want = eval(&resnet20_without(&d, bn, &row.set), &split.images_b) - base;
            assert!((row.delta_loss - want).abs() < 1e-4, "{tap}: {} vs {want}", row.delta_loss);
            if row.compared() {
                compared += 1;
                assert!(row.random_sd >= 0.0 && row.p_value > 0.0 && row.p_value <= 1.0, "{row:?}");
            }
        }
    }
    assert!(compared > 0, "some set was compared with random sets");
    // The run folder's table holds every split and layer, and the summary names the result.
    let tr = flickertag::run::truth::TruthRun { result: r };
    let csv = tr.tables().into_iter().find(|(n, _)| *n == "crossval_ablation.csv").unwrap().1;
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 1 + 2 * 2);
    assert!(tr.summary().contains("cross-validated ablation (2 splits of the 20 analysis images"));
}
