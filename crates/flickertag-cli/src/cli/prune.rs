//! `flickertag prune-eval`: flags resolved into a [`PruneConfig`], the experiment run, its
//! outputs written.

use anyhow::Result;

use super::args;
use super::{engine_cfg, load_model, need_data, Ui};
use flickertag::analysis::{AnalysisConfig, TapSelection};
use flickertag::data::{Cifar10, Split};
use flickertag::model::TapKind;
use flickertag::prune::experiment::PruneConfig;
use flickertag::report;
use flickertag::run::Hooks;

/// Runs `prune-eval`.
pub(super) fn prune_eval(ui: &Ui, a: args::PruneArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let dir = need_data(&a.source.data)?;
    let test = Cifar10::load(&dir, Split::Test)?;
    // Statistics from exact images: the last --activation-images of the test set, held
    // out from the evaluated ones (the training copies are lossy JPEG).
    let held_out = a.activation_images;
    if held_out >= test.len() {
        return Err(flickertag::Error::param("activation-images", format!("0..{}", test.len()), held_out).into());
    }
    let analysis_images =
        if a.analysis_images.is_empty() { test.first_of_each_class() } else { a.analysis_images.clone() };
    // Evaluated: test images that no statistic saw (neither held out nor analysed).
    let pool: Vec<usize> = (0..test.len() - held_out).filter(|i| !analysis_images.contains(i)).collect();
    if a.n_images == 0 || a.n_images > pool.len() {
        return Err(flickertag::Error::param(
            "n-images",
            format!(
                "1..={} (the test images outside the {held_out} held out for statistics and the analysis images)",
                pool.len()
            ),
            a.n_images,
        )
        .into());
    }
    let images: Vec<usize> = if a.n_images == pool.len() {
        pool.clone()
    } else {
        flickertag::data::seeded_sample(pool.len(), a.n_images, a.seed)?.into_iter().map(|i| pool[i]).collect()
    };
    let mut analysis = AnalysisConfig { engine: engine_cfg(&a.engine), ..AnalysisConfig::default() };
    analysis.taps = TapSelection { kinds: vec![TapKind::Conv], names: vec![] };
    let mut cfg = PruneConfig {
        images,
        fractions: a.fractions.clone(),
        layer_fractions: a.layer_fractions.clone(),
        layers: a.layers.iter().filter(|l| !l.is_empty() && *l != "none").cloned().collect(),
        criteria: a.criteria.clone(),
        random_seeds: a.random_seeds,
        ablations: a.ablations.clone(),
        score_at: a.score_at,
        bootstrap: a.bootstrap,
        bootstrap_seed: a.bootstrap_seed,
        analysis,
        analysis_images,
        activation_images: vec![],
        engine: engine_cfg(&a.engine),
    };
    if cfg.needs_statistics() {
        cfg.activation_images = (test.len() - held_out..test.len()).collect();
    }
    ui.info(&format!(
        "prune-eval: {} on {} test images; criteria {} + {} random seeds; {} ablation; frequency tagging \
         scored at the {} output; {} bootstrap resamples",
        model.name,
        cfg.images.len(),
        cfg.criteria.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
        cfg.random_seeds,
        cfg.ablations.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" and "),
        match cfg.score_at {
            flickertag::prune::experiment::ScoreAt::Ablation => "ablation point (where the channel is consumed)",
            flickertag::prune::experiment::ScoreAt::Conv => "conv",
        },
        cfg.bootstrap
    ));
    if (cfg.random_seeds as usize) < flickertag::prune::curves::MIN_SEEDS_FOR_VERDICT {
        ui.info(&format!(
            "note: {} random seeds give no verdict at the 5 % level (pass --random-seeds {} or more)",
            cfg.random_seeds,
            flickertag::prune::curves::MIN_SEEDS_FOR_VERDICT
        ));
    }
    let mut bar: Option<super::Progress> = None;
    let mut progress = |_: &str, done: usize, total: usize| {
        let b = bar.get_or_insert_with(|| ui.bar(total as u64, "ablations"));
        b.set_length(total as u64);
        b.set_position(done as u64);
    };
    let mut note = |m: &str| ui.info(m);
    let mut hooks = Hooks { progress: &mut progress, note: &mut note, stop: None };
    let r = flickertag::run::execute_prune(
        &model,
        &test,
        None,
        &cfg,
        &a.out,
        a.force,
        a.resume,
        a.checkpoint_every,
        &mut hooks,
    )?;
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    if !ui.quiet {
        eprintln!("unpruned top-1 {:.2} %; {} ablations evaluated in {:.0} s", r.base_top1, r.evaluations, r.seconds);
        eprint!("{}", report::prune::terminal_summary(&r));
        eprintln!("results: {}", a.out.display());
    }
    ui.json(&serde_json::json!({"base_top1": r.base_top1, "verdicts": r.verdicts, "evaluations": r.evaluations, "seconds": r.seconds}));
    Ok(())
}
