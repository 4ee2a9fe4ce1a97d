//! NPY files as flickertag writes them: npyz writes the header (its default dtype for the
//! element type), the data follows in large blocks of raw little-endian bytes. Reading
//! checks the shape against what the caller expects.

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

/// Writes `data` (C order, `shape`) as NPY: npyz writes the header, the data goes out
/// in large blocks of raw bytes (npyz's element-by-element writer took 0.5 s for the
/// 288 MB of per-image spectra of 100 images; this takes about 0.1 s).
pub(crate) fn npy<T: NpyElem>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    debug_assert_eq!(shape.iter().product::<u64>(), data.len() as u64);
    npy_blocks(path, shape, data.chunks(1 << 16))
}

/// Writes an NPY file whose data comes in consecutive blocks (C order), so that a
/// large array need not be assembled in memory first.
pub(crate) fn npy_blocks<T: NpyElem, B: AsRef<[T]>>(
    path: &Path,
    shape: &[u64],
    blocks: impl IntoIterator<Item = B>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let mut f = BufWriter::new(File::create(path).map_err(|e| Error::io(path, e))?);
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
    f.flush().map_err(io)
}

/// Writes per-image scores, `scores[tap][image][channel]`, as float64 `[image, row]`
/// (rows: every tap's channels in turn, unpadded), one image at a time.
pub(crate) fn write_scores(path: &Path, scores: &[&[Vec<f64>]], n_images: usize, rows: usize) -> Result<()> {
    let blocks = (0..n_images).map(|i| scores.iter().flat_map(|tap| tap[i].iter().copied()).collect::<Vec<f64>>());
    npy_blocks(path, &[n_images as u64, rows as u64], blocks)
}

/// Largest NPY file read back.
const MAX_NPY_BYTES: u64 = 64 << 30;

/// Reads an NPY file (a bounded regular file) whose shape must be `shape`.
pub(crate) fn read<T: npyz::Deserialize>(path: &Path, shape: &[usize]) -> Result<Vec<T>> {
    let bytes = crate::io::data::read_regular_file(path, MAX_NPY_BYTES)?;
    let f = npyz::NpyFile::new(&bytes[..]).map_err(|e| Error::io(path, e))?;
    let got: Vec<usize> = f.shape().iter().map(|&d| d as usize).collect();
    if got != shape {
        return Err(Error::Data { path: path.into(), reason: format!("shape {got:?}, expected {shape:?}") });
    }
    f.into_vec().map_err(|e| Error::io(path, e))
}
