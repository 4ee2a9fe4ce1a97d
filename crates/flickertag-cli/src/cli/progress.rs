//! Progress as the CLI shows it: a live bar on a terminal, plain lines with an ETA in a
//! log (a redirected stderr, a SLURM output file), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;

use flickertag::progress::ProgressLines;
use indicatif::{ProgressBar, ProgressStyle};

/// One piece of work's progress (see the module docs).
pub enum Progress {
    /// A terminal: indicatif's bar.
    Bar(ProgressBar),
    /// Not a terminal: a line every 10 s and at the end.
    Lines(Mutex<(ProgressLines, u64)>),
    /// `--quiet` or `--json`.
    Hidden,
}

impl Progress {
    /// Progress of `len` units of `what` (0: unknown until [`Progress::set_length`]).
    pub fn new(quiet: bool, len: u64, what: &str) -> Progress {
        if quiet {
            return Progress::Hidden;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(Mutex::new((ProgressLines::new(what, len), 0)));
        }
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Progress::Bar(pb)
    }

    /// Sets how many units are done.
    pub fn set_position(&self, done: u64) {
        match self {
            Progress::Bar(pb) => pb.set_position(done),
            Progress::Lines(m) => {
                let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                g.1 = done;
                if let Some(line) = g.0.update(done) {
                    eprintln!("{line}");
                }
            }
            Progress::Hidden => {}
        }
    }

    /// Adds `k` done units.
    pub fn inc(&self, k: u64) {
        let done = match self {
            Progress::Bar(pb) => pb.position() + k,
            Progress::Lines(m) => m.lock().unwrap_or_else(|p| p.into_inner()).1 + k,
            Progress::Hidden => return,
        };
        self.set_position(done);
    }

    /// Sets the total.
    pub fn set_length(&self, len: u64) {
        match self {
            Progress::Bar(pb) => pb.set_length(len),
            Progress::Lines(m) => m.lock().unwrap_or_else(|p| p.into_inner()).0.set_total(len),
            Progress::Hidden => {}
        }
    }

    /// Ends the display: the bar is cleared; a log keeps its lines.
    pub fn finish_and_clear(&self) {
        if let Progress::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}
