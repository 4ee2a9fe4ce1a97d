//! `freqtag prune-eval`: flags resolved into a [`PruneConfig`], the experiment run, its
//! outputs written.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::args;
use super::{engine_cfg, load_model, need_data, Ui};
use freqtag::analysis::{AnalysisConfig, TapSelection};
use freqtag::data::{Cifar10, Split};
use freqtag::model::TapKind;
use freqtag::prune::experiment::{self, PruneConfig};
use freqtag::report;

/// Runs `prune-eval`.
pub(super) fn prune_eval(ui: &Ui, a: args::PruneArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let dir = need_data(&a.source.data)?;
    let test = Cifar10::load(&dir, Split::Test)?;
    if a.n_images == 0 || a.n_images > test.len() {
        return Err(freqtag::Error::param("n-images", format!("1..={}", test.len()), a.n_images).into());
    }
    let images: Vec<usize> = if a.n_images == test.len() {
        (0..test.len()).collect()
    } else {
        freqtag::data::seeded_sample(test.len(), a.n_images, a.seed)?
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
        analysis_images: if a.analysis_images.is_empty() {
            test.first_of_each_class()
        } else {
            a.analysis_images.clone()
        },
        activation_images: vec![],
        engine: engine_cfg(&a.engine),
    };
    let train = if cfg.needs_statistics() {
        match Cifar10::load(&dir, Split::Train) {
            Ok(t) => Some(t),
            Err(e) => {
                ui.info(&format!(
                    "note: no training set ({e}); activation, hrank and the means of mean-ablation use the analysis images"
                ));
                None
            }
        }
    } else {
        None
    };
    cfg.activation_images = (0..a.activation_images.min(train.as_ref().map_or(0, |t| t.len()))).collect();
    ui.info(&format!(
        "prune-eval: {} on {} test images; criteria {} + {} random seeds; {} ablation; frequency tagging \
         scored at the {} output; {} bootstrap resamples",
        model.name,
        cfg.images.len(),
        cfg.criteria.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
        cfg.random_seeds,
        cfg.ablations.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" and "),
        match cfg.score_at {
            freqtag::prune::experiment::ScoreAt::Ablation => "BatchNorm (where the ablation acts)",
            freqtag::prune::experiment::ScoreAt::Conv => "conv",
        },
        cfg.bootstrap
    ));
    if (cfg.random_seeds as usize) < freqtag::prune::curves::MIN_SEEDS_FOR_VERDICT {
        ui.info(&format!(
            "note: {} random seeds give no verdict at the 5 % level (pass --random-seeds {} or more)",
            cfg.random_seeds,
            freqtag::prune::curves::MIN_SEEDS_FOR_VERDICT
        ));
    }
    let folder = freqtag::report::folder::RunFolder::create(&a.out, a.force, "prune-eval")?;
    // The checkpoint: every ablation measured so far, for exactly these settings.
    let ck = {
        let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = a.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        parent.join(format!(".{name}.freqtag-checkpoint.json"))
    };
    let fingerprint = freqtag::data::hex(&{
        use sha2::Digest;
        sha2::Sha256::digest(serde_json::to_vec(&(&cfg, model.info())).expect("serializable"))
    });
    let resume = if a.resume && ck.is_file() {
        let text = freqtag::data::read_regular_file(&ck, 1 << 30)?;
        let (fp, measured): (String, freqtag::prune::curves::Measured) =
            serde_json::from_slice(&text).map_err(|e| freqtag::Error::Data {
                path: ck.clone(),
                reason: format!("not a prune-eval checkpoint: {e}"),
            })?;
        if fp != fingerprint {
            return Err(freqtag::Error::param(
                "resume",
                format!("a checkpoint of the same settings and model (remove {} to start afresh)", ck.display()),
                "a checkpoint of another experiment",
            )
            .into());
        }
        ui.info(&format!("resuming with {} ablations already measured", measured.len()));
        Some(measured)
    } else {
        if a.resume {
            ui.info("no checkpoint to resume: starting afresh");
        }
        let _ = std::fs::remove_file(&ck);
        None
    };
    if !(a.checkpoint_every >= 0.0 && a.checkpoint_every.is_finite()) {
        return Err(freqtag::Error::param("checkpoint-every", "seconds, 0 or more", a.checkpoint_every).into());
    }
    let save = {
        let (ck, fp) = (ck.clone(), fingerprint.clone());
        move |m: &freqtag::prune::curves::Measured| -> freqtag::Result<()> {
            let tmp = ck.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&(&fp, m)).expect("serializable"))
                .map_err(|e| freqtag::Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &ck).map_err(|e| freqtag::Error::io(&ck, e))
        }
    };
    let checkpoint = (a.checkpoint_every > 0.0)
        .then(|| (Box::new(save) as freqtag::prune::curves::CacheFn, Duration::from_secs_f64(a.checkpoint_every)));
    let pb = ui.bar(0, "ablations");
    let r = experiment::run_resumable(
        &model,
        &test,
        train.as_ref(),
        &cfg,
        &mut |d, total| {
            pb.set_length(total as u64);
            pb.set_position(d as u64);
        },
        resume,
        checkpoint,
    )?;
    pb.finish_and_clear();
    report::prune::write_prune(&r, folder.path())?;
    folder.commit()?;
    let _ = std::fs::remove_file(&ck);
    if !ui.quiet {
        eprintln!("unpruned top-1 {:.2} %; {} ablations evaluated in {:.0} s", r.base_top1, r.evaluations, r.seconds);
        eprint!("{}", report::prune::terminal_summary(&r));
        eprintln!("results: {}", a.out.display());
    }
    ui.json(&serde_json::json!({"base_top1": r.base_top1, "verdicts": r.verdicts, "evaluations": r.evaluations, "seconds": r.seconds}));
    Ok(())
}
