//! Known answers of frequency tagging on the real pretrained ResNet-32: the weights and
//! the paper's ten test images (the first CIFAR-10 test image of each class) embedded in
//! flickertag, so these tests run everywhere, with or without the data folder.

use flickertag::analysis::{analyze, Analysis, AnalysisConfig, Fold, TapSelection};
use flickertag::model::{Model, TapKind};
use flickertag::stimulus::{Layout, StimulusConfig};

fn run(cfg: AnalysisConfig, n_images: usize) -> Analysis {
    let m = Model::load("resnet32", None).unwrap();
    let (specs, load) = flickertag::run::embedded_images();
    analyze(&m, &cfg, &specs[..n_images], &*load, &mut |_, _| {}).unwrap()
}

fn cfg(kinds: Vec<TapKind>, fold: Fold) -> AnalysisConfig {
    let mut c = AnalysisConfig { taps: TapSelection { kinds, names: vec![] }, fold, ..Default::default() };
    c.engine.threads = 2;
    c
}

/// Bins (excluding DC) whose amplitude exceeds `rel` of the spectrum's largest non-DC line.
fn bins_above(spec: &[f64], rel: f64) -> Vec<usize> {
    let max = spec[1..].iter().cloned().fold(0.0, f64::max);
    (1..spec.len()).filter(|&k| spec[k] > rel * max).collect()
}

/// Largest `|x - r|` over one tap's spectra `[channel][bin]`, relative to each channel's
/// largest line in the reference `r`.
fn worst_rel(x: &[Vec<f64>], r: &[Vec<f64>]) -> f64 {
    let mut worst: f64 = 0.0;
    for (xs, rs) in x.iter().zip(r) {
        let max = rs.iter().cloned().fold(0.0, f64::max);
        for (a, b) in xs.iter().zip(rs) {
            worst = worst.max((a - b).abs() / max);
        }
    }
    worst
}

#[test]
fn stem_conv_responds_only_at_the_tag_frequencies() {
    // Unfolded, so that the absence of other lines is measured, not built in.
    let a = run(cfg(vec![TapKind::Conv], Fold::Never), 3);
    assert_eq!(a.taps[0].tap.name, "conv1");
    let per = a.per_image.as_ref().unwrap();
    let nb = 121;
    for img in 0..3 {
        for ch in 0..16 {
            let off = (img * per.rows + ch) * nb;
            let spec: Vec<f64> = per.amplitude[off..off + nb].iter().map(|&x| x as f64).collect();
            // The largest line includes DC: float32 rounding in a conv whose spatial mean is
            // small next to its values leaves ~1e-5 of the 7.5 Hz line at Nyquist in weak
            // channels (channel 11: 7e-8 against 5e-3), but stays below 1e-5 of DC.
            let max = spec.iter().cloned().fold(0.0, f64::max);
            let other: Vec<usize> = (1..nb).filter(|&k| k != 12 && k != 15 && spec[k] > 1e-5 * max).collect();
            assert!(other.is_empty(), "image {img} channel {ch}: energy at bins {other:?}");
            assert!(spec[12] > 1e-3 * max && spec[15] > 1e-3 * max, "image {img} channel {ch}: tag lines missing");
        }
    }
}

#[test]
fn relu_creates_harmonics_and_both_tags_create_intermodulation() {
    let a = run(cfg(vec![TapKind::Act], Fold::Never), 3);
    let mean_rel = |tap: usize, bin: usize| -> f64 {
        let chans = &a.mean_amplitude[tap];
        chans.iter().map(|s| s[bin] / s[1..].iter().cloned().fold(1e-30, f64::max)).sum::<f64>() / chans.len() as f64
    };
    // Stem ReLU: harmonics 2f1 = 12 Hz (bin 24) and 2f2 = 15 Hz (bin 30) clearly present.
    assert_eq!(a.taps[0].tap.name, "relu");
    assert!(mean_rel(0, 24) > 1e-3 && mean_rel(0, 30) > 1e-3, "{} {}", mean_rel(0, 24), mean_rel(0, 30));
    // Deep layers integrate both halves: f2-f1 = 1.5 Hz (bin 3) and f1+f2 = 13.5 Hz (bin 27).
    let deep = a.taps.iter().position(|t| t.tap.name == "layer3.4.relu2").unwrap();
    assert!(mean_rel(deep, 3) > 1e-2 && mean_rel(deep, 27) > 1e-2, "{} {}", mean_rel(deep, 3), mean_rel(deep, 27));
}

#[test]
fn single_tagged_region_gives_no_intermodulation_anywhere() {
    let mut c = cfg(vec![TapKind::Conv, TapKind::Norm, TapKind::Act, TapKind::Add], Fold::Never);
    c.stimulus = StimulusConfig { layout: Layout::Left, freqs: vec![6.0], ..Default::default() };
    let a = run(c, 2);
    for (t, tap) in a.taps.iter().enumerate() {
        for (ch, spec) in a.mean_amplitude[t].iter().enumerate() {
            let off: Vec<usize> = bins_above(spec, 1e-4).into_iter().filter(|k| k % 12 != 0).collect();
            assert!(off.is_empty(), "{} channel {ch}: lines off the 6 Hz harmonics at bins {off:?}", tap.tap.name);
        }
    }
}

#[test]
fn folded_and_unfolded_spectra_agree() {
    let kinds = vec![TapKind::Conv, TapKind::Act];
    let f = run(cfg(kinds.clone(), Fold::Auto), 2);
    let u = run(cfg(kinds, Fold::Never), 2);
    assert_eq!(f.path, flickertag::analysis::InferencePath::Folded { period: 80, distinct: 49 });
    assert_eq!(u.path, flickertag::analysis::InferencePath::Full);
    let worst = f.mean_amplitude.iter().zip(&u.mean_amplitude).map(|(x, r)| worst_rel(x, r)).fold(0.0, f64::max);
    assert!(worst < 1e-6, "folded vs unfolded: worst relative difference {worst:e}");
}

#[test]
fn batchnorm_means_derived_from_conv_means_match_the_network() {
    // With conv taps recorded, BatchNorm means are derived by the affine map; alone,
    // the network computes them. The spectra must agree.
    let both = run(cfg(vec![TapKind::Conv, TapKind::Norm], Fold::Auto), 2);
    let bn_only = run(cfg(vec![TapKind::Norm], Fold::Auto), 2);
    let mut worst: f64 = 0.0;
    for (t, tap) in bn_only.taps.iter().enumerate() {
        let u = both.taps.iter().position(|x| x.tap.name == tap.tap.name).unwrap();
        worst = worst.max(worst_rel(&both.mean_amplitude[u], &bn_only.mean_amplitude[t]));
    }
    // Both are float32 results of different computations (ONNX Runtime folds the
    // BatchNorm into the conv weights): they agree to rounding, 1.4e-5 measured.
    assert!(worst < 1e-4, "derived vs computed BatchNorm spectra: worst relative difference {worst:e}");
}

#[test]
fn per_image_spectra_are_in_tap_order_and_average_to_the_mean_spectrum() {
    // Taps of different widths (16, 32, 64 channels) are processed on two threads and
    // reassembled; each image's block must land in tap order, NaN-padded to 64.
    let mut c = cfg(vec![TapKind::Conv, TapKind::Act], Fold::Auto);
    c.keep_per_image = true;
    let a = run(c, 3);
    let per = a.per_image.as_ref().unwrap();
    let (rows, nb) = (per.rows, a.mean_amplitude[0][0].len());
    assert_eq!(rows, a.taps.iter().map(|t| t.shape[0]).sum::<usize>());
    assert_eq!(per.amplitude.len(), 3 * rows * nb);
    let mut first = 0;
    for (t, tap) in a.taps.iter().enumerate() {
        let row = first;
        first += tap.shape[0];
        for ch in 0..tap.shape[0] {
            for k in 0..nb {
                let v: Vec<f32> = (0..3).map(|i| per.amplitude[((i * rows) + row + ch) * nb + k]).collect();
                let mean = v.iter().map(|&x| x as f64).sum::<f64>() / 3.0;
                let want = a.mean_amplitude[t][ch][k];
                assert!(
                    (mean - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{} ch {ch} bin {k}: {mean} vs {want}",
                    tap.tap.name
                );
            }
        }
    }
}

#[test]
fn identical_frames_without_a_whole_period_are_run_once_with_the_same_spectra() {
    // 6 Hz over 250 frames: 12.5 bins, no whole period in N, but the sine repeats every
    // 20 frames and is symmetric, so only 11 distinct frames exist.
    let stim = StimulusConfig {
        layout: Layout::Whole,
        freqs: vec![6.0],
        n_frames: 250,
        allow_leakage: true,
        ..Default::default()
    };
    let mut auto = cfg(vec![TapKind::Conv, TapKind::Act], Fold::Auto);
    auto.stimulus = stim.clone();
    let mut never = cfg(vec![TapKind::Conv, TapKind::Act], Fold::Never);
    never.stimulus = stim;
    let (a, n) = (run(auto, 2), run(never, 2));
    assert_eq!(a.path, flickertag::analysis::InferencePath::Distinct { distinct: 11 });
    assert_eq!(a.frames_per_image, 11);
    assert_eq!(n.path, flickertag::analysis::InferencePath::Full);
    let worst = a.mean_amplitude.iter().zip(&n.mean_amplitude).map(|(x, r)| worst_rel(x, r)).fold(0.0, f64::max);
    assert!(worst < 1e-6, "distinct vs all frames: worst relative difference {worst:e}");
}

#[test]
fn responses_are_read_against_the_rounding_floor_with_known_answers() {
    // Whether a filter responds is deterministic: the stem conv is linear (fundamentals
    // only, no harmonic, no intermodulation: what float32 rounding leaves there stays
    // under the floor); its ReLU rectifies (harmonics); the last block mixes both halves
    // (intermodulation).
    let a = run(cfg(vec![TapKind::Conv, TapKind::Act], Fold::Auto), 3);
    let layer = |name: &str| a.layers.iter().find(|l| l.tap == name).unwrap();
    for f in &layer("conv1").filters {
        let r = &f.response;
        assert_eq!((&r.harmonics[..], r.intermod), (&[false, false][..], false), "conv1 filter {}", f.channel);
        assert!(r.fundamental.iter().any(|&x| x), "conv1 filter {} responds to neither tag", f.channel);
    }
    assert!(layer("relu").filters.iter().any(|f| f.response.harmonics.iter().any(|&x| x)));
    let deep = layer("layer3.4.relu2");
    assert!(deep.filters.iter().filter(|f| f.response.intermod).count() * 2 > deep.filters.len());
}
