//! `flickertag cam`: flags as [`CamOptions`], the run, its folder.

use anyhow::Result;

use super::args;
use super::{load_model, need_data, Ui};
use flickertag::run::cam::CamOptions;

/// The flags of `cam` as the library's options (the names are the same).
fn cam_options(a: &args::CamArgs) -> CamOptions {
    CamOptions {
        layer: a.layer.clone(),
        n_cases: a.n_cases,
        canvas: a.canvas,
        background: a.background.clone(),
        seed: a.seed,
        k: a.k,
        criterion: a.criterion.clone(),
        methods: a.methods.clone(),
        steps: a.steps,
        analysis_images: a.analysis_images.clone(),
        bootstrap: a.bootstrap,
        bootstrap_seed: a.bootstrap_seed,
        keep_maps: a.keep_maps,
        threads: a.engine.threads,
        batch: a.engine.batch,
        extra: vec![],
    }
}

/// Runs `cam`.
pub(super) fn cam(ui: &Ui, a: args::CamArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let dir = need_data(&a.source.data)?;
    let opts = cam_options(&a);
    let run = ui.with_bar("cases", |progress| opts.run(&model, &dir, progress))?;
    let folder = run.save(&a.out, a.force)?;
    if !ui.quiet {
        eprint!("{}", run.summary());
        eprintln!("Grad-CAM and Grad-CAM++ need torch: flickertag.cam in the Python package adds them");
        eprintln!("run folder: {}", folder.display());
    }
    ui.json(&serde_json::json!({
        "canvas_top1": run.canvas_top1(), "comparisons": run.result.comparisons,
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
    fn cam_flag_defaults_are_the_librarys_option_defaults() {
        let Command::Cam(a) = Cli::try_parse_from(["flickertag", "cam"]).unwrap().command else { panic!("not cam") };
        assert_eq!(cam_options(&a), CamOptions::default());
    }
}
