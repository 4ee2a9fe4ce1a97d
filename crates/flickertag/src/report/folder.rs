//! Run folders that are atomic and exclusive.
//!
//! A run is written into a temporary sibling of its folder (`.NAME.flickertag-tmp-PID`)
//! and renamed into place only when every file is complete ([`RunFolder::commit`]), so
//! after a kill at any moment `--out` holds the previous complete run or nothing; a
//! full disk or any other error leaves `--out` as it was. The parent folder is
//! checked for writability (by creating the temporary folder) before any work. A lock
//! file beside the folder (`.NAME.flickertag-lock`, `flock`) keeps two runs out of one
//! folder while one is writing, and the run holding it removes what killed runs left
//! behind; the lock file is removed when the run ends (done or failed), so a finished
//! run leaves only its folder. A run that takes the lock checks that the file it locked
//! is still the one at that path (a run ending at that moment may have just removed it)
//! and takes the new one otherwise. An existing
//! folder holding another run is replaced only with `force`; a folder holding files
//! that are not flickertag's is never replaced.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file that marks a folder as a complete flickertag run; it holds the run's kind.
pub const MARKER: &str = ".flickertag-run";

/// A run folder being written; see the module docs.
#[derive(Debug)]
pub struct RunFolder {
    out: PathBuf,
    tmp: PathBuf,
    kind: String,
    _lock: File,
    lock_path: PathBuf,
    committed: bool,
}

/// Takes the lock file at `path`: exclusive (`flock`), and the file still at that path
/// when taken (a run that ends removes its lock file while holding it, so a lock taken
/// on the removed file would not exclude anyone). Errors name the folder `out`.
fn take_lock(path: &Path, out: &Path) -> Result<File> {
    // Each retry means another run removed the file between our open and our lock: a
    // few are plenty, and the bound keeps a pathological file system from looping.
    for _ in 0..16 {
        let lock =
            File::options().create(true).truncate(false).write(true).open(path).map_err(|e| Error::io(path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::param(
                    "out",
                    "a folder no other flickertag run is writing to (another run holds its lock)",
                    out.display(),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        if same_file(&lock, path) {
            return Ok(lock);
        }
    }
    Err(Error::param("out", "a folder whose lock file stays in place (it kept being replaced)", out.display()))
}

/// Whether the open file `f` is the file now at `path`.
fn same_file(f: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (f.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (f, path);
        true
    }
}

fn sibling(out: &Path, suffix: &str) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| Error::param("out", "a folder path with a name", out.display()))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{}.flickertag-{suffix}", name.to_string_lossy())))
}

/// Whether `dir` holds a flickertag run (the marker, or the files every run writes).
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
        let lock = take_lock(&lock_path, out)?;
        // Leftovers of killed runs (temporary or displaced folders): ours to remove now.
        let prefix = sibling(out, "")?;
        let prefix = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(parent) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) && (n.contains("flickertag-tmp-") || n.contains("flickertag-old-")) {
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
                    "an empty folder or one holding a flickertag run (this one holds other files; flickertag does not replace them)",
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
        // `committed` until the temporary folder exists: a failure here removes only the lock.
        let mut folder =
            RunFolder { out: out.to_path_buf(), tmp, kind: kind.to_string(), _lock: lock, lock_path, committed: true };
        std::fs::create_dir(&folder.tmp).map_err(|e| Error::io(&folder.tmp, e))?;
        folder.committed = false;
        Ok(folder)
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
    /// An uncommitted run (an error, a panic) leaves nothing behind; the lock file goes
    /// in every case, removed while still held (see the module docs).
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        let _ = std::fs::remove_file(&self.lock_path);
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
        assert_eq!(names, ["run"], "the run only, no lock file left: {names:?}");
    }

    #[test]
    fn lock_files_are_removed_after_success_and_failure() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let lock = d.path().join(".run.flickertag-lock");
        let f = RunFolder::create(&out, false, "analyze").unwrap();
        assert!(lock.is_file(), "held while the run writes");
        f.commit().unwrap();
        assert!(!lock.exists(), "removed after success");
        let f = RunFolder::create(&out, true, "analyze").unwrap();
        drop(f);
        assert!(!lock.exists(), "removed after a failed run");
        assert!(out.join(MARKER).is_file(), "the failed run left the earlier one in place");
    }

    #[test]
    fn a_lock_taken_on_a_removed_lock_file_is_taken_again_on_the_new_one() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let lock = d.path().join(".run.flickertag-lock");
        // A file opened (and so lockable) but no longer at the path: what a run that
        // ends between another's open and lock leaves.
        std::fs::write(&lock, "").unwrap();
        let stale = File::open(&lock).unwrap();
        std::fs::remove_file(&lock).unwrap();
        std::fs::write(&lock, "").unwrap();
        assert!(!same_file(&stale, &lock));
        let first = RunFolder::create(&out, false, "analyze").unwrap();
        assert!(same_file(&first._lock, &lock), "the lock is the file at the path");
        let e = RunFolder::create(&out, false, "analyze").unwrap_err().to_string();
        assert!(e.contains("another run holds its lock"), "{e}");
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
        let leftover = d.path().join(".run.flickertag-tmp-999999");
        std::fs::create_dir(&leftover).unwrap();
        let first = RunFolder::create(&out, false, "analyze").unwrap();
        assert!(!leftover.exists());
        let e = RunFolder::create(&out, false, "analyze").unwrap_err().to_string();
        assert!(e.contains("another run holds its lock"), "{e}");
        drop(first);
        assert!(RunFolder::create(&out, false, "analyze").is_ok());
    }
}
