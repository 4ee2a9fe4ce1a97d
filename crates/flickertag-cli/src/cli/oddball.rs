//! `flickertag oddball`: flags as [`OddballOptions`], the run, its folder.

use anyhow::Result;

use super::args;
use super::{data_dir, default_run_dir, load_model, parse_kinds, say_preprocess, Ui};
use flickertag::run::oddball::OddballOptions;

/// The flags of `oddball` as the library's options (the names are the same; the
/// preprocessing flags go to the model as it loads).
fn oddball_options(a: &args::OddballArgs) -> flickertag::Result<OddballOptions> {
    Ok(OddballOptions {
        base_freq: a.base_freq,
        every: a.every,
        fps: a.fps,
        n_frames: a.n_frames,
        classes: a.classes.clone(),
        streams: a.streams,
        seed: a.seed,
        harmonics: a.harmonics,
        neighbours: a.neighbours,
        pool_images: a.pool_images,
        image_folder: a.image_folder.clone(),
        taps: parse_kinds(&a.taps)?,
        tap: a.tap.clone(),
        validate: a.validate,
        fraction: a.fraction,
        random_sets: a.random_sets,
        validation_images: a.validation_images,
        threads: a.engine.threads,
        batch: a.engine.batch,
        mean: None,
        std: None,
    })
}

/// Runs `oddball`.
pub(super) fn oddball(ui: &Ui, a: args::OddballArgs) -> Result<()> {
    let mut model = load_model(&a.source)?;
    say_preprocess(ui, &model);
    let opts = oddball_options(&a)?;
    let data = data_dir(&a.source.data)?;
    let out = a.out.clone().unwrap_or_else(|| default_run_dir("oddball"));
    let mut bars: Vec<(String, super::Progress)> = Vec::new();
    let mut progress = |stage: &str, done: usize, total: usize| {
        if bars.last().is_none_or(|(s, _)| s != stage) {
            if let Some((_, b)) = bars.last() {
                b.finish_and_clear();
            }
            bars.push((stage.to_string(), ui.bar(total as u64, stage)));
        }
        if let Some((_, b)) = bars.last() {
            b.set_position(done as u64);
        }
    };
    let run = opts.run(&mut model, data.as_deref(), &mut progress, None)?;
    if let Some((_, b)) = bars.last() {
        b.finish_and_clear();
    }
    let folder = run.save(&out, a.force)?;
    if !ui.quiet {
        eprint!("{}", run.summary());
        eprintln!("run folder: {}\nreport: {}", folder.display(), folder.join("report.html").display());
    }
    ui.json(&serde_json::json!({"layers": run.result.layers, "validation": run.validation, "folder": folder}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn oddball_flag_defaults_are_the_librarys_option_defaults() {
        let Command::Oddball(a) = Cli::try_parse_from(["flickertag", "oddball"]).unwrap().command else {
            panic!("not oddball")
        };
        assert_eq!(oddball_options(&a).unwrap(), OddballOptions::default());
    }
}
