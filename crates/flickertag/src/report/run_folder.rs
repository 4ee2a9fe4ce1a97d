//! A run folder as a whole: written from an analysis (files, figures, `report.html`),
//! redrawn in place (`flickertag report`), or copied atomically (Python's
//! `Analysis.save`). Used by [`crate::run`] and [`crate::run::shard`].

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes the whole run folder of an analysis into `out`: the files of
/// [`crate::report::write_run`], the stimulus and map figures (drawn on `first`, the
/// first image), and `report.html`. Returns the report's path.
#[cfg(feature = "report")]
pub fn write_run_folder(a: &crate::analysis::Analysis, first: &crate::io::data::Image, out: &Path) -> Result<PathBuf> {
    crate::report::write_run(a, out)?;
    crate::report::plots::stimulus(out, &a.plan, first)?;
    crate::report::plots::maps(out, &a.maps, first)?;
    crate::report::html::write_report(out)
}

/// Redraws the figures and `report.html` of an existing run folder (`flickertag report`),
/// atomically: the summary and arrays are validated first, the run is copied into a
/// temporary sibling, redrawn there and swapped into place. Returns the report's path.
#[cfg(feature = "report")]
pub fn redraw_run_folder(dir: &Path) -> Result<PathBuf> {
    use crate::report::folder::{RunFolder, MARKER};
    use crate::report::manifest::{foreign_entries, list_some, Manifest};
    if !dir.is_dir() || Manifest::read(dir).is_none() {
        return Err(Error::param("run folder", "a folder written by flickertag analyze or demo", dir.display()));
    }
    let foreign = foreign_entries(dir)?;
    if !foreign.is_empty() {
        return Err(Error::param(
            "run folder",
            format!(
                "a run folder holding only what flickertag wrote; files were added to it ({}): move them out \
                 first (the report is redrawn into a copy that replaces the folder)",
                list_some(&foreign)
            ),
            dir.display(),
        ));
    }
    // The other commands' run folders draw their report when they are written.
    for (file, command) in
        [("cam.json", "cam"), ("importance_truth.json", "importance-truth"), ("oddball.json", "oddball")]
    {
        if !dir.join("summary.json").exists() && dir.join(file).exists() {
            return Err(Error::param(
                "run folder",
                format!(
                    "a folder written by flickertag analyze or demo; this one is a `flickertag {command}` run, whose \
                     report.html and figures were written with it"
                ),
                dir.display(),
            ));
        }
    }
    crate::report::plots::RunData::load(dir)?;
    let folder = RunFolder::create(dir, true, "analyze")?;
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|err| Error::io(dir, err))?;
        let name = e.file_name();
        let kind = e.file_type().map_err(|err| Error::io(e.path(), err))?;
        // Figures and the report are drawn again; the marker is written at commit.
        if name == "plots" || name == "report.html" || name == MARKER {
            continue;
        }
        if kind.is_dir() {
            copy_dir(&e.path(), &folder.path().join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), folder.path().join(&name)).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    crate::report::html::write_report(folder.path())?;
    Ok(folder.commit()?.join("report.html"))
}

/// Checks a run folder as strictly as `flickertag report` reads it, without reading
/// the bulk of its arrays: `summary.json` read into its typed form (schema, keys, taps
/// agreeing with layers), `spectra_mean.npy` `[row, bin]` read and checked against it,
/// and the headers and lengths of `scores.npy` (float64 `[image, row]`) and, where
/// present, `spectra.npy` (float32 `[image, row, bin]`) and `coefficients.npy`
/// (complex64, the same shape). What Python's `flickertag.load` calls before it maps
/// any array. The error names the file.
#[cfg(feature = "report")]
pub fn check_run_folder(dir: &Path) -> Result<()> {
    let run = super::plots::RunData::load(dir)?;
    let [rows, bins] = run.shape;
    let ni = run.summary.images.len();
    crate::io::npy::check_file(&dir.join("scores.npy"), &[ni, rows], "<f8")?;
    for (name, descr) in [("spectra.npy", "<f4"), ("coefficients.npy", "<c8")] {
        let p = dir.join(name);
        if p.exists() {
            crate::io::npy::check_file(&p, &[ni, rows, bins], descr)?;
        }
    }
    Ok(())
}

/// Copies an existing run folder to `dest` atomically (Python's `Analysis.save`):
/// `dest` appears complete or not at all; an earlier run there is replaced only with
/// `force`.
pub fn copy_run_folder(src: &Path, dest: &Path, force: bool) -> Result<PathBuf> {
    let folder = crate::report::folder::RunFolder::create(dest, force, "analyze")?;
    copy_dir(src, folder.path())?;
    folder.commit()
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for e in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let e = e.map_err(|err| Error::io(src, err))?;
        let to = dest.join(e.file_name());
        let kind = e.file_type().map_err(|err| Error::io(e.path(), err))?;
        if kind.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), &to).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}
