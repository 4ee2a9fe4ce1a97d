//! Progress for logs: one plain line every so often, never a carriage return.
//!
//! A terminal gets a live bar from the faces (the CLI draws one with `indicatif`); a log
//! file, a SLURM output file or a notebook's server log gets [`ProgressLines`]: a line
//! when the work starts, at most one every [`ProgressLines::every`] (10 s by default)
//! after that, and one when it ends, each with the rate and the estimated time left:
//!
//! ```text
//! images: 40/100 (40 %), 3.2 s elapsed, 12.5/s, ETA 4.8 s
//! ```
//!
//! The type only decides *when* to print and *what*: the caller writes the line where
//! its face writes (stderr for the CLI and Python), so it is tested without a clock.

use std::time::{Duration, Instant};

/// Decides when a log line is due and formats it (see the module docs).
#[derive(Debug, Clone)]
pub struct ProgressLines {
    what: String,
    total: u64,
    start: Instant,
    last: Option<Duration>,
    finished: bool,
    /// The least time between two lines (the first and the last line are always due).
    pub every: Duration,
}

impl ProgressLines {
    /// Progress of `total` units of `what` (`"images"`, `"ablations"`), started now.
    /// `total` 0 means unknown (no percentage or ETA until [`Self::set_total`]).
    pub fn new(what: &str, total: u64) -> ProgressLines {
        ProgressLines {
            what: what.to_string(),
            total,
            start: Instant::now(),
            last: None,
            finished: false,
            every: Duration::from_secs(10),
        }
    }

    /// Changes the total (work whose size is learnt on the way, such as a download).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    /// The line due now that `done` units are done, if one is.
    pub fn update(&mut self, done: u64) -> Option<String> {
        self.update_at(done, self.start.elapsed())
    }

    /// The line due at `elapsed` since the start with `done` units done, if one is: the
    /// first update, the one that reaches the total, and otherwise at most one per
    /// [`Self::every`]. Nothing after the final line.
    pub fn update_at(&mut self, done: u64, elapsed: Duration) -> Option<String> {
        if self.finished {
            return None;
        }
        let complete = self.total > 0 && done >= self.total;
        let due = match self.last {
            None => true,
            Some(t) => complete || elapsed.saturating_sub(t) >= self.every,
        };
        if !due {
            return None;
        }
        self.last = Some(elapsed);
        self.finished = complete;
        Some(self.line(done, elapsed))
    }

    /// The line for `done` units at `elapsed`, whether due or not.
    pub fn line(&self, done: u64, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let mut s = if self.total > 0 {
            let pct = 100.0 * done as f64 / self.total as f64;
            format!("{}: {done}/{} ({pct:.0} %), {} elapsed", self.what, self.total, human(secs))
        } else {
            format!("{}: {done}, {} elapsed", self.what, human(secs))
        };
        if done > 0 && secs > 0.0 {
            let rate = done as f64 / secs;
            s.push_str(&format!(", {rate:.1}/s"));
            if self.total > done {
                s.push_str(&format!(", ETA {}", human((self.total - done) as f64 / rate)));
            }
        }
        s
    }
}

/// Seconds as `4.8 s`, `3 min 12 s` or `2 h 05 min`.
fn human(secs: f64) -> String {
    if !secs.is_finite() {
        return "unknown".into();
    }
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{} min {:02} s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{} h {:02} min", (secs / 3600.0) as u64, ((secs % 3600.0) / 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn progress_lines_are_throttled_and_carry_an_eta_without_carriage_returns() {
        let mut p = ProgressLines::new("images", 100);
        let first = p.update_at(0, at(0.0)).expect("the first update prints");
        assert_eq!(first, "images: 0/100 (0 %), 0.0 s elapsed");
        assert_eq!(p.update_at(10, at(2.0)), None, "within 10 s of the last line");
        let mid = p.update_at(40, at(10.0)).expect("10 s after the first line");
        // 40 in 10 s is 4/s: 60 left take 15 s.
        assert_eq!(mid, "images: 40/100 (40 %), 10.0 s elapsed, 4.0/s, ETA 15.0 s");
        let last = p.update_at(100, at(12.0)).expect("the last update prints at once");
        assert!(last.starts_with("images: 100/100 (100 %), 12.0 s elapsed"), "{last}");
        assert!(!last.contains("ETA"));
        assert_eq!(p.update_at(100, at(30.0)), None, "nothing after the end");
        for l in [first, mid, last] {
            assert!(!l.contains('\r') && !l.contains('\n'));
        }
    }

    #[test]
    fn progress_of_unknown_size_has_no_percentage_until_the_total_is_known() {
        let mut p = ProgressLines::new("download", 0);
        assert_eq!(p.update_at(5, at(1.0)).unwrap(), "download: 5, 1.0 s elapsed, 5.0/s");
        p.set_total(20);
        assert_eq!(p.update_at(10, at(11.0)).unwrap(), "download: 10/20 (50 %), 11.0 s elapsed, 0.9/s, ETA 11.0 s");
        assert_eq!(human(192.0), "3 min 12 s");
        assert_eq!(human(7500.0), "2 h 05 min");
    }
}
