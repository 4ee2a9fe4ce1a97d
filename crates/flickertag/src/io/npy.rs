//! NPY files as flickertag writes them: npyz writes the header (its default dtype for the
//! element type), the data follows in large blocks of raw little-endian bytes. Reading
//! checks the header's size and nesting before npyz parses it ([`check_header`]), then
//! the shape against what the caller expects.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, Result};

/// An NPY element: its little-endian bytes, in npyz's default dtype for the type.
pub(crate) trait NpyElem: npyz::AutoSerialize + Copy {
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElem for f32 {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElem for f64 {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElem for num_complex::Complex<f32> {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.re.to_le_bytes());
        out.extend_from_slice(&self.im.to_le_bytes());
    }
}

/// A writer that also hashes what it writes (SHA-256): a file's checksum without
/// reading it back.
struct Hashing<W> {
    inner: W,
    hash: sha2::Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `data` (C order, `shape`) as NPY: npyz writes the header, the data goes out
/// in large blocks of raw bytes (npyz's element-by-element writer took 0.5 s for the
/// 288 MB of per-image spectra of 100 images; this takes about 0.1 s). Returns the
/// file's SHA-256 (hex).
pub(crate) fn npy<T: NpyElem>(path: &Path, shape: &[u64], data: &[T]) -> Result<String> {
    debug_assert_eq!(shape.iter().product::<u64>(), data.len() as u64);
    npy_blocks(path, shape, data.chunks(1 << 16))
}

/// Writes an NPY file whose data comes in consecutive blocks (C order), so that a
/// large array need not be assembled in memory first. Returns the file's SHA-256 (hex).
pub(crate) fn npy_blocks<T: NpyElem, B: AsRef<[T]>>(
    path: &Path,
    shape: &[u64],
    blocks: impl IntoIterator<Item = B>,
) -> Result<String> {
    use sha2::Digest;
    let io = |e: std::io::Error| Error::io(path, e);
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut f = BufWriter::new(Hashing { inner: file, hash: sha2::Sha256::new() });
    npyz::WriteOptions::new_header_only()
        .dtype(T::default_dtype())
        .shape(shape)
        .writer(&mut f)
        .write_header_only()
        .map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for block in blocks {
        buf.clear();
        block.as_ref().iter().for_each(|x| x.put(&mut buf));
        f.write_all(&buf).map_err(io)?;
    }
    let h = f.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(crate::io::data::hex(&h.hash.finalize()))
}

/// Writes per-image scores, `scores[tap][image][channel]`, as float64 `[image, row]`
/// (rows: every tap's channels in turn, unpadded), one image at a time.
pub(crate) fn write_scores(path: &Path, scores: &[&[Vec<f64>]], n_images: usize, rows: usize) -> Result<String> {
    let blocks = (0..n_images).map(|i| scores.iter().flat_map(|tap| tap[i].iter().copied()).collect::<Vec<f64>>());
    npy_blocks(path, &[n_images as u64, rows as u64], blocks)
}

/// Largest NPY file read back.
pub(crate) const MAX_NPY_BYTES: u64 = 64 << 30;

/// Largest NPY header read (numpy's own reader refuses headers over 10,000 bytes by
/// default; flickertag writes about 100).
const MAX_HEADER_BYTES: usize = 10_000;

/// Deepest bracket nesting in a header: `{'shape': (2, 3), ...}` is 2.
const MAX_HEADER_NESTING: usize = 4;

/// Checks an NPY preamble and header before npyz reads it: npyz allocates the header's
/// declared length up front (a 4-byte length of 3.9 GB in a 165-byte file) and parses
/// it as a Python literal in time exponential in its nesting (16 nested braces took
/// over 60 s). The header must be at most [`MAX_HEADER_BYTES`], lie inside the file,
/// and nest brackets at most [`MAX_HEADER_NESTING`] deep. Returns where the data starts.
fn check_header(bytes: &[u8]) -> std::result::Result<usize, String> {
    let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or("not an NPY file (no \\x93NUMPY magic)")?;
    let (len, start) = match rest {
        [1, _, a, b, ..] => (u16::from_le_bytes([*a, *b]) as usize, 10),
        [2 | 3, _, a, b, c, d, ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, 12),
        [major, ..] => return Err(format!("NPY format version {major}: flickertag reads 1 to 3")),
        [] => return Err("a truncated NPY preamble".into()),
    };
    if len > MAX_HEADER_BYTES {
        return Err(format!("an NPY header of {len} bytes (at most {MAX_HEADER_BYTES})"));
    }
    let header = bytes
        .get(start..start + len)
        .ok_or_else(|| format!("an NPY header of {len} bytes past the end of the file"))?;
    let mut depth = 0usize;
    for &c in header {
        match c {
            b'{' | b'(' | b'[' => {
                depth += 1;
                if depth > MAX_HEADER_NESTING {
                    return Err(format!("an NPY header nested over {MAX_HEADER_NESTING} brackets deep"));
                }
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(start + len)
}

/// Reads an NPY file (a bounded regular file) whose shape must be `shape`.
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn read<T: npyz::Deserialize>(path: &Path, shape: &[usize]) -> Result<Vec<T>> {
    from_bytes(&crate::io::data::read_regular_file(path, MAX_NPY_BYTES)?, path, Some(shape))
}

/// An NPY file's bytes (`path` names it in errors) as C-order elements: the header
/// checked ([`check_header`]), Fortran order refused (npyz hands its elements over in
/// file order, which would read it transposed), the shape `shape` when given,
/// else whatever the header says provided the file holds that much data.
pub(crate) fn from_bytes<T: npyz::Deserialize>(bytes: &[u8], path: &Path, shape: Option<&[usize]>) -> Result<Vec<T>> {
    let bad = |reason: String| Error::Data { path: path.into(), reason };
    check_header(bytes).map_err(bad)?;
    let f = npyz::NpyFile::new(bytes).map_err(|e| Error::io(path, e))?;
    if f.order() == npyz::Order::Fortran {
        return Err(bad("stored in Fortran order (fortran_order: True); flickertag reads C-order arrays".into()));
    }
    let got: Vec<usize> = f.shape().iter().map(|&d| d as usize).collect();
    match shape {
        Some(shape) if got != shape => return Err(bad(format!("shape {got:?}, expected {shape:?}"))),
        Some(_) => {}
        None => {
            let item = f.dtype().num_bytes().unwrap_or(usize::MAX);
            let n = got.iter().try_fold(item, |a, &d| a.checked_mul(d));
            if n.is_none_or(|n| n > bytes.len()) {
                return Err(bad(format!("shape {got:?} holds more data than the file")));
            }
        }
    }
    f.into_vec().map_err(|e| Error::io(path, e))
}

/// Checks an NPY file without reading its data: a bounded header ([`check_header`]) in
/// C order, of the dtype `descr` (`<f8`, `<f4`, `<c8`), of shape `shape`, and a file
/// exactly as long as header and data. For arrays a face maps instead of reading
/// (Python's `load` memory-maps them).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn check_file(path: &Path, shape: &[usize], descr: &str) -> Result<()> {
    use std::io::Read;
    let bad = |reason: String| Error::Data { path: path.into(), reason };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(bad("not a regular file (a folder, FIFO or device)".into()));
    }
    let mut head = Vec::new();
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    f.take(MAX_HEADER_BYTES as u64 + 12).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    let header_end = check_header(&head).map_err(bad)? as u64;
    let npy = npyz::NpyFile::new(&head[..]).map_err(|e| Error::io(path, e))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(bad("stored in Fortran order (fortran_order: True); flickertag reads C-order arrays".into()));
    }
    let got: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = npy.dtype().descr().trim_matches('\'').to_string();
    if got != shape || dtype != descr {
        return Err(bad(format!("dtype {dtype} shape {got:?}, expected {descr} {shape:?}")));
    }
    let item = npy.dtype().num_bytes().unwrap_or(0) as u64;
    let want = shape.iter().try_fold(item, |a, &d| a.checked_mul(d as u64)).and_then(|n| n.checked_add(header_end));
    if want != Some(meta.len()) {
        return Err(bad(format!("{} bytes, but header and data make {want:?}", meta.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NPY file of format `version` whose header is `header` (declared length `len`).
    fn npy_bytes(version: u8, len: usize, header: &[u8]) -> Vec<u8> {
        let mut b = b"\x93NUMPY".to_vec();
        b.extend([version, 0]);
        if version == 1 {
            b.extend((len as u16).to_le_bytes());
        } else {
            b.extend((len as u32).to_le_bytes());
        }
        b.extend(header);
        b
    }

    #[test]
    fn npy_headers_are_bounded_in_size_and_nesting_before_they_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            read::<f32>(&p, &[2]).map(|_| ()).map_err(|e| e.to_string())
        };
        // A file flickertag wrote reads back.
        let p = dir.path().join("ok.npy");
        npy(&p, &[2], &[1.5f32, -2.0]).unwrap();
        assert_eq!(read("ok.npy", &std::fs::read(&p).unwrap()), Ok(()));
        // A 3.9 GB header declared in a 165-byte file: refused before any allocation.
        let e = read("huge.npy", &npy_bytes(2, 0xF000_0000, &[b' '; 153])).unwrap_err();
        assert!(e.contains("huge.npy") && e.contains("4026531840 bytes"), "{e}");
        // 16 nested braces (npyz's parser takes exponential time): refused at once.
        let h = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': {}0{}}}\n",
            "{".repeat(16),
            "}".repeat(16)
        );
        let e = read("nested.npy", &npy_bytes(1, h.len(), h.as_bytes())).unwrap_err();
        assert!(e.contains("nested over 4 brackets"), "{e}");
        // A header past the end of the file, another version, no magic.
        let e = read("short.npy", &npy_bytes(1, 500, b"{'descr'")).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        assert!(read("v9.npy", &npy_bytes(9, 4, b"{}  ")).unwrap_err().contains("version 9"));
        assert!(read("text.npy", b"hello").unwrap_err().contains("magic"));
    }
}
