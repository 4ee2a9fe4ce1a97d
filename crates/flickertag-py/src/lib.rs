//! `flickertag._flickertag`: the Python extension. It parses Python arguments and calls the
//! library, nothing more. A run comes back as a [`Run`], the library's result held in
//! memory: its tables as the bytes the run folder would hold, its arrays as numpy arrays
//! over the result's own memory, the run folder written on demand; the Python package
//! (`python/flickertag/`) turns it into pandas and numpy objects.
//!
//! Every call that runs a network releases the GIL. Library errors become
//! `flickertag.FlickertagError` (a `ValueError`) carrying the CLI's message.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use flickertag::analysis::ImageSpec;
use flickertag::data::{self, Cifar10, Image, Split};
use flickertag::engine::{self, EngineConfig};
use flickertag::model::Model;
use flickertag::progress::ProgressLines;
use flickertag::run::{select_images, AnalysisOptions, Hooks, ImageLoader, ImageSelection, Outcome, Plan, RunResult};
use numpy::{ndarray, PyArray, PyArrayMethods as _};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3_stub_gen::derive::{gen_stub_pyclass, gen_stub_pyfunction, gen_stub_pymethods};

/// Runs `f` without the GIL; its error as Python shows it ([`err`]), and a panic (a bug)
/// as a `FlickertagError` saying so, never pyo3's `PanicException`, which `except
/// Exception` does not catch.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> flickertag::Result<T> + Send) -> PyResult<T> {
    match py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))) {
        Ok(r) => r.map_err(err),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(error_of("FlickertagError", format!("internal error, a bug in flickertag (please report it): {what}")))
        }
    }
}

/// Panics inside the library's call path on purpose: how the package's test checks that
/// a bug surfaces as `FlickertagError`, not as pyo3's `PanicException`. Not API.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> flickertag::Result<()> { panic!("a deliberate panic") })
}

/// A library error as Python shows it: options named as keyword arguments
/// (`overwrite=True`, `resize=224`), raised as `flickertag.FlickertagError` (a
/// `ValueError`), its `FileNotFoundError`/`OSError` subclasses for files, and
/// `KeyboardInterrupt` for an interrupted run.
fn err(e: flickertag::Error) -> PyErr {
    use flickertag::error::{option_name, render, Face};
    let (class, msg) = match &e {
        flickertag::Error::Interrupted => {
            return pyo3::exceptions::PyKeyboardInterrupt::new_err("flickertag: run interrupted")
        }
        flickertag::Error::Param { name, reason, given } => {
            let name = if name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                option_name(name, Face::Python)
            } else {
                name.to_string()
            };
            ("FlickertagError", format!("invalid {name}: {} (got {given})", render(reason, Face::Python)))
        }
        flickertag::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            ("FlickertagFileNotFoundError", render(&e.to_string(), Face::Python))
        }
        flickertag::Error::Io { .. } => ("FlickertagOSError", render(&e.to_string(), Face::Python)),
        _ => ("FlickertagError", render(&e.to_string(), Face::Python)),
    };
    error_of(class, msg)
}

/// An instance of `flickertag._errors.<class>` with `msg`.
fn error_of(class: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        match py.import("flickertag._errors").and_then(|m| m.getattr(class)).and_then(|c| c.call1((msg.clone(),))) {
            Ok(v) => PyErr::from_value(v),
            Err(_) => PyValueError::new_err(msg),
        }
    })
}

/// `flickertag.FlickertagError` with `msg`.
fn flickertag_error(msg: String) -> PyErr {
    error_of("FlickertagError", msg)
}

/// The data folder: the one given, else `FLICKERTAG_DATA`, else the user cache.
fn data_dir(data: Option<PathBuf>) -> flickertag::Result<Option<PathBuf>> {
    match data {
        Some(d) if !d.is_dir() => Err(flickertag::Error::param("data", "an existing folder", d.display())),
        Some(d) => Ok(Some(d)),
        None => data::data_dir(),
    }
}

/// Uses the ONNX Runtime library at `path` (the `onnxruntime` wheel's); returns False
/// when one was already chosen.
#[gen_stub_pyfunction]
#[pyfunction]
fn set_ort_library(path: PathBuf) -> bool {
    engine::set_library_path(path)
}

/// The ONNX Runtime library flickertag loads (or would load first).
#[gen_stub_pyfunction]
#[pyfunction]
fn ort_library() -> Option<PathBuf> {
    engine::ort_library_candidates().into_iter().next()
}

/// Images given as uint8 pixels `[N, H, W, 3]` (row-major bytes) as analysis inputs.
fn array_images(
    pixels: &[u8],
    shape: (usize, usize, usize, usize),
) -> flickertag::Result<(Vec<ImageSpec>, ImageLoader)> {
    let (n, h, w, c) = shape;
    if c != 3 || n == 0 || h == 0 || w == 0 || n.checked_mul(h * w * 3) != Some(pixels.len()) {
        return Err(flickertag::Error::param(
            "images",
            "a uint8 array [N, H, W, 3] (or [H, W, 3]) with N, H, W > 0",
            format!("shape {shape:?} with {} bytes", pixels.len()),
        ));
    }
    // The same bound as an image file's (a 9000 x 9000 array grew to 5.3 GB and
    // aborted the interpreter).
    let side = flickertag::data::MAX_IMAGE_SIDE;
    if h > side || w > side {
        return Err(flickertag::Error::param(
            "images",
            format!("images of 1 to {side} pixels a side, as for image files"),
            format!("shape {shape:?}"),
        ));
    }
    let hw = h * w;
    // Kept as the uint8 pixels given (1 byte a value) and turned into float32 one
    // image at a time, as each is analysed: memory is the array's size, not 4 times it.
    let pixels = std::sync::Arc::new(pixels.to_vec());
    let specs = (0..n).map(|i| ImageSpec { name: format!("array[{i}]"), index: Some(i), label: None }).collect();
    let load = move |s: &ImageSpec| {
        let img = s
            .index
            .and_then(|i| pixels.get(i * hw * 3..(i + 1) * hw * 3))
            .ok_or_else(|| flickertag::Error::param("images", "an index into the array", &s.name))?;
        let mut px = vec![0.0f32; 3 * hw];
        for (p, rgb) in img.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                px[ch * hw + p] = rgb[ch] as f32 / 255.0;
            }
        }
        Ok(Image { height: h, width: w, pixels: px, label: None })
    };
    Ok((specs, Box::new(load)))
}

/// Progress on stderr: one self-overwriting line on a terminal, plain lines with an ETA
/// (every 10 s and at the end) in a log or a notebook server's output, nothing when off.
struct Shown {
    on: bool,
    terminal: bool,
    total: usize,
    start: std::time::Instant,
    lines: ProgressLines,
}

impl Shown {
    fn new(on: bool, what: &str, total: usize) -> Shown {
        let terminal = std::io::stderr().is_terminal();
        Shown { on, terminal, total, start: std::time::Instant::now(), lines: ProgressLines::new(what, total as u64) }
    }

    fn update(&mut self, done: usize) {
        if !self.on {
            return;
        }
        if self.terminal {
            eprint!("\r{}", self.lines.line(done as u64, self.start.elapsed()));
            if done >= self.total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else if let Some(line) = self.lines.update(done as u64) {
            eprintln!("{line}");
        }
    }
}

/// The extension's common arguments resolved: the model, the image specs with their
/// loader, and the plan made on the whole image list.
type Prepared = (Model, Vec<ImageSpec>, ImageLoader, Plan);

/// Progress of a run's stages (`images`, `control 1/20 images`, `streams`, ...): a new
/// line or bar whenever the stage changes.
fn stage_progress(progress: bool) -> impl FnMut(&str, usize, usize) {
    let mut shown: Option<(String, Shown)> = None;
    move |stage: &str, done: usize, total: usize| {
        if shown.as_ref().is_none_or(|(s, _)| s != stage) {
            shown = Some((stage.to_string(), Shown::new(progress, &format!("flickertag: {stage}"), total)));
        }
        if let Some((_, s)) = shown.as_mut() {
            s.update(done);
        }
    }
}

fn prepare(
    model: &str,
    opts: &AnalysisOptions,
    sel: &ImageSelection,
    data: Option<PathBuf>,
    pixels: Option<&[u8]>,
    shape: Option<(usize, usize, usize, usize)>,
) -> flickertag::Result<Prepared> {
    // Every option is checked before a model or an image is read.
    opts.plan(1)?;
    let dd = data_dir(data)?;
    let mut model = Model::load(model, dd.as_deref())?;
    model.set_preprocess(opts.mean.as_deref(), opts.std.as_deref(), opts.resize, opts.crop)?;
    let (specs, load) = match (pixels, shape) {
        (Some(p), Some(s)) => array_images(p, s)?,
        _ => select_images(sel, dd.as_deref())?,
    };
    let plan = opts.plan(specs.len())?;
    Ok((model, specs, load, plan))
}

/// A serde_json error without the line and column of a JSON the user never wrote.
fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    s.strip_suffix(&at).unwrap_or(&s).to_string()
}

fn parse_args(options: &str, selection: &str) -> PyResult<(AnalysisOptions, ImageSelection)> {
    // An option's own check already says "invalid <name>: ..."; serde's other messages
    // (unknown field, wrong type) get the prefix.
    let opts: AnalysisOptions = serde_json::from_str(options).map_err(|e| {
        let msg = flickertag::error::render(&without_position(&e), flickertag::error::Face::Python);
        flickertag_error(if msg.starts_with("invalid ") { msg } else { format!("invalid keyword argument: {msg}") })
    })?;
    let sel: ImageSelection = serde_json::from_str(selection)
        .map_err(|e| flickertag_error(format!("invalid images: {}", without_position(&e))))?;
    Ok((opts, sel))
}

/// Asks Python whether a signal arrived (Ctrl-C, a notebook's "interrupt kernel"):
/// called between inference batches, with the GIL taken for that moment only.
fn python_signalled() -> bool {
    Python::attach(|py| py.check_signals().is_err())
}

/// A finished run held in memory (`flickertag.Analysis` wraps one): the library's
/// [`RunResult`], read by Python without a folder, written to one on demand.
#[gen_stub_pyclass]
#[pyclass(module = "flickertag._flickertag", frozen)]
struct Run {
    result: RunResult,
}

#[gen_stub_pymethods]
#[pymethods]
impl Run {
    /// Every table of the run folder as the bytes the folder holds, by file name
    /// (`summary.json`, `filters.csv`, `sweep.csv`, `layers.csv`, `lines.csv`, and the
    /// extras' `control.csv`, `control.json`, `bootstrap.csv`, `noise_sweep.csv`,
    /// `region_swap.csv` where asked for). Numbers are at round-trip precision.
    #[gen_stub(override_return_type(type_repr = "dict[builtins.str, builtins.bytes]", imports = ("builtins")))]
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, bytes) in self.result.tables() {
            d.set_item(name, PyBytes::new(py, &bytes))?;
        }
        Ok(d)
    }

    /// One array of the result: `spectra_mean` (float64 `[row, bin]`), `scores`
    /// (float64 `[image, row]`), `spectra` (float32 `[image, row, bin]`) or
    /// `coefficients` (complex64 `[image, row, bin]`); None for the per-image arrays of
    /// a run that did not keep them. `spectra` and `coefficients` are read-only views of
    /// this object's memory (no copy; they keep it alive).
    #[gen_stub(override_return_type(type_repr = "typing.Optional[numpy.ndarray]", imports = ("typing", "numpy")))]
    fn array<'py>(slf: Bound<'py, Self>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let a = &slf.get().result.analysis;
        let owned = |(v, [r, c]): (Vec<f64>, [usize; 2])| -> PyResult<Bound<'py, PyAny>> {
            Ok(PyArray::from_vec(py, v).reshape([r, c])?.into_any())
        };
        let view = match name {
            "spectra_mean" => return owned(flickertag::report::mean_spectra(a)).map(Some),
            "scores" => return owned(flickertag::report::score_rows(a)).map(Some),
            "spectra" | "coefficients" => {
                let Some(p) = &a.per_image else { return Ok(None) };
                let sh = (a.images.len(), p.rows, flickertag::spectrum::n_bins(a.config.stimulus.n_frames));
                let bad = |e: ndarray::ShapeError| flickertag_error(format!("{name}: {e}"));
                // SAFETY (both arms): the view's memory belongs to `slf`, a frozen
                // object whose result never changes, which the array keeps alive as its
                // base; the array is made read-only below.
                if name == "spectra" {
                    let v = ndarray::ArrayView3::from_shape(sh, &p.amplitude).map_err(bad)?;
                    unsafe { PyArray::borrow_from_array(&v, slf.clone().into_any()) }.into_any()
                } else {
                    let v = ndarray::ArrayView3::from_shape(sh, &p.coefficients).map_err(bad)?;
                    unsafe { PyArray::borrow_from_array(&v, slf.clone().into_any()) }.into_any()
                }
            }
            _ => {
                return Err(flickertag_error(format!(
                    "invalid array: one of spectra_mean, scores, spectra, coefficients (got {name})"
                )))
            }
        };
        let kw = PyDict::new(py);
        kw.set_item("write", false)?;
        view.call_method("setflags", (), Some(&kw))?;
        Ok(Some(view))
    }

    /// Writes the run folder to `path` (exactly what `flickertag analyze --out` writes),
    /// atomically; an earlier run there is replaced only with `overwrite`, other files
    /// never. Returns the folder.
    #[pyo3(signature = (path, overwrite=false))]
    fn save(&self, py: Python<'_>, path: PathBuf, overwrite: bool) -> PyResult<PathBuf> {
        detached(py, || self.result.save(&path, overwrite))
    }

    /// The summary `flickertag analyze` prints: the per-layer table, then the extras'.
    fn summary(&self) -> String {
        let a = &self.result.analysis;
        format!("{}{}", flickertag::report::terminal_summary(a), self.result.extras.summary(a))
    }
}

/// Runs the plan the options make (the analysis and every extra, or one shard).
/// Without `out` the run is held in memory (nothing is written); with `out` it is also
/// written into that run folder (exactly what `flickertag analyze --out` writes, with
/// checkpoints for `resume`). `options` and `selection` are JSON objects of
/// `flickertag::run::AnalysisOptions` and `ImageSelection`; `pixels` with `shape`
/// (`[N, H, W, 3]` uint8) replace the selection. Ctrl-C stops the run between batches
/// (`KeyboardInterrupt`). Returns `(run, folder)`: the [`Run`] (None for a shard) and
/// the folder written (None without `out`).
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, out=None, options="{}", selection="{}", data=None, pixels=None, shape=None, progress=true, overwrite=false))]
#[allow(clippy::too_many_arguments)]
fn analyze(
    py: Python<'_>,
    model: &str,
    out: Option<PathBuf>,
    options: &str,
    selection: &str,
    data: Option<PathBuf>,
    #[gen_stub(override_type(type_repr = "typing.Optional[builtins.bytes]", imports = ("typing", "builtins")))]
    pixels: Option<&[u8]>,
    shape: Option<(usize, usize, usize, usize)>,
    progress: bool,
    overwrite: bool,
) -> PyResult<(Option<Run>, Option<PathBuf>)> {
    let (opts, sel) = parse_args(options, selection)?;
    detached(py, || {
        let (model, specs, load, plan) = prepare(model, &opts, &sel, data, pixels, shape)?;
        if progress {
            plan.notes.iter().for_each(|n| eprintln!("{n}"));
        }
        let mut report = stage_progress(progress);
        let mut note = |m: &str| {
            if progress {
                eprintln!("{m}");
            }
        };
        let mut hooks = Hooks { progress: &mut report, note: &mut note, stop: Some(&python_signalled) };
        match out {
            None => Ok((Some(Run { result: plan.execute_in_memory(&model, &specs, &*load, &mut hooks)? }), None)),
            Some(out) => match plan.execute(&model, &specs, &*load, &out, overwrite, &mut hooks)? {
                Outcome::Run { run, folder } => Ok((Some(Run { result: *run }), Some(folder))),
                Outcome::Shard { folder, .. } => Ok((None, Some(folder))),
            },
        }
    })
}

/// Checks everything a run needs without running it: the model loads, the images are
/// found and the options hold for them. Returns JSON `{"images": N, "data": folder or
/// null}` (the data folder as resolved here, for workers elsewhere). `flickertag.ray`
/// calls it in the driver before launching any task.
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, options="{}", selection="{}", data=None, pixels=None, shape=None))]
fn check(
    py: Python<'_>,
    model: &str,
    options: &str,
    selection: &str,
    data: Option<PathBuf>,
    #[gen_stub(override_type(type_repr = "typing.Optional[builtins.bytes]", imports = ("typing", "builtins")))]
    pixels: Option<&[u8]>,
    shape: Option<(usize, usize, usize, usize)>,
) -> PyResult<String> {
    let (opts, sel) = parse_args(options, selection)?;
    detached(py, || {
        let dd = data_dir(data.clone())?;
        let (_, specs, load, _) = prepare(model, &opts, &sel, data, pixels, shape)?;
        // The first and last image are read, so that a missing file fails here.
        for s in specs.first().into_iter().chain(specs.last()) {
            load(s)?;
        }
        Ok(serde_json::json!({"images": specs.len(), "data": dd}).to_string())
    })
}

/// Merges partial runs into the run folder `out` (which must not hold a run unless
/// `force`). Returns the folder.
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (parts, out, force=false))]
fn merge(py: Python<'_>, parts: Vec<PathBuf>, out: PathBuf, force: bool) -> PyResult<PathBuf> {
    detached(py, || flickertag::shard::merge_into(&parts, &out, force).map(|(_, p)| p))
}

/// Every tap of a model, as JSON: `{"taps": [{name, tensor, kind, conv_ordinal,
/// layout, dims, chw, aliases}], "skipped": [{name, reason}], "notes": [...]}`.
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, data=None))]
fn taps(py: Python<'_>, model: &str, data: Option<PathBuf>) -> PyResult<String> {
    detached(py, || {
        let dd = data_dir(data)?;
        let m = Model::load(model, dd.as_deref())?;
        let v = serde_json::json!({"taps": m.taps, "skipped": m.skipped, "notes": m.notes, "time": m.time});
        Ok(v.to_string())
    })
}

/// Top-1 accuracy on the CIFAR-10 test set (the first `limit` images), as JSON
/// (`model, n, correct, top1, per_class`).
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, data=None, limit=None, threads=0, batch=100, mean=None, std=None, resize=None, crop=None))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    model: &str,
    data: Option<PathBuf>,
    limit: Option<usize>,
    threads: usize,
    batch: usize,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    resize: Option<usize>,
    crop: Option<usize>,
) -> PyResult<String> {
    detached(py, || {
        let dd = data_dir(data)?;
        let mut m = Model::load(model, dd.as_deref())?;
        m.set_preprocess(mean.as_deref(), std.as_deref(), resize, crop)?;
        let dir = dd.ok_or_else(|| {
            flickertag::Error::param(
                "data",
                "the CIFAR-10 test set: set FLICKERTAG_DATA, pass data=, or run `flickertag fetch-data`",
                "no data folder",
            )
        })?;
        let c = Cifar10::load(&dir, Split::Test)?;
        let n = match limit {
            Some(0) => return Err(flickertag::Error::param("limit", format!("1..={}", c.len()), 0)),
            Some(l) => l.min(c.len()),
            None => c.len(),
        };
        let idx: Vec<usize> = (0..n).collect();
        let cfg = EngineConfig { threads, batch, ..EngineConfig::default() };
        let acc = flickertag::evaluate::evaluate(&m, &c, &idx, &cfg, |_| {})?;
        let mut v = serde_json::to_value(&acc).expect("serializable");
        v["model"] = m.name.clone().into();
        Ok(v.to_string())
    })
}

/// Checks a run folder as strictly as `flickertag report` reads it (summary schema and
/// keys, taps against layers, every array's dtype, order, shape and length against the
/// summary) without reading the bulk of its arrays; an error names the file.
#[gen_stub_pyfunction]
#[pyfunction]
fn check_run_folder(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    detached(py, || flickertag::report::run_folder::check_run_folder(&path))
}

/// The licence notices of what flickertag embeds (the pretrained ResNet-32, the ten images).
#[gen_stub_pyfunction]
#[pyfunction]
fn notice() -> &'static str {
    flickertag::embedded::NOTICE
}

/// Where the embedded ResNet-32 comes from, as recorded in a run's `model.source`.
#[gen_stub_pyfunction]
#[pyfunction]
fn embedded_source() -> &'static str {
    flickertag::embedded::RESNET32_SOURCE
}

/// Copies a run folder to `dest` atomically (it appears complete or not at all); an
/// earlier run there is replaced only with `force`, other files never.
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (src, dest, force=false))]
fn copy_run_folder(py: Python<'_>, src: PathBuf, dest: PathBuf, force: bool) -> PyResult<PathBuf> {
    detached(py, || flickertag::run::copy_run_folder(&src, &dest, force))
}

/// Runs the `flickertag` command line with `argv` (the program name first) and returns
/// its exit status: the wheel's `flickertag` console script (`flickertag._cli:main`).
/// The GIL is released while the command runs.
#[gen_stub_pyfunction]
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| flickertag_cli::main(argv))
}

/// The loaded ONNX Runtime library and its execution providers, as JSON
/// (`{"library", "providers", "devices"}`).
#[gen_stub_pyfunction]
#[pyfunction]
fn providers(py: Python<'_>) -> PyResult<String> {
    detached(py, || engine::provider_report().map(|r| serde_json::to_string(&r).expect("serializable")))
}

/// Every analysis option at its default, as JSON (the library's defaults, which the CLI's
/// flags and `flickertag.analyze`'s keyword arguments must equal: tested).
#[gen_stub_pyfunction]
#[pyfunction]
fn default_options() -> String {
    serde_json::to_string(&AnalysisOptions::default()).expect("serializable")
}

/// Runs the oddball paradigm (`flickertag oddball`) with `options`, a JSON object of
/// `flickertag::run::oddball::OddballOptions`. With `out`, the run folder is written
/// there too. Ctrl-C stops the run between batches. Returns `(tables, summary,
/// folder)`: the run folder's tables by file name, the terminal summary, and the folder
/// written (None without `out`).
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, out=None, options="{}", data=None, progress=true, overwrite=false))]
#[allow(clippy::type_complexity)]
fn oddball<'py>(
    py: Python<'py>,
    model: &str,
    out: Option<PathBuf>,
    options: &str,
    data: Option<PathBuf>,
    progress: bool,
    overwrite: bool,
) -> PyResult<(Bound<'py, PyDict>, String, Option<PathBuf>)> {
    let opts = flickertag::run::oddball::OddballOptions::from_json(options).map_err(err)?;
    let (tables, summary, folder) = detached(py, || {
        let dd = data_dir(data)?;
        let mut m = Model::load(model, dd.as_deref())?;
        let mut report = stage_progress(progress);
        let run = opts.run(&mut m, dd.as_deref(), &mut report, Some(&python_signalled))?;
        let folder = match out {
            Some(out) => Some(run.save(&out, overwrite)?),
            None => None,
        };
        Ok((run.tables(), run.summary(), folder))
    })?;
    Ok((tables_dict(py, tables)?, summary, folder))
}

/// A run's tables by file name as a dict of bytes.
fn tables_dict<'py>(py: Python<'py>, tables: Vec<(&'static str, Vec<u8>)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, bytes) in tables {
        d.set_item(name, pyo3::types::PyBytes::new(py, &bytes))?;
    }
    Ok(d)
}

/// Runs `flickertag importance-truth` with `options`, a JSON object of
/// `flickertag::run::truth::TruthOptions` (its `extra` criteria included). With `out`,
/// the run folder is written there too. Returns `(tables, summary, folder)`: the run
/// folder's tables by file name, the terminal summary, and the folder written (None
/// without `out`).
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, out=None, options="{}", data=None, progress=true, overwrite=false))]
#[allow(clippy::type_complexity)]
fn importance_truth<'py>(
    py: Python<'py>,
    model: &str,
    out: Option<PathBuf>,
    options: &str,
    data: Option<PathBuf>,
    progress: bool,
    overwrite: bool,
) -> PyResult<(Bound<'py, PyDict>, String, Option<PathBuf>)> {
    let opts = flickertag::run::truth::TruthOptions::from_json(options).map_err(err)?;
    let (tables, summary, folder) = detached(py, || {
        let dd = need_data(data)?;
        let m = Model::load(model, Some(&dd))?;
        let mut report = stage_progress(progress);
        let run = opts.run(&m, &dd, &mut |d, t| report("filters ablated", d, t))?;
        let folder = match out {
            Some(out) => Some(run.save(&out, overwrite)?),
            None => None,
        };
        Ok((run.tables(), run.summary(), folder))
    })?;
    Ok((tables_dict(py, tables)?, summary, folder))
}

/// The localisation cases that `cam` with `options` (a JSON object of
/// `flickertag::run::cam::CamOptions`) evaluates: `(cases, canvases)`, a JSON object
/// `{"layer": tap, "cases": [{image, label, x, y, background}]}` and the canvases as
/// float32 `[n, 3, S, S]` in [0, 1], for methods computed outside flickertag (Grad-CAM).
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, options="{}", data=None))]
#[gen_stub(override_return_type(type_repr = "typing.Tuple[str, numpy.ndarray]", imports = ("typing", "numpy")))]
fn cam_canvases<'py>(
    py: Python<'py>,
    model: &str,
    options: &str,
    data: Option<PathBuf>,
) -> PyResult<(String, Bound<'py, PyAny>)> {
    let opts = flickertag::run::cam::CamOptions::from_json(options).map_err(err)?;
    let (cfg, pixels) = detached(py, || {
        let dd = need_data(data)?;
        let m = Model::load(model, Some(&dd))?;
        opts.canvases(&m, &dd)
    })?;
    let (n, side) = (cfg.cases.len(), cfg.canvas);
    let json = serde_json::json!({"layer": cfg.layer, "cases": cfg.cases}).to_string();
    Ok((json, PyArray::from_vec(py, pixels).reshape([n, 3, side, side])?.into_any()))
}

/// Runs `flickertag cam` with `options`, a JSON object of
/// `flickertag::run::cam::CamOptions` (its `extra` methods included). With `out`, the
/// run folder is written there too. Returns `(tables, summary, folder)`.
#[gen_stub_pyfunction]
#[pyfunction]
#[pyo3(signature = (model, out=None, options="{}", data=None, progress=true, overwrite=false))]
#[allow(clippy::type_complexity)]
fn cam<'py>(
    py: Python<'py>,
    model: &str,
    out: Option<PathBuf>,
    options: &str,
    data: Option<PathBuf>,
    progress: bool,
    overwrite: bool,
) -> PyResult<(Bound<'py, PyDict>, String, Option<PathBuf>)> {
    let opts = flickertag::run::cam::CamOptions::from_json(options).map_err(err)?;
    let (tables, summary, folder) = detached(py, || {
        let dd = need_data(data)?;
        let m = Model::load(model, Some(&dd))?;
        let mut report = stage_progress(progress);
        let run = opts.run(&m, &dd, &mut |d, t| report("cases", d, t))?;
        let folder = match out {
            Some(out) => Some(run.save(&out, overwrite)?),
            None => None,
        };
        Ok((run.tables(), run.summary(), folder))
    })?;
    Ok((tables_dict(py, tables)?, summary, folder))
}

/// The data folder of a run that needs CIFAR-10: `data`, else `FLICKERTAG_DATA`, else an
/// error saying what to pass.
fn need_data(data: Option<PathBuf>) -> flickertag::Result<PathBuf> {
    data_dir(data)?.ok_or_else(|| {
        flickertag::Error::param("data", "a data folder with CIFAR-10 (set FLICKERTAG_DATA or pass data=)", "none")
    })
}

/// The extension module.
#[pymodule]
fn _flickertag(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(set_ort_library, m)?)?;
    m.add_function(wrap_pyfunction!(ort_library, m)?)?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(taps, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(notice, m)?)?;
    m.add_function(wrap_pyfunction!(embedded_source, m)?)?;
    m.add_function(wrap_pyfunction!(copy_run_folder, m)?)?;
    m.add_function(wrap_pyfunction!(check_run_folder, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(providers, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(oddball, m)?)?;
    m.add_function(wrap_pyfunction!(importance_truth, m)?)?;
    m.add_function(wrap_pyfunction!(cam, m)?)?;
    m.add_function(wrap_pyfunction!(cam_canvases, m)?)?;
    m.add_function(wrap_pyfunction!(default_options, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    Ok(())
}

pyo3_stub_gen::module_variable!("flickertag._flickertag", "__version__", String);

/// The stub metadata the derives above collect, placed by the repository's
/// `pyproject.toml` (`python-source`, `module-name`): `src/bin/stub_gen.rs` writes it.
pub fn stub_info() -> pyo3_stub_gen::Result<pyo3_stub_gen::StubInfo> {
    pyo3_stub_gen::StubInfo::from_pyproject_toml(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pyproject.toml"))
}
