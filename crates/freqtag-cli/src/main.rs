//! The `freqtag` binary: parses flags and calls the library (see `cli`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`freqtag lines | head`) like other Unix tools.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to the default before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::args::Cli::parse();
    let filter = if args.quiet { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FREQTAG_LOG").unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
