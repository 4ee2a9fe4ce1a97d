//! Filter ablation on the pretrained ResNet-32.

mod common;
use common::data_dir;

use freqtag::data::{Cifar10, Split};
use freqtag::engine::{EngineConfig, Session};
use freqtag::evaluate;
use freqtag::model::{load_checkpoint, Model};
use freqtag::prune::Evaluator;

fn cfg() -> EngineConfig {
    EngineConfig { threads: 2, batch: 100, ..Default::default() }
}

#[test]
fn removing_no_filter_reproduces_the_accuracy_exactly() {
    let Some(d) = data_dir() else { return };
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let all: Vec<usize> = (0..data.len()).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let mut e = Evaluator::new(&m, &data, &all, &cfg()).unwrap();
    let a = e.accuracy(&[]).unwrap();
    let plain = evaluate::evaluate(&m, &data, &all, &cfg(), |_| {}).unwrap();
    assert_eq!(a, plain);
    assert_eq!(a.correct, 9263);
}

#[test]
fn removing_every_filter_of_the_stem_gives_chance() {
    // Every path to the output starts at the stem (the shortcuts carry the stem's
    // output forward), so with all 16 stem filters gone the logits are the same for
    // every image: one class is always predicted, 1,000 of 10,000 right.
    let Some(d) = data_dir() else { return };
    let data = Cifar10::load(&d, Split::Test).unwrap();
    let all: Vec<usize> = (0..data.len()).collect();
    let m = Model::load("resnet32", Some(&d)).unwrap();
    let mut e = Evaluator::new(&m, &data, &all, &cfg()).unwrap();
    assert_eq!(e.layers[0].tap, "conv1");
    let mut removed = vec![vec![]; e.layers.len()];
    removed[0] = (0..16).collect();
    let a = e.accuracy(&removed).unwrap();
    assert!((a.top1 - 10.0).abs() < 1e-9, "{}", a.top1);
}

#[test]
fn ablated_logits_equal_zeroed_weights() {
    let Some(d) = data_dir() else { return };
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
    let ablated = e.logits(&removed).unwrap();

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
