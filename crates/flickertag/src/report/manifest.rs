//! The manifest of a run folder: the list of files flickertag wrote into it.
//!
//! A committed run folder holds a marker file, `.flickertag-run`, whose content is a JSON
//! object `{"kind": "analyze", "files": ["filters.csv", "plots/conv1.png", ...]}`: the run's
//! kind and every regular file flickertag wrote, as paths relative to the folder, sorted.
//! `--force` (and Python's `overwrite=True`) replaces a folder only when it is exactly
//! such a run: every entry in it is a listed file, or a folder on the way to one. A file
//! a user added (notes, a symbolic link, a folder of their own), or a folder that merely
//! holds a file named `summary.json`, makes the folder not flickertag's to delete: the
//! error lists what is foreign. The walk over a folder is bounded in depth and in entries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The marker and manifest file of a committed run folder.
pub const MARKER: &str = ".flickertag-run";

/// The marker of a folder flickertag is writing (a temporary sibling of `--out`), by
/// which a later run recognises it as a leftover of a killed run.
pub const TMP_MARKER: &str = ".flickertag-tmp";

/// Deepest folder nesting walked (run folders are two levels deep).
const MAX_DEPTH: usize = 16;
/// Most entries walked in one folder tree.
const MAX_ENTRIES: usize = 100_000;
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// What a run folder's marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The run's kind (`analyze`, `partial`, `prune-eval`).
    pub kind: String,
    /// Every regular file flickertag wrote, relative to the folder, `/`-separated, sorted
    /// (the marker itself excluded).
    pub files: Vec<String>,
}

/// One entry of a folder tree as the walk found it.
enum Entry {
    File(String),
    Dir(String),
    /// A symbolic link, a FIFO, a socket, a device: never flickertag's.
    Other(String),
}

/// Every entry below `dir` (relative, `/`-separated), bounded in depth and count.
fn walk(dir: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((abs, rel, depth)) = stack.pop() {
        for e in std::fs::read_dir(&abs).map_err(|e| Error::io(&abs, e))? {
            let e = e.map_err(|err| Error::io(&abs, err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            // file_type does not follow symbolic links.
            let t = e.file_type().map_err(|err| Error::io(e.path(), err))?;
            if out.len() >= MAX_ENTRIES {
                return Err(Error::Data {
                    path: dir.to_path_buf(),
                    reason: format!("more than {MAX_ENTRIES} entries: not a flickertag run folder"),
                });
            }
            if t.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(Error::Data {
                        path: dir.to_path_buf(),
                        reason: format!("folders nested deeper than {MAX_DEPTH}: not a flickertag run folder"),
                    });
                }
                stack.push((e.path(), r.clone(), depth + 1));
                out.push(Entry::Dir(r));
            } else if t.is_file() {
                out.push(Entry::File(r));
            } else {
                out.push(Entry::Other(r));
            }
        }
    }
    Ok(out)
}

impl Manifest {
    /// The manifest of the folder `dir` that flickertag has just written: every regular
    /// file in it. Anything else in it (a link, a FIFO) is an error: flickertag writes none.
    pub fn of_written(dir: &Path, kind: &str) -> Result<Manifest> {
        let mut files = Vec::new();
        for e in walk(dir)? {
            match e {
                Entry::File(f) if f == MARKER || f == TMP_MARKER => {}
                Entry::File(f) => files.push(f),
                Entry::Dir(_) => {}
                Entry::Other(o) => {
                    return Err(Error::Data {
                        path: dir.join(o),
                        reason: "not a regular file in a folder flickertag wrote".into(),
                    })
                }
            }
        }
        files.sort();
        Ok(Manifest { kind: kind.to_string(), files })
    }

    /// Writes the marker of `dir` with this manifest.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let p = dir.join(MARKER);
        let text = serde_json::to_vec_pretty(self).expect("serializable");
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    }

    /// The manifest of `dir`, if its marker is a regular file holding one (`None`: no
    /// marker, or a marker that is not a manifest).
    pub fn read(dir: &Path) -> Option<Manifest> {
        let p = dir.join(MARKER);
        let meta = std::fs::symlink_metadata(&p).ok()?;
        if !meta.is_file() {
            return None;
        }
        let bytes = crate::io::data::read_regular_file(&p, MAX_MANIFEST_BYTES).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What in `dir` is not flickertag's by its manifest: entries that are not listed files
/// or folders on the way to one (relative paths, sorted). Without a manifest, every entry.
pub fn foreign_entries(dir: &Path) -> Result<Vec<String>> {
    let listed: BTreeSet<String> = Manifest::read(dir).map(|m| m.files.into_iter().collect()).unwrap_or_default();
    let has_manifest = Manifest::read(dir).is_some();
    let dirs: BTreeSet<String> = listed
        .iter()
        .flat_map(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            (1..parts.len()).map(move |k| parts[..k].join("/"))
        })
        .collect();
    let mut foreign: Vec<String> = walk(dir)?
        .into_iter()
        .filter_map(|e| match e {
            Entry::File(f) if has_manifest && (f == MARKER || listed.contains(&f)) => None,
            Entry::Dir(d) if has_manifest && dirs.contains(&d) => None,
            Entry::File(f) | Entry::Dir(f) | Entry::Other(f) => Some(f),
        })
        .collect();
    foreign.sort();
    Ok(foreign)
}

/// Whether `dir` is a complete flickertag run: a manifest and nothing foreign in it.
pub fn is_manifest_run(dir: &Path) -> bool {
    Manifest::read(dir).is_some() && foreign_entries(dir).is_ok_and(|f| f.is_empty())
}

/// `paths` for a message: the first few, and how many more.
pub fn list_some(paths: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = paths.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}
