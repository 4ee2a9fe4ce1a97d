//! The `flickertag` binary: everything is in the library ([`flickertag_cli::main`]).

fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`flickertag lines | head`) like other Unix tools.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to the default before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = flickertag_cli::main(std::env::args_os());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
