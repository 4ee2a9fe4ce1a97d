//! Loading ONNX Runtime (the shared library, once per process) and building its
//! sessions; [`crate::engine`] runs them, [`crate::model`] probes a graph with one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::error::{runtime, Error, Result};

/// The ONNX Runtime version freqtag is built and tested against (the PyPI wheel).
pub const ORT_VERSION: &str = "1.31.1";

static LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Uses the ONNX Runtime shared library at `path` (before `ORT_DYLIB_PATH` and the
/// caches). The Python package passes the library of the `onnxruntime` wheel it
/// depends on. Must be called before the first session is built; returns false when
/// a library was already chosen.
pub fn set_library_path(path: PathBuf) -> bool {
    LIBRARY.set(path).is_ok() && RUNTIME.get().is_none()
}

/// Where to look for `libonnxruntime.so`, in order.
pub fn ort_library_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = LIBRARY.get() {
        v.push(p.clone());
        return v;
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        v.push(PathBuf::from(p));
        return v;
    }
    let rel = Path::new(".cache/onnxruntime").join(ORT_VERSION).join("libonnxruntime.so");
    // The workspace root of this build (a checkout where `make` fetched the library).
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(&rel));
    if let Ok(cwd) = std::env::current_dir() {
        v.push(cwd.join(&rel));
    }
    if let Some(c) = dirs::cache_dir() {
        v.push(c.join("freqtag/onnxruntime").join(ORT_VERSION).join("libonnxruntime.so"));
    }
    v
}

static RUNTIME: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process. Errors say where it looked and how to get it.
pub(crate) fn init_runtime() -> Result<&'static ort::environment::Environment> {
    RUNTIME
        .get_or_init(|| {
            let cands = ort_library_candidates();
            let Some(lib) = cands.iter().find(|p| p.is_file()) else {
                return Err(format!(
                    "libonnxruntime.so not found (looked at {}). Run `make setup` or `scripts/fetch-ort.sh` \
                     (downloads the onnxruntime {ORT_VERSION} wheel from PyPI), or set ORT_DYLIB_PATH",
                    cands.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            };
            let builder = ort::init_from(lib).map_err(|e| format!("loading {}: {e}", lib.display()))?;
            builder.with_name("freqtag").build().map_err(|e| format!("starting {}: {e}", lib.display()))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// A session builder with freqtag's settings: `threads` intra-op threads (0: one per
/// core), graph optimization on or off, no spinning between runs, ONNX Runtime's own
/// log silenced (its errors come back as freqtag's).
pub(crate) fn session_builder(threads: usize, optimize: bool) -> Result<SessionBuilder> {
    let env = init_runtime()?;
    let e = |e: ort::Error<SessionBuilder>| Error::Runtime(e.to_string());
    let level = if optimize { GraphOptimizationLevel::All } else { GraphOptimizationLevel::Disable };
    let mut b = ort::session::Session::builder(env).map_err(runtime)?.with_optimization_level(level).map_err(e)?;
    if threads > 0 {
        b = b.with_intra_threads(threads).map_err(e)?;
    }
    // ONNX Runtime's threads spin after a run, waiting for the next one; freqtag
    // works on the spectra between runs, so they would take its cores. Stopping
    // the spin: analysis 3 % faster, plain inference unchanged (measured).
    b = b.with_config_entry("session.force_spinning_stop", "1").map_err(e)?;
    // Failures come back as errors with their message; ONNX Runtime's own log
    // would print them a second time (and a failed probe is expected).
    b.with_log_level(ort::logging::LogLevel::Fatal).map_err(e)
}
