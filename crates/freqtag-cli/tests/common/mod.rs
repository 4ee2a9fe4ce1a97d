//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The data folder from `FREQTAG_DATA`. Unset: `None` (the test skips, saying so).
/// Set but incomplete: panic, naming what is missing.
pub fn data_dir() -> Option<PathBuf> {
    let Some(d) = std::env::var_os("FREQTAG_DATA") else {
        eprintln!("skipping: FREQTAG_DATA is not set (point it at ../shared/data to run this test)");
        return None;
    };
    let d = PathBuf::from(d);
    let need = [
        "cifar10/test_batch.bin",
        "models/resnet20-cifar10.th",
        "models/resnet32-cifar10.th",
        "models/resnet44-cifar10.th",
        "models/resnet56-cifar10.th",
    ];
    for f in need {
        assert!(d.join(f).is_file(), "FREQTAG_DATA={} is set but {f} is missing", d.display());
    }
    Some(d)
}

/// The freqtag binary built for this test run.
pub fn freqtag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_freqtag"))
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("spawn freqtag");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs `freqtag demo` into `dir/run` with no data folder, no user cache and no
/// FREQTAG_DATA (the data-free path); returns the run folder and stderr.
pub fn demo_without_data(dir: &std::path::Path, extra: &[&str]) -> (PathBuf, String) {
    let out = dir.join("run");
    let (code, _, err) = run(freqtag()
        .args(["demo", "--out", out.to_str().unwrap()])
        .args(extra)
        .env_remove("FREQTAG_DATA")
        .env("HOME", dir)
        .env("XDG_CACHE_HOME", dir));
    assert_eq!(code, 0, "{err}");
    (out, err)
}
