//! Known answers of the paradigms beyond part-based luminance flicker: colour and
//! contrast tagging on networks whose response follows from exact maths.

mod common;
use common::{node, onnx_values};

use flickertag::analysis::{analyze, Analysis, AnalysisConfig, Fold, ImageSpec, TapSelection};
use flickertag::data::Image;
use flickertag::model::{Model, TapKind};
use flickertag::stimulus::{Layout, Modulation, StimulusConfig};

const MEAN: [f32; 3] = [0.5, 0.4, 0.3];
const STD: [f32; 3] = [0.2, 0.25, 0.3];

/// A 1 x 1 convolution with three filters on the pixel values (the input is normalized
/// with [`MEAN`]/[`STD`], so each weight is scaled by its channel's std): BT.601 luma,
/// `R - G` and `B - (R + G) / 2`, the axes of the documented opponent space, written
/// here from their definitions.
fn opponent_bank(dir: &std::path::Path) -> Model {
    let axes = [[0.299f32, 0.587, 0.114], [1.0, -1.0, 0.0], [-0.5, -0.5, 1.0]];
    let w: Vec<f32> = axes.iter().flat_map(|a| (0..3).map(move |c| a[c] * STD[c])).collect();
    let bytes = onnx_values(
        &[0, 3, 8, 8],
        vec![node("Conv", "/bank/Conv", &["input", "w"], "output")],
        &[("w", &[3, 3, 1, 1], w)],
    );
    let path = dir.join("bank.onnx");
    std::fs::write(&path, bytes).unwrap();
    let mut m = Model::load(path.to_str().unwrap(), None).unwrap();
    m.set_preprocess(Some(&MEAN), Some(&STD), None, None).unwrap();
    m
}

/// Seeded colourful 8 x 8 images (a small LCG: the values need only be varied).
fn images(n: usize) -> (Vec<ImageSpec>, impl Fn(&ImageSpec) -> flickertag::Result<Image>) {
    let specs = (0..n).map(|i| ImageSpec { name: format!("img{i}"), index: Some(i), label: None }).collect();
    let load = |s: &ImageSpec| {
        let mut x = 12345u64 + s.index.unwrap() as u64 * 7919;
        let pixels = (0..3 * 64)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        Ok(Image { height: 8, width: 8, pixels, label: None })
    };
    (specs, load)
}

fn run(m: &Model, stimulus: StimulusConfig) -> Analysis {
    let mut cfg = AnalysisConfig {
        stimulus,
        taps: TapSelection { kinds: vec![TapKind::Conv], names: vec![] },
        fold: Fold::Auto,
        ..Default::default()
    };
    cfg.engine.threads = 1;
    cfg.stats.enabled = false;
    let (specs, load) = images(3);
    analyze(m, &cfg, &specs, &load, &mut |_, _| {}).unwrap()
}

/// Mean amplitude at `bin` of each of the bank's three filters.
fn at(a: &Analysis, bin: usize) -> [f64; 3] {
    std::array::from_fn(|ch| a.mean_amplitude[0][ch][bin])
}

#[test]
fn an_isoluminant_flicker_gives_no_response_at_the_tag_in_a_luminance_filter() {
    let dir = tempfile::tempdir().unwrap();
    let m = opponent_bank(dir.path());
    let stim = |modulation, domain| StimulusConfig {
        layout: Layout::Whole,
        freqs: vec![6.0],
        modulation,
        domain,
        ..Default::default()
    };
    use flickertag::stimulus::Domain::{Normalized, Raw};
    for domain in [Normalized, Raw] {
        // Each opponent modulation drives its own axis and leaves the other two flat:
        // the luma filter sees nothing of a red-green or blue-yellow tag.
        for (k, modulation) in
            [Modulation::Luminance, Modulation::RedGreen, Modulation::BlueYellow].into_iter().enumerate()
        {
            let amp = at(&run(&m, stim(modulation, domain)), 12);
            assert!(amp[k] > 1e-3, "{modulation} ({domain}): own axis {amp:?}");
            for j in (0..3).filter(|&j| j != k) {
                assert!(amp[j] < 1e-6 * amp[k], "{modulation} ({domain}): axis {j} responds {amp:?}");
            }
        }
        // The paper's modulation and a single channel drive all three.
        for modulation in [Modulation::All, Modulation::Channel(1)] {
            let amp = at(&run(&m, stim(modulation, domain)), 12);
            assert!(amp.iter().all(|&x| x > 1e-3), "{modulation} ({domain}): {amp:?}");
        }
    }
}

#[test]
fn a_linear_filter_answers_in_proportion_to_the_modulation_depth() {
    let dir = tempfile::tempdir().unwrap();
    let m = opponent_bank(dir.path());
    let base = StimulusConfig { layout: Layout::Whole, freqs: vec![6.0], ..Default::default() };
    let full = at(&run(&m, base.clone()), 12);
    for depth in [0.0f32, 0.25, 0.5] {
        let a = run(&m, StimulusConfig { depth, ..base.clone() });
        let amp = at(&a, 12);
        for ch in 0..3 {
            let want = depth as f64 * full[ch];
            assert!((amp[ch] - want).abs() <= 1e-5 * full[ch], "depth {depth}, filter {ch}: {} vs {want}", amp[ch]);
        }
        // The mean input is the same at every depth: DC does not move.
        for ch in 0..3 {
            let dc = a.mean_amplitude[0][ch][0];
            let dc_full = run(&m, base.clone()).mean_amplitude[0][ch][0];
            assert!((dc - dc_full).abs() <= 1e-5 * dc_full.abs().max(1.0), "depth {depth}: DC {dc} vs {dc_full}");
        }
    }
}
