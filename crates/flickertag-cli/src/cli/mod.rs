//! The command line: parse flags ([`args`]), resolve them into library objects, call
//! the library, print.

pub mod args;
mod cam;
mod fetch;
mod oddball;
mod progress;
mod prune;
mod truth;

use progress::Progress;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

use args::{Cli, Command, EngineArgs, ImageArgs, Source, StimArgs};
use flickertag::analysis::{self, ImageSpec};
use flickertag::data::{self, Cifar10, Image, Split};
use flickertag::engine::{EngineConfig, Session};
use flickertag::model::{Model, TapKind};
use flickertag::run::{select_images, AnalysisOptions, Hooks, ImageSelection, Outcome, Plan};
use flickertag::stimulus::StimulusConfig;
use flickertag::{evaluate, lines, report};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let ui = Ui { quiet: cli.quiet || cli.json, json: cli.json };
    match cli.command {
        Command::Analyze(a) => analyze(&ui, *a),
        Command::Eval(a) => eval(&ui, a),
        Command::Taps(a) => taps(&ui, a),
        Command::Export(a) => {
            let m = load_model(&a.source)?;
            let kinds = parse_kinds(&a.taps)?;
            let tapped: Vec<_> = m.taps.iter().filter(|t| kinds.contains(&t.kind)).collect();
            let m = m.with_tap_means(&tapped);
            m.save_onnx(&a.output)?;
            ui.info(&format!("wrote {} ({} taps) to {}", m.name, m.taps.len(), a.output.display()));
            Ok(())
        }
        Command::Lines(a) => lines_cmd(&ui, a),
        Command::Stimulus(a) => stimulus(&ui, a),
        Command::Bench(a) => bench(&ui, a),
        Command::FetchData(a) => fetch(&ui, a),
        Command::Providers => providers(&ui),
        Command::Demo(a) => demo(&ui, a),
        Command::PruneEval(a) => prune::prune_eval(&ui, *a),
        Command::Oddball(a) => oddball::oddball(&ui, *a),
        Command::ImportanceTruth(a) => truth::importance_truth(&ui, *a),
        Command::Cam(a) => cam::cam(&ui, *a),
        Command::Prune { .. } => bail!(
            "flickertag prune needs torch and Torch-Pruning, so it runs in the Python package: \
             pip install 'flickertag[pruning]', then the `flickertag` command it installs runs `flickertag prune` \
             (or call flickertag.pruning.prune from Python)"
        ),
        Command::Merge { parts, out, force } => merge(&ui, &parts, &out, force),
        Command::Report { run_dir } => {
            let p = flickertag::run::redraw_run_folder(&run_dir)?;
            ui.info(&format!("report: {}", p.display()));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "flickertag", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// An error as the command line shows it: the library's option references and
/// parameter names as flags (`--force`, `--resize 224`).
pub fn render_error(e: &anyhow::Error) -> String {
    use flickertag::error::{render, Face};
    let mut text = format!("{e:#}");
    if let Some(flickertag::Error::Param { name, .. }) = e.root_cause().downcast_ref::<flickertag::Error>() {
        if is_flag(name) {
            text = text.replacen(&format!("invalid {name}:"), &format!("invalid --{name}:"), 1);
        }
    }
    render(&text, Face::Cli)
}

/// Whether some subcommand has the long flag `--name`.
fn is_flag(name: &str) -> bool {
    fn walk(c: &clap::Command, name: &str) -> bool {
        c.get_arguments().any(|a| a.get_long() == Some(name)) || c.get_subcommands().any(|s| walk(s, name))
    }
    walk(&Cli::command(), name)
}

struct Ui {
    quiet: bool,
    json: bool,
}

impl Ui {
    fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
    fn bar(&self, len: u64, what: &str) -> Progress {
        Progress::new(self.quiet, len, what)
    }
    /// Runs `f` with a `progress(done, total)` that draws a bar of `what`, made at the
    /// first call (when the total is known) and cleared when `f` returns.
    fn with_bar<T>(&self, what: &str, f: impl FnOnce(&mut dyn FnMut(usize, usize)) -> T) -> T {
        let mut bar: Option<Progress> = None;
        let out = f(&mut |done: usize, total: usize| {
            bar.get_or_insert_with(|| self.bar(total as u64, what)).set_position(done as u64);
        });
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        out
    }
    fn json(&self, v: &serde_json::Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).expect("json"));
        }
    }
}

fn data_dir(explicit: &Option<PathBuf>) -> Result<Option<PathBuf>> {
    match explicit {
        Some(d) if !d.is_dir() => bail!("--data {}: no such folder", d.display()),
        Some(d) => Ok(Some(d.clone())),
        None => Ok(data::data_dir()?),
    }
}

fn need_data(explicit: &Option<PathBuf>) -> Result<PathBuf> {
    data_dir(explicit)?.context(
        "no data folder: set FLICKERTAG_DATA (a folder with cifar10/ and models/), pass --data, or run `flickertag fetch-data`",
    )
}

/// Says the preprocessing in effect (when the model records it or the user set it).
fn say_preprocess(ui: &Ui, m: &Model) {
    if m.preprocess_known {
        ui.info(&format!("preprocessing: {}", m.preprocess.describe()));
    }
}

fn load_model(s: &Source) -> Result<Model> {
    let dd = data_dir(&s.data)?;
    let mut m = Model::load(&s.model, dd.as_deref())?;
    m.set_preprocess(s.mean.as_deref(), s.std.as_deref(), s.resize, s.crop)?;
    for n in &m.notes {
        eprintln!("note: {n}");
    }
    Ok(m)
}

/// `--taps` entries as kinds (`all` is every kind).
fn parse_kinds(v: &[String]) -> flickertag::Result<Vec<TapKind>> {
    let mut out = Vec::new();
    for k in v.iter().filter(|k| *k != "none") {
        for x in TapKind::parse_list(k)? {
            if !out.contains(&x) {
                out.push(x);
            }
        }
    }
    Ok(out)
}

fn engine_cfg(e: &EngineArgs) -> EngineConfig {
    EngineConfig { threads: e.threads, batch: e.batch, device: e.device, optimize: true }
}

/// The stimulus flags as options (the rest at their defaults).
fn stim_options(s: &StimArgs) -> AnalysisOptions {
    AnalysisOptions {
        freqs: s.freqs.clone(),
        phases: s.phases.clone(),
        layout: s.layout.clone(),
        fps: s.fps,
        n_frames: s.n_frames,
        lo: s.lo,
        hi: s.hi,
        domain: s.domain,
        allow_leakage: s.allow_leakage,
        modulation: s.modulation,
        depth: s.depth,
        quantize: s.quantize,
        ..AnalysisOptions::default()
    }
}

fn stim_cfg(s: &StimArgs) -> Result<StimulusConfig> {
    Ok(stim_options(s).stimulus()?)
}

/// Image specs and a loader for them.
type Loader = flickertag::run::ImageLoader;

fn images(a: &ImageArgs, data: Option<&Path>) -> Result<(Vec<ImageSpec>, Loader)> {
    let sel = ImageSelection {
        images: a.images.clone(),
        n_images: a.n_images,
        seed: a.seed,
        all_images: a.all_images,
        image_file: a.image_file.clone(),
    };
    Ok(select_images(&sel, data)?)
}

fn analyze(ui: &Ui, a: args::AnalyzeArgs) -> Result<()> {
    // Every flag is checked before a model or an image is read.
    let opts = analysis_options(&a)?;
    opts.plan(1)?;
    let model = load_model(&a.source)?;
    say_preprocess(ui, &model);
    let dd = data_dir(&a.source.data)?;
    let (specs, loader) = images(&a.images, dd.as_deref())?;
    // The plan is made on the whole image list, so that every shard runs the same one.
    let plan = opts.plan(specs.len())?;
    plan.notes.iter().for_each(|n| ui.info(n));
    let out = a.out.clone().unwrap_or_else(|| default_run_dir(&model.name));
    execute(ui, &plan, &model, &specs, &*loader, &out, a.force)
}

/// Runs a plan with a progress bar per stage, then prints what it produced.
fn execute(
    ui: &Ui,
    plan: &Plan,
    model: &Model,
    specs: &[ImageSpec],
    load: &dyn Fn(&ImageSpec) -> flickertag::Result<Image>,
    out: &Path,
    force: bool,
) -> Result<()> {
    let mut bar: Option<(String, Progress)> = None;
    let mut progress = |stage: &str, done: usize, total: usize| {
        if bar.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, b)) = bar.take() {
                b.finish_and_clear();
            }
            bar = Some((stage.to_string(), ui.bar(total as u64, stage)));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    };
    let mut note = |m: &str| ui.info(m);
    let mut hooks = Hooks { progress: &mut progress, note: &mut note, stop: None };
    let outcome = plan.execute(model, specs, load, out, force, &mut hooks)?;
    if let Some((_, b)) = bar.take() {
        b.finish_and_clear();
    }
    match outcome {
        Outcome::Shard { shard, range, folder } => {
            ui.info(&format!(
                "shard {shard}: images {}..{} of {} in {}; merge all {} shards with `flickertag merge`",
                range.start,
                range.end,
                specs.len(),
                folder.display(),
                shard.count
            ));
            Ok(())
        }
        Outcome::Run { run, folder } => {
            if !ui.quiet {
                eprint!("{}", run.extras.summary(&run.analysis));
            }
            report_done(ui, &run.analysis, &folder)
        }
    }
}

fn merge(ui: &Ui, parts: &[PathBuf], out: &Path, force: bool) -> Result<()> {
    let start = Instant::now();
    let (result, out) = flickertag::shard::merge_into(parts, out, force)?;
    ui.info(&format!(
        "merged {} shards ({} images) in {:.2} s",
        parts.len(),
        result.images.len(),
        start.elapsed().as_secs_f64()
    ));
    report_done(ui, &result, &out)
}

/// The flags of `analyze` as the library's options (the names are the same).
fn analysis_options(a: &args::AnalyzeArgs) -> flickertag::Result<AnalysisOptions> {
    Ok(AnalysisOptions {
        preset: a.preset.clone(),
        threshold: a.threshold,
        taps: parse_kinds(&a.taps)?,
        tap: a.tap.clone(),
        noise_n_neighbor_freqs: a.noise_n_neighbor_freqs,
        floor: a.floor,
        noise_skip_neighbor_freqs: a.noise_skip_neighbor_freqs,
        drop_extremes: a.drop_extremes,
        power: a.power,
        db: a.db,
        exclude_bins: a.exclude_bins.clone(),
        exclude_grid: a.exclude_grid,
        noise_sigma: a.noise_sigma.clone(),
        noise_seed: a.noise_seed,
        stats: !a.no_stats,
        q: a.q,
        permutations: a.permutations,
        stats_seed: a.stats_seed,
        splits: a.splits,
        sweep_thresholds: a.sweep_thresholds.clone(),
        maps: a.maps.clone(),
        fold: !a.no_fold,
        warmup: a.warmup,
        max_order: a.max_order,
        per_image: if a.per_image {
            Some(true)
        } else if a.no_per_image {
            Some(false)
        } else {
            None
        },
        threads: a.engine.threads,
        batch: a.engine.batch,
        device: a.engine.device,
        control: a.control,
        control_seed: a.control_seed,
        controls: a.controls,
        region_swap: a.region_swap,
        contrast_sweep: a.contrast_sweep.clone(),
        harmonic_sum: a.harmonic_sum,
        bootstrap: a.bootstrap,
        resume: a.resume,
        checkpoint_every: a.checkpoint_every,
        shard: a.shard,
        ..stim_options(&a.stim)
    })
}

fn default_run_dir(name: &str) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    PathBuf::from("runs").join(format!("{name}-{secs}"))
}

fn report_done(ui: &Ui, result: &analysis::Analysis, out: &Path) -> Result<()> {
    let html = out.join("report.html");
    if !ui.quiet {
        eprint!("{}", flickertag::error::render(&report::terminal_summary(result), flickertag::error::Face::Cli));
        eprintln!("run folder: {}\nreport: {}", out.display(), html.display());
    }
    ui.json(&serde_json::to_value(report::Summary::new(result))?);
    Ok(())
}

fn eval(ui: &Ui, a: args::EvalArgs) -> Result<()> {
    if a.limit == Some(0) {
        return Err(flickertag::Error::param("limit", "at least 1 image", 0).into());
    }
    let model = load_model(&a.source)?;
    say_preprocess(ui, &model);
    let dir = need_data(&a.source.data)?;
    let c = Cifar10::load(&dir, a.split)?;
    let n = a.limit.unwrap_or(c.len()).min(c.len());
    let idx: Vec<usize> = (0..n).collect();
    let pb = ui.bar(n as u64, "images");
    let t = Instant::now();
    let acc = evaluate::evaluate(&model, &c, &idx, &engine_cfg(&a.engine), |k| pb.inc(k as u64))?;
    pb.finish_and_clear();
    if !ui.json {
        println!(
            "{}: top-1 {:.2} % ({} / {}) on CIFAR-10 {} in {:.1} s",
            model.name,
            acc.top1,
            acc.correct,
            acc.n,
            a.split,
            t.elapsed().as_secs_f64()
        );
        let per: Vec<String> = data::CLASSES.iter().zip(&acc.per_class).map(|(c, p)| format!("{c} {p:.1}")).collect();
        println!("per class: {}", per.join(", "));
    }
    ui.json(&serde_json::json!({"model": model.name, "split": a.split.to_string(), "accuracy": acc}));
    Ok(())
}

fn taps(ui: &Ui, a: args::TapsArgs) -> Result<()> {
    let source = Source { model: a.model, data: a.data, mean: None, std: None, resize: None, crop: None };
    let model = load_model(&source)?;
    if ui.json {
        ui.json(&serde_json::json!({"taps": model.taps, "skipped": model.skipped, "notes": model.notes}));
        return Ok(());
    }
    let width = model.taps.iter().map(|t| t.name.len()).max().unwrap_or(3).clamp(3, 60);
    println!("{:<width$} {:<7} {:>5}  {:<16} {:<18} tensor", "tap", "kind", "conv#", "shape [C,H,W]", "layout");
    for t in &model.taps {
        let ord = t.conv_ordinal.map(|o| format!("#{o}")).unwrap_or_default();
        println!(
            "{:<width$} {:<7} {:>5}  {:<16} {:<18} {}",
            t.name,
            t.kind.name(),
            ord,
            format!("{:?}", t.chw),
            t.layout.describe(),
            t.tensor
        );
    }
    let folded: Vec<String> =
        model.taps.iter().filter_map(|t| t.folded.as_ref().map(|f| format!("{} = {f}", t.name))).collect();
    if !folded.is_empty() {
        println!(
            "\nConvs with a BatchNorm folded in at export (each tap holds the BatchNorm's output; the conv's own \
             output is not in the graph): {}",
            folded.join("; ")
        );
    }
    if !model.skipped.is_empty() {
        println!("\nnot taps:");
        for s in &model.skipped {
            println!("  {}: {}", s.name, s.reason);
        }
    }
    Ok(())
}

fn lines_cmd(ui: &Ui, a: args::LinesArgs) -> Result<()> {
    let cfg = stim_cfg(&a.stim)?;
    let plan = cfg.plan(32, 32)?;
    lines::check_catalogue(&plan.bins, a.max_order)?;
    let l = lines::catalogue(&plan.bins, cfg.fps, cfg.n_frames, a.max_order);
    if ui.json {
        ui.json(&serde_json::to_value(&l)?);
        return Ok(());
    }
    let tags: Vec<String> = cfg.freqs.iter().enumerate().map(|(i, f)| format!("f{} = {f} Hz", i + 1)).collect();
    println!(
        "{} ; grid {} Hz ; bin width {} Hz",
        tags.join(", "),
        lines::grid_bins(&plan.bins) as f64 * cfg.fps / cfg.n_frames as f64,
        cfg.fps / cfg.n_frames as f64
    );
    println!("{:>8} {:>5}  {:<12} {:>5}  label", "freq Hz", "bin", "kind", "order");
    for x in &l {
        let kind = serde_json::to_value(x.kind)?;
        println!("{:>8} {:>5}  {:<12} {:>5}  {}", x.freq, x.bin, kind.as_str().unwrap_or(""), x.order, x.label);
    }
    Ok(())
}

fn stimulus(ui: &Ui, a: args::StimulusArgs) -> Result<()> {
    // Flags first, before any data is read.
    if !(1..=64).contains(&a.scale) {
        return Err(flickertag::Error::param("scale", "an upscale factor in 1..=64", a.scale).into());
    }
    if a.image >= 10_000 {
        return Err(flickertag::Error::param("image", "a CIFAR-10 test index in 0..10000", a.image).into());
    }
    let stim = stim_cfg(&a.stim)?;
    stim.check()?;
    let img = match &a.image_file {
        Some(p) => Image::from_file(p)?,
        None => Cifar10::load(&need_data(&a.data)?, Split::Test)?.image(a.image),
    };
    let plan = stim.plan(img.height, img.width)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let n = plan.config.n_frames;
    let scale = a.scale;
    let frame = |i: usize| {
        let rgb = plan.display_frame(&img, i).to_rgb8();
        image::imageops::resize(&rgb, rgb.width() * scale, rgb.height() * scale, image::imageops::FilterType::Nearest)
    };
    // Every file is written whole or not at all, and a full disk is an error naming it
    // (the PNG encoder's own file writer dropped write errors: 227 empty frames, exit 0).
    if a.gif {
        let p = a.out.join("stimulus.gif");
        let enc_err = |e: image::ImageError| flickertag::Error::io(&p, std::io::Error::other(e));
        flickertag::io::atomic::write_atomic(&p, |w| {
            let mut enc = image::codecs::gif::GifEncoder::new(w);
            enc.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(enc_err)?;
            let delay = image::Delay::from_numer_denom_ms(1000, plan.config.fps.round() as u32);
            for i in 0..n {
                let rgba = image::DynamicImage::ImageRgb8(frame(i)).to_rgba8();
                enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay)).map_err(enc_err)?;
            }
            Ok(())
        })?;
        ui.info(&format!(
            "wrote {n} frames to {} (GIF delays are in 10 ms steps, so playback is approximate)",
            p.display()
        ));
    } else {
        for i in 0..n {
            let p = a.out.join(format!("frame_{i:04}.png"));
            let mut png = std::io::Cursor::new(Vec::new());
            frame(i).write_to(&mut png, image::ImageFormat::Png).with_context(|| p.display().to_string())?;
            flickertag::io::atomic::write_bytes_atomic(&p, png.get_ref())?;
        }
        ui.info(&format!("wrote {n} PNG frames to {}", a.out.display()));
    }
    Ok(())
}

fn bench(ui: &Ui, a: args::BenchArgs) -> Result<()> {
    let model = load_model(&a.source)?;
    let cfg = engine_cfg(&a.engine);
    // Checked before any work: a batch of 0 frames would never reach --frames.
    if cfg.batch == 0 {
        return Err(flickertag::Error::param("batch", "at least 1 frame per inference call", 0).into());
    }
    let kinds = parse_kinds(&a.taps)?;
    let tapped: Vec<_> = model.taps.iter().filter(|t| kinds.contains(&t.kind)).collect();
    let mut s = Session::for_model(&model, &tapped, false, &cfg)?;
    let [c, h, w] = model.input_shape;
    let frames: Vec<f32> = (0..cfg.batch * c * h * w).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    s.run(&frames, cfg.batch)?; // warm-up
    let t = Instant::now();
    let mut done = 0;
    while done < a.frames {
        s.run(&frames, cfg.batch)?;
        done += cfg.batch;
    }
    let secs = t.elapsed().as_secs_f64();
    let fps = done as f64 / secs;
    if !ui.json {
        println!(
            "{}: {fps:.0} frames/s ({done} frames, batch {}, {} taps recorded ({}), threads {})",
            model.name,
            cfg.batch,
            tapped.len(),
            a.taps.join(","),
            if cfg.threads == 0 { "auto".into() } else { cfg.threads.to_string() }
        );
    }
    ui.json(&serde_json::json!({"model": model.name, "frames_per_s": fps, "frames": done, "batch": cfg.batch, "taps": tapped.len()}));
    Ok(())
}

/// `flickertag providers`: the loaded library, its execution providers, and which
/// `--device` values work with it.
fn providers(ui: &Ui) -> Result<()> {
    let r = flickertag::engine::provider_report()?;
    if ui.json {
        ui.json(&serde_json::to_value(&r).expect("serializable"));
        return Ok(());
    }
    if let Some(l) = &r.library {
        println!("ONNX Runtime library: {}", l.display());
    }
    println!("execution providers: {}", r.providers.join(", "));
    if r.devices.contains(&flickertag::engine::Device::Cuda) {
        println!("--device: cpu, cuda");
    } else {
        println!("--device: cpu (for cuda, install the GPU build: pip install 'flickertag[gpu]')");
    }
    Ok(())
}

fn fetch(ui: &Ui, a: args::FetchArgs) -> Result<()> {
    let dest = a.dest.or_else(data::user_cache).context("no cache folder on this system: pass --dest")?;
    let pb = ui.bar(0, "download");
    let out = fetch::download_cifar10(&dest, |n, total| {
        if let Some(t) = total {
            pb.set_length(t);
        }
        pb.set_position(n);
    })?;
    pb.finish_and_clear();
    ui.info(&format!("CIFAR-10 in {}", out.display()));
    Ok(())
}

fn demo(ui: &Ui, a: args::DemoArgs) -> Result<()> {
    // The paper's experiment: its conv layers.
    let opts = AnalysisOptions { taps: vec![TapKind::Conv], ..AnalysisOptions::default() };
    if a.random {
        ui.info(
            "demo --random: a DEMONSTRATION OF THE PIPELINE on a randomly initialised ResNet-8 and synthetic images,\n\
             not of a trained model. Without --random, `flickertag demo` runs the paper's experiment.",
        );
        let model = flickertag::model::demo_model(7)?;
        let specs: Vec<ImageSpec> =
            (0..4).map(|i| ImageSpec { name: format!("synthetic[{i}]"), index: Some(i), label: None }).collect();
        let load = |s: &ImageSpec| Ok(data::synthetic_image(s.index.unwrap_or(0) as u64, 32, 32));
        let plan = AnalysisOptions { checkpoint_every: 0.0, ..opts }.plan(specs.len())?;
        return execute(ui, &plan, &model, &specs, &load, &a.out, a.force);
    }
    let dir = data_dir(&a.data)?;
    let model = Model::load("resnet32", dir.as_deref())?;
    let default_images = ImageArgs { images: vec![], n_images: None, seed: 0, all_images: false, image_file: vec![] };
    let (specs, loader) = images(&default_images, dir.as_deref())?;
    ui.info(&format!(
        "demo: the paper's experiment: pretrained ResNet-32 ({}) on the first CIFAR-10 test image of each class",
        model.source.display()
    ));
    let plan = AnalysisOptions { checkpoint_every: 0.0, ..opts }.plan(specs.len())?;
    execute(ui, &plan, &model, &specs, &*loader, &a.out, a.force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn analyze_flag_defaults_are_the_librarys_option_defaults() {
        let Command::Analyze(a) = Cli::try_parse_from(["flickertag", "analyze"]).unwrap().command else {
            panic!("not analyze")
        };
        assert_eq!(analysis_options(&a).unwrap(), AnalysisOptions::default());
    }

    #[test]
    fn library_errors_name_flags_at_the_command_line() {
        let e = anyhow::Error::from(flickertag::Error::param("noise-sigma", "pass <force> or <resize 224>", 1));
        assert_eq!(render_error(&e), "invalid --noise-sigma: pass --force or --resize 224 (got 1)");
        // A parameter that is no flag keeps its name.
        let e = anyhow::Error::from(flickertag::Error::param("run folder", "a folder", "x"));
        assert_eq!(render_error(&e), "invalid run folder: a folder (got x)");
    }
}
