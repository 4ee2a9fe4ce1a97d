//! The `flickertag` command line as a library: [`main`] parses a command line, runs it
//! and returns the process exit status. The `flickertag` binary (`src/main.rs`) and the
//! Python wheel's console script (`flickertag._flickertag.cli_main`) both call it, so
//! `pip install flickertag` gives the same command as a Rust build.

pub mod cli;

use std::ffi::OsString;

use clap::Parser;

/// Runs the command line `args` (the program name first, as in `std::env::args_os`)
/// and returns the exit status: 0 on success, 1 when the command failed (the error is
/// printed on stderr as `error: ...`), 2 for a command line clap cannot parse (its
/// message and usage printed), 0 for `--help` and `--version`.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match cli::args::Cli::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let filter = if args.quiet { "error" } else { "warn" };
    // A second call in one process (the Python console script, tests) keeps the first
    // subscriber: `try_init` instead of `init`, which would panic.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLICKERTAG_LOG").unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", cli::render_error(&e));
            1
        }
    }
}
