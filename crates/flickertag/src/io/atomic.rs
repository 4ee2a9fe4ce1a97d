//! Files that appear whole or not at all: written into a temporary file beside the
//! final name, flushed (so that a full disk is an error here, not a truncated file),
//! then renamed over it. What `flickertag stimulus`, `export` and their GIFs write
//! outside a run folder (a run folder is claimed and committed as a whole by
//! [`crate::report`]).

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes the file `path` with `fill`, atomically: `fill` writes into a temporary file
/// in the same folder, which replaces `path` only once everything is written and
/// flushed. Any error, `fill`'s included, names `path` and leaves no file behind.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".flickertag-tmp");
    // A file's usual mode (0666 less the umask), not a temporary file's 0600.
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = b.tempfile_in(dir).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    fill(&mut w)?;
    let tmp = w.into_inner().map_err(|e| io(e.into_error()))?;
    // The data on disk before the name points at it: a crash cannot leave an empty file.
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// [`write_atomic`] of bytes already in memory.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_the_file_nor_a_temporary_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.onnx");
        std::fs::write(&p, b"earlier").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(b"half").unwrap();
            Err(Error::io(&p, std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert!(e.to_string().contains("out.onnx"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"earlier", "the earlier file stands");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temporary file left");
        write_bytes_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
