//! Loading ONNX Runtime (the shared library, once per process) and building its
//! sessions; [`crate::engine`] runs them, [`crate::model`] probes a graph with one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::error::{runtime, Error, Result};

/// The ONNX Runtime version flickertag is built and tested against (the PyPI wheel).
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
        v.push(c.join("flickertag/onnxruntime").join(ORT_VERSION).join("libonnxruntime.so"));
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
                    "libonnxruntime.so not found (looked at {}). From Python: `pip install onnxruntime` \
                     (flickertag's wheel depends on it). In a checkout: run `make setup` or \
                     `scripts/fetch-ort.sh` (downloads the onnxruntime {ORT_VERSION} wheel from PyPI), \
                     or set ORT_DYLIB_PATH",
                    cands.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            };
            let builder = ort::init_from(lib).map_err(|e| format!("loading {}: {e}", lib.display()))?;
            builder.with_name("flickertag").build().map_err(|e| format!("starting {}: {e}", lib.display()))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// Where a network runs: the execution provider asked of ONNX Runtime.
///
/// The choice is made at run time from the library that is loaded (the `onnxruntime`
/// wheel offers the CPU only, `onnxruntime-gpu` the CPU and CUDA): no build of flickertag
/// is tied to one. [`available_providers`] lists what the loaded library offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider (needs the GPU build of ONNX Runtime, an
    /// NVIDIA driver and the CUDA libraries it was built for); an error if it cannot start.
    Cuda,
}

impl Device {
    /// The names [`Device`] parses, for messages.
    pub const NAMES: &'static str = "cpu or cuda";

    /// The name as given on a command line or in Python (`cpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            _ => Err(Error::param("device", Device::NAMES, s)),
        }
    }
}

/// The execution providers the loaded ONNX Runtime library offers, in its order of
/// preference (`["CPUExecutionProvider"]` for the `onnxruntime` wheel;
/// `"CUDAExecutionProvider"` first for `onnxruntime-gpu`). Loads the library if needed.
pub fn available_providers() -> Result<Vec<String>> {
    init_runtime()?;
    // Hand-written: ort lists providers only privately (`is_ep_available`), so the C
    // API's own pair of calls is used directly.
    let api = ort::api();
    let mut names: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: the out-pointers are valid; on success ONNX Runtime owns `names`, an array
    // of `n` NUL-terminated strings, until ReleaseAvailableProviders.
    let status = unsafe { (api.GetAvailableProviders)(&mut names, &mut n) };
    if !status.0.is_null() {
        // SAFETY: a non-null status is ONNX Runtime's to release.
        unsafe { (api.ReleaseStatus)(status.0) };
        return Err(Error::Runtime("ONNX Runtime could not list its execution providers".into()));
    }
    let mut out = Vec::new();
    if !names.is_null() {
        for i in 0..n.max(0) as usize {
            // SAFETY: i < n, and each entry is a NUL-terminated string (see above).
            let p = unsafe { *names.add(i) };
            if !p.is_null() {
                out.push(unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned());
            }
        }
        // SAFETY: releasing exactly what GetAvailableProviders returned.
        let st = unsafe { (api.ReleaseAvailableProviders)(names, n) };
        if !st.0.is_null() {
            unsafe { (api.ReleaseStatus)(st.0) };
        }
    }
    Ok(out)
}

/// The loaded ONNX Runtime library and what it can run on, as `flickertag providers`
/// and `flickertag.providers()` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderReport {
    /// The library's path (None if none was found).
    pub library: Option<PathBuf>,
    /// Its execution providers, in its order of preference.
    pub providers: Vec<String>,
    /// The [`Device`] values that work with it (`cpu`, and `cuda` with its provider).
    pub devices: Vec<Device>,
}

/// The [`ProviderReport`] of the library flickertag loads (loading it if needed).
pub fn provider_report() -> Result<ProviderReport> {
    let providers = available_providers()?;
    let library = ort_library_candidates().into_iter().find(|p| p.is_file());
    let mut devices = vec![Device::Cpu];
    if providers.iter().any(|p| p == "CUDAExecutionProvider") {
        devices.push(Device::Cuda);
    }
    Ok(ProviderReport { library, providers, devices })
}

/// What to install for CUDA, for messages.
const CUDA_ADVICE: &str = "install the GPU build of ONNX Runtime: `pip install 'flickertag[gpu]'` \
     (if `onnxruntime` is installed too, `pip uninstall -y onnxruntime` and reinstall `onnxruntime-gpu`, \
     since both provide the same module), or for a Rust build set ORT_DYLIB_PATH to the \
     libonnxruntime.so of the onnxruntime-gpu wheel";

/// `b` with the CUDA execution provider registered; an error saying what to install when
/// the loaded library has no CUDA provider or it cannot start (no driver, wrong CUDA).
pub(crate) fn with_cuda(b: SessionBuilder) -> Result<SessionBuilder> {
    let providers = available_providers()?;
    let lib = ort_library_candidates().into_iter().find(|p| p.is_file());
    let lib = lib.map(|p| p.display().to_string()).unwrap_or_else(|| "?".into());
    if !providers.iter().any(|p| p == "CUDAExecutionProvider") {
        return Err(Error::Param {
            name: "device",
            reason: format!(
                "the CUDA execution provider, which the ONNX Runtime library loaded ({lib}) does not have \
                 (it offers {}): {CUDA_ADVICE}",
                providers.join(", ")
            ),
            given: "cuda".into(),
        });
    }
    b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()]).map_err(|e| Error::Param {
        name: "device",
        reason: format!(
            "a CUDA execution provider that starts; {lib} has one but it failed ({e}). Check the NVIDIA \
             driver (`nvidia-smi`) and that the CUDA and cuDNN libraries onnxruntime-gpu needs are installed"
        ),
        given: "cuda".into(),
    })
}

/// A session builder with flickertag's settings: `threads` intra-op threads (0: one per
/// core), graph optimization on or off, no spinning between runs, ONNX Runtime's own
/// log silenced (its errors come back as flickertag's).
pub(crate) fn session_builder(threads: usize, optimize: bool) -> Result<SessionBuilder> {
    let env = init_runtime()?;
    let e = |e: ort::Error<SessionBuilder>| Error::Runtime(e.to_string());
    let level = if optimize { GraphOptimizationLevel::All } else { GraphOptimizationLevel::Disable };
    let mut b = ort::session::Session::builder(env).map_err(runtime)?.with_optimization_level(level).map_err(e)?;
    if threads > 0 {
        b = b.with_intra_threads(threads).map_err(e)?;
    }
    // ONNX Runtime's threads spin after a run, waiting for the next one; flickertag
    // works on the spectra between runs, so they would take its cores. Stopping
    // the spin: analysis 3 % faster, plain inference unchanged (measured).
    b = b.with_config_entry("session.force_spinning_stop", "1").map_err(e)?;
    // Failures come back as errors with their message; ONNX Runtime's own log
    // would print them a second time (and a failed probe is expected).
    b.with_log_level(ort::logging::LogLevel::Fatal).map_err(e)
}
