//! `flickertag importance-truth`: flags as [`TruthOptions`], the run, its folder.

use anyhow::Result;

use super::args;
use super::{load_model, need_data, Ui};
use flickertag::run::truth::TruthOptions;

/// The flags of `importance-truth` as the library's options (the names are the same).
fn truth_options(a: &args::TruthArgs) -> TruthOptions {
    TruthOptions {
        n_images: a.n_images,
        seed: a.seed,
        statistics_images: a.statistics_images,
        analysis_images: a.analysis_images.clone(),
        layers: a.layers.clone(),
        ablation: a.ablation,
        bootstrap: a.bootstrap,
        bootstrap_seed: a.bootstrap_seed,
        crossval_splits: a.crossval_splits,
        crossval_random: a.crossval_random,
        threads: a.engine.threads,
        batch: a.engine.batch,
        extra: vec![],
    }
}

/// Runs `importance-truth`.
pub(super) fn importance_truth(ui: &Ui, a: args::TruthArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let dir = need_data(&a.source.data)?;
    let opts = truth_options(&a);
    let run = ui.with_bar("filters ablated", |progress| opts.run(&model, &dir, progress))?;
    let folder = run.save(&a.out, a.force)?;
    if !ui.quiet {
        eprint!("{}", run.summary());
        eprintln!(
            "taylor (activation x gradient) needs torch: flickertag.importance_truth in the Python package adds it"
        );
        eprintln!("run folder: {}", folder.display());
    }
    ui.json(&serde_json::json!({
        "base_top1": run.result.base_top1, "correlations": run.result.correlations,
        "seconds": run.result.seconds, "folder": folder,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn importance_truth_flag_defaults_are_the_librarys_option_defaults() {
        let Command::ImportanceTruth(a) = Cli::try_parse_from(["flickertag", "importance-truth"]).unwrap().command
        else {
            panic!("not importance-truth")
        };
        assert_eq!(truth_options(&a), TruthOptions::default());
    }
}
