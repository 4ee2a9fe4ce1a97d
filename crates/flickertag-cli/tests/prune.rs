//! Filter ablation on the pretrained ResNet-32.

mod common;
use common::data_dir;

use flickertag::analysis::{analyze, AnalysisConfig, ImageSpec, TapSelection};
use flickertag::data::{Cifar10, Split};
use flickertag::engine::{EngineConfig, Session};
use flickertag::evaluate;
use flickertag::model::TapKind;
use flickertag::model::{load_checkpoint, Model};
use flickertag::prune::curves::CriterionKind;
use flickertag::prune::experiment::{criteria, PruneConfig, ScoreAt};
use flickertag::prune::stats::point_statistics;
use flickertag::prune::{Ablation, Evaluator};

fn cfg() -> EngineConfig {
    EngineConfig { threads: 2, batch: 100, ..Default::default() }
}

#[test]
#[ignore = "needs the data folder"]
fn removing_no_filter_reproduces_the_accuracy_exactly() {
    // The first 1,000 test images: ../shared/data/README.md gives ResNet-32's 92.8 % on
    // exactly these (the whole test set is evaluated by tests/pretrained.rs).
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let first: Vec<usize> = (0..1000).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let mut e = Evaluator::new(&m, &data, &first, &cfg()).unwrap();
    let a = e.accuracy(&[], Ablation::Zero).unwrap();
    let plain = evaluate::evaluate(&m, &data, &first, &cfg(), |_| {}).unwrap();
    assert_eq!(a, plain);
    assert_eq!(a.correct, 928);
}

#[test]
#[ignore = "needs the data folder"]
fn removing_every_filter_of_the_stem_gives_chance() {
    // Every path to the output starts at the stem (the shortcuts carry the stem's
    // output forward), so with all 16 stem filters gone the logits are the same for
    // every image: one class is always predicted (all of its images right, none of
    // the others'). On the first 2,000 test images, every class is present.
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let all: Vec<usize> = (0..2000).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let mut e = Evaluator::new(&m, &data, &all, &cfg()).unwrap();
    assert_eq!(e.layers[0].tap, "conv1");
    let mut removed = vec![vec![]; e.layers.len()];
    removed[0] = (0..16).collect();
    let a = e.accuracy(&removed, Ablation::Zero).unwrap();
    let mut per = a.per_class.clone();
    per.sort_by(f64::total_cmp);
    assert_eq!(per, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0], "{:?}", a.per_class);
}

#[test]
#[ignore = "needs the data folder"]
fn ablated_logits_equal_zeroed_weights() {
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let idx: Vec<usize> = (0..300).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let mut e = Evaluator::new(&m, &data, &idx, &cfg()).unwrap();
    // Remove a few filters in several layers, block convs and the stem.
    let plan: Vec<(&str, Vec<usize>)> = vec![
        ("conv1", vec![3]),
        ("layer1.1.conv1", vec![0, 5, 9]),
        ("layer2.0.conv2", vec![1, 30]),
        ("layer3.4.conv2", (0..20).collect()),
    ];
    let mut removed = vec![vec![]; e.layers.len()];
    for (tap, ch) in &plan {
        let l = e.layers.iter().position(|x| x.tap == *tap).unwrap();
        removed[l] = ch.clone();
    }
    let ablated = e.logits(&removed, Ablation::Zero).unwrap();

    // Reference: the same network built from a checkpoint whose filters' conv weights
    // and BatchNorm γ, β are zeroed (the state dict as read, edited, built again).
    let mut sd = load_checkpoint(&d.join("models/resnet32-cifar10.th")).unwrap();
    for (tap, ch) in &plan {
        let bn = tap.replace("conv", "bn");
        for (name, per) in
            [(format!("{tap}.weight"), true), (format!("{bn}.weight"), false), (format!("{bn}.bias"), false)]
        {
            let t = sd.tensors.get_mut(&name).unwrap_or_else(|| panic!("{name}"));
            let stride = if per { t.data.len() / t.shape[0] } else { 1 };
            for &c in ch {
                t.data[c * stride..(c + 1) * stride].iter_mut().for_each(|x| *x = 0.0);
            }
        }
    }
    let r = Model::from_checkpoint(&sd, std::path::Path::new("zeroed.th"), "resnet32").unwrap();
    let mut s = Session::for_model(&r, &[], false, &cfg()).unwrap();
    let reference = evaluate::logits(&r, &mut s, &data, &idx, |_| {}).unwrap();
    let plain =
        evaluate::logits(&m, &mut Session::for_model(&m, &[], false, &cfg()).unwrap(), &data, &idx, |_| {}).unwrap();
    let worst = ablated.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let moved = plain.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 0.1, "the ablation must change the logits ({moved})");
    assert!(worst < 1e-4, "ablated vs zeroed weights: largest logit difference {worst}");
}

#[test]
#[ignore = "needs the data folder"]
fn mean_ablation_equals_a_batchnorm_that_outputs_the_channel_mean() {
    // Oracle: the network rebuilt from a checkpoint whose BatchNorm γ is 0 and β the
    // channel's mean for the removed filters outputs exactly that mean in the channel.
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let idx: Vec<usize> = (0..200).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let stats_images: Vec<usize> = (200..260).collect();
    let mut e = Evaluator::new(&m, &data, &idx, &cfg()).unwrap();
    let st = point_statistics(&m, &e.layers, &data, &stats_images, &cfg(), false).unwrap();
    e.set_means(st.mean.clone()).unwrap();
    let plan: Vec<(&str, Vec<usize>)> =
        vec![("conv1", vec![2, 7]), ("layer1.2.conv2", vec![0, 1, 15]), ("layer3.1.conv1", (10..40).collect())];
    let mut removed = vec![vec![]; e.layers.len()];
    let mut sd = load_checkpoint(&d.join("models/resnet32-cifar10.th")).unwrap();
    for (tap, ch) in &plan {
        let l = e.layers.iter().position(|x| x.tap == *tap).unwrap();
        removed[l] = ch.clone();
        let bn = tap.replace("conv", "bn");
        for &c in ch {
            sd.tensors.get_mut(&format!("{bn}.weight")).unwrap().data[c] = 0.0;
            sd.tensors.get_mut(&format!("{bn}.bias")).unwrap().data[c] = st.mean[l][c] as f32;
        }
    }
    let ablated = e.logits(&removed, Ablation::Mean).unwrap();
    let zeroed = e.logits(&removed, Ablation::Zero).unwrap();
    let r = Model::from_checkpoint(&sd, std::path::Path::new("mean.th"), "resnet32").unwrap();
    let reference =
        evaluate::logits(&r, &mut Session::for_model(&r, &[], false, &cfg()).unwrap(), &data, &idx, |_| {}).unwrap();
    let worst = ablated.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let apart = zeroed.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(apart > 0.1, "mean- and zero-ablation must differ ({apart})");
    assert!(worst < 1e-4, "mean-ablated vs BatchNorm set to the mean: largest logit difference {worst}");
}

#[test]
#[ignore = "needs the data folder"]
fn channel_means_and_magnitudes_match_the_tap_means_where_the_channels_are_consumed() {
    // The per-channel means where each channel is consumed, through the analysis's own
    // per-channel-mean outputs (checked against PyTorch hooks in the zoo tests).
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let idx: Vec<usize> = (0..40).collect();
    let e = Evaluator::new(&m, &data, &idx[..1], &cfg()).unwrap();
    let st = point_statistics(&m, &e.layers, &data, &idx, &cfg(), true).unwrap();
    let taps: Vec<_> = e.layers.iter().map(|l| m.tap(&l.point).unwrap()).collect();
    assert_eq!(taps[1].name, "layer1.0.relu1", "a block's first conv is ablated after the ReLU that reads it");
    assert_eq!(taps[2].name, "layer1.0.bn2", "a block's second conv is ablated at its BatchNorm (read by the Add)");
    let refs: Vec<_> = taps.iter().collect();
    let mut s = Session::for_model(&m, &refs, false, &cfg()).unwrap();
    let frames = evaluate::input_frames(&m, &data, &idx).unwrap();
    let outs = s.run(&frames, idx.len()).unwrap();
    for (l, o) in outs.iter().skip(1).enumerate() {
        let c = e.layers[l].channels;
        for ch in 0..c {
            let want = (0..idx.len()).map(|i| o.data[i * c + ch] as f64).sum::<f64>() / idx.len() as f64;
            assert!(
                (st.mean[l][ch] - want).abs() < 1e-4,
                "{} channel {ch}: {} vs {want}",
                taps[l].name,
                st.mean[l][ch]
            );
        }
    }
    let rank = st.rank.unwrap();
    for (l, layer) in e.layers.iter().enumerate() {
        let side = taps[l].chw[1].min(taps[l].chw[2]) as f64;
        assert!(
            rank[l].iter().all(|&r| (0.0..=side + 1e-6).contains(&r)),
            "{}: ranks within 0..={side}: {:?}",
            layer.tap,
            rank[l]
        );
        assert!(st.mean_abs[l].iter().zip(&st.mean[l]).all(|(a, m)| *a >= m.abs() - 1e-9));
    }
}

#[test]
#[ignore = "needs the data folder"]
fn frequency_tagging_scores_are_read_where_the_ablation_acts_after_the_relu_that_consumes_them() {
    // With score_at = ablation, prunable layer i is scored where the ablation acts:
    // the same scores as an analysis of the taps where each conv's channels are consumed.
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let e = Evaluator::new(&m, &data, &[0], &cfg()).unwrap();
    let mut analysis = AnalysisConfig { engine: cfg(), ..AnalysisConfig::default() };
    analysis.stats.enabled = false;
    let mut pc = PruneConfig {
        images: vec![0],
        fractions: vec![0.0],
        layer_fractions: vec![],
        layers: vec![],
        criteria: vec![CriterionKind::FtAuthors],
        random_seeds: 1,
        ablations: vec![Ablation::Zero],
        score_at: ScoreAt::Ablation,
        bootstrap: 0,
        bootstrap_seed: 0,
        analysis: analysis.clone(),
        analysis_images: vec![3, 10],
        activation_images: vec![],
        engine: cfg(),
    };
    let at = |pc: &PruneConfig| criteria(&m, &e, &data, None, pc).unwrap().remove(0).scores;
    let ablation = at(&pc);
    pc.score_at = ScoreAt::Conv;
    let conv = at(&pc);
    // Where each conv's channels are consumed, from the architecture: the stem's and
    // every block's first conv feed a ReLU alone (the ReLU output), a block's second conv
    // feeds the residual Add (its BatchNorm output).
    let consumed: Vec<String> = m
        .taps
        .iter()
        .filter(|t| t.kind == TapKind::Conv)
        .map(|t| match t.name.as_str() {
            "conv1" => "relu".to_string(),
            n if n.ends_with(".conv1") => n.replace(".conv1", ".relu1"),
            n => n.replace(".conv2", ".bn2"),
        })
        .collect();
    let reference = |kind: TapKind| {
        let mut a = analysis.clone();
        a.taps = match kind {
            TapKind::Act => TapSelection { kinds: vec![], names: consumed.clone() },
            _ => TapSelection { kinds: vec![kind], names: vec![] },
        };
        let specs: Vec<ImageSpec> =
            [3, 10].iter().map(|&i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: None }).collect();
        let r = analyze(&m, &a, &specs, &|s| Ok(data.image(s.index.unwrap())), &mut |_, _| {}).unwrap();
        r.layers.iter().map(|l| l.filters.iter().map(|f| f.mean_score).collect::<Vec<f64>>()).collect::<Vec<_>>()
    };
    // A channel that never fires has no score (NaN) on either side.
    let close = |a: &[Vec<f64>], b: &[Vec<f64>]| {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-9 || (x.is_nan() && y.is_nan()))
    };
    let consumed_scores = reference(TapKind::Act);
    assert!(close(&ablation, &consumed_scores), "ablation point = where the channel is consumed");
    assert!(!close(&ablation, &reference(TapKind::Norm)), "not the BatchNorm output of ReLU-fed convs");
    assert!(close(&conv, &reference(TapKind::Conv)), "conv = conv outputs");
    assert!(!close(&ablation, &conv), "the two places give different scores");
}

#[test]
#[ignore = "needs the data folder"]
fn auc_interval_of_the_unpruned_network_is_the_binomial_interval() {
    // With only fraction 0, every curve is the unpruned accuracy p on n images, and its
    // image-bootstrap interval must be the binomial one, p ± 1.96 · sqrt(p(1 - p) / n).
    let d = data_dir();
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let images: Vec<usize> = (0..400).collect();
    let cfg = PruneConfig {
        images: images.clone(),
        fractions: vec![0.0],
        layer_fractions: vec![],
        layers: vec![],
        criteria: vec![CriterionKind::WeightL1],
        random_seeds: 40,
        ablations: vec![Ablation::Zero],
        score_at: ScoreAt::Ablation,
        bootstrap: 4000,
        bootstrap_seed: 5,
        analysis: AnalysisConfig::default(),
        analysis_images: vec![],
        activation_images: vec![],
        engine: cfg(),
    };
    let r = flickertag::prune::experiment::run(&m, &data, None, &cfg, &mut |_, _| {}).unwrap();
    let p = r.base_top1 / 100.0;
    let half = 100.0 * 1.96 * (p * (1.0 - p) / images.len() as f64).sqrt();
    assert!(half > 2.0, "{half}");
    for v in &r.verdicts {
        assert_eq!(v.auc, r.base_top1);
        for (lo, hi) in [(v.auc_ci_low, v.auc_ci_high), (v.random_mean_ci_low, v.random_mean_ci_high)] {
            assert!((lo - (r.base_top1 - half)).abs() < 0.5, "{lo} vs {}", r.base_top1 - half);
            assert!((hi - (r.base_top1 + half)).abs() < 0.5, "{hi} vs {}", r.base_top1 + half);
        }
        assert_eq!(v.random_seeds, 40);
    }
}
