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
//! folder holding another run is replaced only with `force`, and only when it is exactly
//! a run flickertag wrote: its manifest ([`super::manifest`]) lists every file in it. A
//! folder holding anything else (a user's notes added to a run, a home folder that
//! happens to hold a `summary.json`) is never replaced: the error lists what is foreign.
//! Leftovers of killed runs are recognised by the marker flickertag wrote into them,
//! never by their name alone.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use super::manifest::MARKER;
use super::manifest::{foreign_entries, is_manifest_run, list_some, Manifest, TMP_MARKER};

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

pub(crate) fn sibling(out: &Path, suffix: &str) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| Error::param("out", "a folder path with a name", out.display()))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{}.flickertag-{suffix}", name.to_string_lossy())))
}

/// Whether `dir` is a complete flickertag run: a manifest, and nothing in the folder that
/// the manifest does not list.
pub fn is_run_folder(dir: &Path) -> bool {
    is_manifest_run(dir)
}

/// Checks that the existing folder `out` may be replaced by a new run: it is empty, or it
/// is exactly a flickertag run (`force` needed then). Errors list the foreign files.
fn check_replaceable(out: &Path, force: bool) -> Result<()> {
    let meta = std::fs::symlink_metadata(out).map_err(|e| Error::io(out, e))?;
    if !meta.is_dir() {
        return Err(Error::param("out", "a folder (this is a file or a link)", out.display()));
    }
    if std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_none() {
        return Ok(());
    }
    let foreign = foreign_entries(out)?;
    if Manifest::read(out).is_none() {
        return Err(Error::param(
            "out",
            format!(
                "an empty folder or one holding a flickertag run; this one holds files flickertag did not \
                 write ({}), which it never deletes or replaces",
                list_some(&foreign)
            ),
            out.display(),
        ));
    }
    if !foreign.is_empty() {
        return Err(Error::param(
            "out",
            format!(
                "a flickertag run and nothing else; files were added to this run ({}): move them out \
                 or choose another folder (flickertag never deletes files it did not write)",
                list_some(&foreign)
            ),
            out.display(),
        ));
    }
    if !force {
        return Err(Error::param("out", "a folder without a run in it, or <force> to replace that run", out.display()));
    }
    Ok(())
}

/// Whether the sibling `path` is a leftover of a killed run of ours: a real folder (not a
/// link) holding the marker flickertag wrote into it (a temporary folder's, or a complete
/// run's with nothing foreign for a displaced one).
fn is_leftover(path: &Path, name: &str) -> bool {
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return false;
    }
    if name.contains("flickertag-tmp-") {
        std::fs::symlink_metadata(path.join(TMP_MARKER)).is_ok_and(|m| m.is_file())
    } else {
        name.contains("flickertag-old-") && is_manifest_run(path)
    }
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
                if n.starts_with(&prefix) && is_leftover(&e.path(), &n) {
                    std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
                }
            }
        }
        if std::fs::symlink_metadata(out).is_ok() {
            check_replaceable(out, force)?;
        }
        let tmp = sibling(out, &format!("tmp-{}", std::process::id()))?;
        // `committed` until the temporary folder exists: a failure here removes only the lock.
        let mut folder =
            RunFolder { out: out.to_path_buf(), tmp, kind: kind.to_string(), _lock: lock, lock_path, committed: true };
        std::fs::create_dir(&folder.tmp).map_err(|e| Error::io(&folder.tmp, e))?;
        folder.committed = false;
        let m = folder.tmp.join(TMP_MARKER);
        std::fs::write(&m, b"").map_err(|e| Error::io(&m, e))?;
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
        let m = self.tmp.join(TMP_MARKER);
        std::fs::remove_file(&m).map_err(|e| Error::io(&m, e))?;
        Manifest::of_written(&self.tmp, &self.kind)?.write(&self.tmp)?;
        sync_dir(&self.tmp);
        // Checked again: files may have been added to the run in place while this one
        // was written; they are the user's and stay where they are.
        if std::fs::symlink_metadata(&self.out).is_ok() {
            check_replaceable(&self.out, true)?;
        }
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
        assert!(e.contains("<force>"), "{e}");
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
        assert!(e.contains("files flickertag did not write (thesis.tex)"), "{e}");
    }

    #[test]
    fn a_second_writer_is_refused_and_leftovers_of_killed_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let leftover = d.path().join(".run.flickertag-tmp-999999");
        std::fs::create_dir(&leftover).unwrap();
        std::fs::write(leftover.join(TMP_MARKER), "").unwrap();
        let first = RunFolder::create(&out, false, "analyze").unwrap();
        assert!(!leftover.exists());
        let e = RunFolder::create(&out, false, "analyze").unwrap_err().to_string();
        assert!(e.contains("another run holds its lock"), "{e}");
        drop(first);
        assert!(RunFolder::create(&out, false, "analyze").is_ok());
    }

    /// A folder like a home folder: private files, a thesis, and a file that happens to be
    /// called `summary.json`.
    fn home_like(dir: &Path) {
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        std::fs::write(dir.join(".ssh/id_ed25519"), "secret").unwrap();
        std::fs::write(dir.join("thesis.tex"), "chapter 1").unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/x.csv"), "1").unwrap();
        std::fs::write(dir.join("summary.json"), "{}").unwrap();
        std::fs::write(dir.join("prune.json"), "{}").unwrap();
    }

    fn tree(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir(dir);
        v.sort();
        v
    }

    fn walkdir(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                out.extend(walkdir(&e.path()));
            }
        }
        out
    }

    #[test]
    fn force_never_deletes_a_folder_that_merely_holds_a_summary_json() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        home_like(&home);
        let before = tree(&home);
        let e = RunFolder::create(&home, true, "analyze").unwrap_err().to_string();
        assert!(e.contains("files flickertag did not write") && e.contains("thesis.tex") && e.contains(".ssh"), "{e}");
        assert_eq!(tree(&home), before, "nothing touched");
        // A marker of the old kind (no manifest) does not make it flickertag's either.
        std::fs::write(home.join(MARKER), "analyze\n").unwrap();
        assert!(RunFolder::create(&home, true, "analyze").is_err());
        assert!(home.join("thesis.tex").is_file() && home.join(".ssh/id_ed25519").is_file());
    }

    #[test]
    fn force_refuses_a_run_with_files_a_user_added_and_names_them() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        let f = RunFolder::create(&out, false, "analyze").unwrap();
        std::fs::create_dir(f.path().join("plots")).unwrap();
        std::fs::write(f.path().join("plots/a.png"), "png").unwrap();
        std::fs::write(f.path().join("summary.json"), "{}").unwrap();
        f.commit().unwrap();
        let m = Manifest::read(&out).unwrap();
        assert_eq!(m.files, ["plots/a.png", "summary.json"]);
        assert_eq!(m.kind, "analyze");
        assert!(is_run_folder(&out));
        for (added, is_dir) in [("notes.txt", false), ("plots/mine.png", false), ("extra", true)] {
            let p = out.join(added);
            if is_dir {
                std::fs::create_dir(&p).unwrap();
            } else {
                std::fs::write(&p, "mine").unwrap();
            }
            let e = RunFolder::create(&out, true, "analyze").unwrap_err().to_string();
            assert!(e.contains("files were added to this run") && e.contains(added), "{e}");
            assert!(p.exists(), "{added} kept");
            if is_dir {
                std::fs::remove_dir(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", out.join("link")).unwrap();
            let e = RunFolder::create(&out, true, "analyze").unwrap_err().to_string();
            assert!(e.contains("link"), "{e}");
            std::fs::remove_file(out.join("link")).unwrap();
        }
        // Files added while a new run writes are found at its commit, and kept.
        let f = RunFolder::create(&out, true, "analyze").unwrap();
        std::fs::write(out.join("late.txt"), "mine").unwrap();
        let e = f.commit().unwrap_err().to_string();
        assert!(e.contains("late.txt"), "{e}");
        assert!(out.join("late.txt").is_file() && out.join("summary.json").is_file());
        std::fs::remove_file(out.join("late.txt")).unwrap();
        // A clean run is replaced.
        let f = RunFolder::create(&out, true, "analyze").unwrap();
        std::fs::write(f.path().join("layers.csv"), "x").unwrap();
        f.commit().unwrap();
        assert_eq!(Manifest::read(&out).unwrap().files, ["layers.csv"]);
    }

    #[test]
    fn leftovers_are_recognised_by_their_marker_not_by_their_name() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        // A user's folders that look like leftovers by name alone: kept.
        let tmp_like = d.path().join(".run.flickertag-tmp-123");
        let old_like = d.path().join(".run.flickertag-old-123");
        for p in [&tmp_like, &old_like] {
            std::fs::create_dir(p).unwrap();
            std::fs::write(p.join("mine.txt"), "x").unwrap();
        }
        drop(RunFolder::create(&out, false, "analyze").unwrap());
        assert!(tmp_like.join("mine.txt").is_file() && old_like.join("mine.txt").is_file());
        // Real leftovers: a temporary folder with its marker, a displaced complete run.
        let tmp_real = d.path().join(".run.flickertag-tmp-456");
        std::fs::create_dir(&tmp_real).unwrap();
        std::fs::write(tmp_real.join(TMP_MARKER), "").unwrap();
        std::fs::write(tmp_real.join("half.csv"), "a,").unwrap();
        let old_real = d.path().join(".run.flickertag-old-456");
        std::fs::create_dir(&old_real).unwrap();
        std::fs::write(old_real.join("layers.csv"), "x").unwrap();
        Manifest::of_written(&old_real, "analyze").unwrap().write(&old_real).unwrap();
        drop(RunFolder::create(&out, false, "analyze").unwrap());
        assert!(!tmp_real.exists() && !old_real.exists());
        assert!(tmp_like.exists() && old_like.exists());
    }
}
