//! `flickertag prune-eval`: flags resolved into a [`PruneConfig`], the experiment run, its
//! outputs written.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::args;
use super::{engine_cfg, load_model, need_data, Ui};
use flickertag::analysis::{AnalysisConfig, TapSelection};
use flickertag::data::{Cifar10, Split};
use flickertag::model::TapKind;
use flickertag::prune::experiment::{self, PruneConfig};
use flickertag::report;

/// Runs `prune-eval`.
pub(super) fn prune_eval(ui: &Ui, a: args::PruneArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let dir = need_data(&a.source.data)?;
    let test = Cifar10::load(&dir, Split::Test)?;
    if a.n_images == 0 || a.n_images > test.len() {
        return Err(flickertag::Error::param("n-images", format!("1..={}", test.len()), a.n_images).into());
    }
    let images: Vec<usize> = if a.n_images == test.len() {
        (0..test.len()).collect()
    } else {
        flickertag::data::seeded_sample(test.len(), a.n_images, a.seed)?
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
            flickertag::prune::experiment::ScoreAt::Ablation => "BatchNorm (where the ablation acts)",
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
    let folder = flickertag::report::folder::RunFolder::create(&a.out, a.force, "prune-eval")?;
    // The checkpoint: every ablation measured so far, for exactly these settings.
    let ck = {
        let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = a.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        parent.join(format!(".{name}.flickertag-checkpoint.json"))
    };
    let fingerprint = flickertag::data::hex(&{
        use sha2::Digest;
        sha2::Sha256::digest(serde_json::to_vec(&(&cfg, model.info())).expect("serializable"))
    });
    let (resume, earlier) = if a.resume && ck.is_file() {
        let text = flickertag::data::read_regular_file(&ck, 1 << 30)?;
        let PruneCheckpoint { fingerprint: fp, measured, segment_seconds } =
            serde_json::from_slice(&text).map_err(|e| flickertag::Error::Data {
                path: ck.clone(),
                reason: format!("not a prune-eval checkpoint: {e}"),
            })?;
        if fp != fingerprint {
            return Err(flickertag::Error::param(
                "resume",
                format!("a checkpoint of the same settings and model (remove {} to start afresh)", ck.display()),
                "a checkpoint of another experiment",
            )
            .into());
        }
        ui.info(&format!("resuming with {} ablations already measured", measured.len()));
        (Some(measured), segment_seconds)
    } else {
        if a.resume {
            ui.info("no checkpoint to resume: starting afresh");
        }
        let _ = std::fs::remove_file(&ck);
        (None, Vec::new())
    };
    if !(a.checkpoint_every >= 0.0 && a.checkpoint_every.is_finite()) {
        return Err(flickertag::Error::param("checkpoint-every", "seconds, 0 or more", a.checkpoint_every).into());
    }
    let start = std::time::Instant::now();
    let save = {
        let (ck, fp, earlier) = (ck.clone(), fingerprint.clone(), earlier.clone());
        move |m: &flickertag::prune::curves::Measured| -> flickertag::Result<()> {
            let tmp = ck.with_extension("json.tmp");
            let mut segment_seconds = earlier.clone();
            segment_seconds.push(start.elapsed().as_secs_f64());
            let c = PruneCheckpoint { fingerprint: fp.clone(), measured: m.clone(), segment_seconds };
            std::fs::write(&tmp, serde_json::to_vec(&c).expect("serializable"))
                .map_err(|e| flickertag::Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &ck).map_err(|e| flickertag::Error::io(&ck, e))
        }
    };
    let checkpoint = (a.checkpoint_every > 0.0)
        .then(|| (Box::new(save) as flickertag::prune::curves::CacheFn, Duration::from_secs_f64(a.checkpoint_every)));
    let pb = ui.bar(0, "ablations");
    let mut r = experiment::run_resumable(
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
    // The whole work: the earlier starts of a resumed run, then this one.
    r.segment_seconds = earlier.into_iter().chain([start.elapsed().as_secs_f64()]).collect();
    r.seconds = r.segment_seconds.iter().sum();
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

/// What `--checkpoint-every` keeps beside a prune-eval run folder: every ablation
/// measured so far, for the settings and model of `fingerprint`, and the wall time of
/// each start so far.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneCheckpoint {
    fingerprint: String,
    measured: flickertag::prune::curves::Measured,
    segment_seconds: Vec<f64>,
}
