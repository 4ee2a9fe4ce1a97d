//! Run folders that are atomic and exclusive.
//!
//! A run is written into a temporary sibling of its folder (`.NAME.freqtag-tmp-PID`)
//! and renamed into place only when every file is complete ([`RunFolder::commit`]), so
//! after a kill at any moment `--out` holds the previous complete run or nothing; a
//! full disk or any other error leaves `--out` as it was. The parent folder is
//! checked for writability (by creating the temporary folder) before any work. A lock
//! file beside the folder (`.NAME.freqtag-lock`, `flock`) keeps two runs out of one
//! folder, and the run holding it removes what killed runs left behind. An existing
//! folder holding another run is replaced only with `force`; a folder holding files
//! that are not freqtag's is never replaced.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file that marks a folder as a complete freqtag run; it holds the run's kind.
pub const MARKER: &str = ".freqtag-run";

/// A run folder being written; see the module docs.
#[derive(Debug)]
pub struct RunFolder {
    out: PathBuf,
    tmp: PathBuf,
    kind: String,
    _lock: File,
    committed: bool,
}

fn sibling(out: &Path, suffix: &str) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| Error::param("out", "a folder path with a name", out.display()))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{}.freqtag-{suffix}", name.to_string_lossy())))
}

/// Whether `dir` holds a freqtag run (the marker, or the files every run writes).
pub fn is_run_folder(dir: &Path) -> bool {
    [MARKER, "summary.json", "prune.json"].iter().any(|f| dir.join(f).is_file())
}

impl RunFolder {
    /// Prepares writing a run of `kind` (`analyze`, `prune-eval`, `report`) to `out`:
    /// takes the lock, removes leftovers of killed runs, checks that an existing `out`
    /// may be replaced (`force` for another run; never for foreign files), and creates
    /// the temporary folder (which proves the parent writable). Errors name the folder.
    pub fn create(out: &Path, force: bool, kind: &str) -> Result<RunFolder> {
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let lock_path = sibling(out, "lock")?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::param(
                    "out",
                    "a folder no other freqtag run is writing to (another run holds its lock)",
                    out.display(),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        // Leftovers of killed runs (temporary or displaced folders): ours to remove now.
        let prefix = sibling(out, "")?;
        let prefix = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(parent) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) && (n.contains("freqtag-tmp-") || n.contains("freqtag-old-")) {
                    std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
                }
            }
        }
        if out.exists() {
            let meta = std::fs::symlink_metadata(out).map_err(|e| Error::io(out, e))?;
            let empty = meta.is_dir() && std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_none();
            if !meta.is_dir() {
                return Err(Error::param("out", "a folder (this is a file)", out.display()));
            }
            if !empty && !is_run_folder(out) {
                return Err(Error::param(
                    "out",
                    "an empty folder or one holding a freqtag run (this one holds other files; freqtag does not replace them)",
                    out.display(),
                ));
            }
            if !empty && !force {
                return Err(Error::param(
                    "out",
                    "a folder without a run in it, or --force to replace that run",
                    out.display(),
                ));
            }
        }
        let tmp = sibling(out, &format!("tmp-{}", std::process::id()))?;
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(RunFolder { out: out.to_path_buf(), tmp, kind: kind.to_string(), _lock: lock, committed: false })
    }

    /// Where the run's files go until [`RunFolder::commit`].
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The folder the run ends in.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Marks the run complete and renames it into place (replacing an earlier run, which
    /// is moved aside first and then removed). Returns the final path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let marker = self.tmp.join(MARKER);
        std::fs::write(&marker, format!("{}\n", self.kind)).map_err(|e| Error::io(&marker, e))?;
        sync_dir(&self.tmp);
        let old = sibling(&self.out, &format!("old-{}", std::process::id()))?;
        let displaced = if self.out.exists() {
            std::fs::rename(&self.out, &old).map_err(|e| Error::io(&self.out, e))?;
            true
        } else {
            false
        };
        std::fs::rename(&self.tmp, &self.out).map_err(|e| Error::io(&self.out, e))?;
        self.committed = true;
        if let Some(p) = self.out.parent() {
            sync_dir(p);
        }
        if displaced {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(self.out.clone())
    }
}

impl Drop for RunFolder {
    /// An uncommitted run (an error, a panic) leaves nothing behind.
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Flushes a folder's entries to disk (best effort: not every file system supports it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_appears_only_when_committed_and_replaces_only_with_force() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let f = RunFolder::create(&out, false, "analyze").unwrap();
        std::fs::write(f.path().join("summary.json"), "{}").unwrap();
        assert!(!out.exists(), "nothing in place before commit");
        f.commit().unwrap();
        assert!(out.join(MARKER).is_file() && out.join("summary.json").is_file());
        let e = RunFolder::create(&out, false, "analyze").unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        let f = RunFolder::create(&out, true, "analyze").unwrap();
        std::fs::write(f.path().join("layers.csv"), "x").unwrap();
        f.commit().unwrap();
        assert!(out.join("layers.csv").is_file() && !out.join("summary.json").exists(), "old files are gone");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "the run and its lock file only: {names:?}");
    }

    #[test]
    fn an_uncommitted_run_leaves_nothing_and_foreign_folders_are_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        {
            let f = RunFolder::create(&out, false, "analyze").unwrap();
            std::fs::write(f.path().join("half.csv"), "a,b\n1,").unwrap();
        }
        assert!(!out.exists());
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("thesis.tex"), "x").unwrap();
        let e = RunFolder::create(&out, true, "analyze").unwrap_err().to_string();
        assert!(e.contains("other files"), "{e}");
    }

    #[test]
    fn a_second_writer_is_refused_and_leftovers_of_killed_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let leftover = d.path().join(".run.freqtag-tmp-999999");
        std::fs::create_dir(&leftover).unwrap();
        let first = RunFolder::create(&out, false, "analyze").unwrap();
        assert!(!leftover.exists());
        let e = RunFolder::create(&out, false, "analyze").unwrap_err().to_string();
        assert!(e.contains("another run holds its lock"), "{e}");
        drop(first);
        assert!(RunFolder::create(&out, false, "analyze").is_ok());
    }
}
