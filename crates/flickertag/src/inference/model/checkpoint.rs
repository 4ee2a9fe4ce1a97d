//! Reading weights: PyTorch checkpoints (legacy pre-1.6 stream and zip `.pth`) and
//! safetensors, into a [`StateDict`] of float32 tensors.
//!
//! Keys are normalised: the `module.` prefix of `nn.DataParallel` saves is stripped.
//! A checkpoint that wraps its state dict (`{'state_dict': ..., 'best_prec1': ...}`,
//! `{'model': ...}`) is unwrapped. Every storage size and tensor view is checked
//! against the bytes in the file, a view may not hold more elements than its storage,
//! and all tensors together at most [`MAX_ELEMENTS_PER_STORED`] times the elements the
//! file stores (plus 1M), so no input makes flickertag allocate more than a small multiple
//! of its own size. Zip entries are read up to their declared size, all of them
//! together up to [`zip_budget`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::pickle::{self, StorageRef, TensorRef, Value};
use crate::error::{Error, Result};

/// Largest checkpoint file read.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
/// Tensors may hold at most this many elements per element stored in the file (views
/// that share a storage, such as tied weights, count each time).
pub const MAX_ELEMENTS_PER_STORED: u64 = 4;

/// Bytes all entries of a zip checkpoint may decompress to: PyTorch stores its
/// entries uncompressed, so eight times the file plus 64 MiB is generous.
pub fn zip_budget(file_len: usize) -> u64 {
    (file_len as u64).saturating_mul(8).saturating_add(64 << 20)
}

/// The magic number that opens a legacy PyTorch file.
const LEGACY_MAGIC: &[u8] = &[0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// A float32 tensor, contiguous, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// Named weights of a network, keyed by dotted module path (`layer1.0.conv1.weight`).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// Tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
}

impl StateDict {
    /// The tensor called `name`, or an error naming it and the expected shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t =
            self.tensors.get(name).ok_or_else(|| Error::Model(format!("weights lack `{name}` (shape {shape:?})")))?;
        if t.shape != shape {
            return Err(Error::Model(format!("`{name}` has shape {:?}, expected {shape:?}", t.shape)));
        }
        Ok(t)
    }
}

/// Reads a checkpoint, choosing the format from its first bytes: legacy PyTorch, zip
/// PyTorch, or safetensors.
pub fn load_checkpoint(path: &Path) -> Result<StateDict> {
    let bytes = crate::io::data::read_regular_file(path, MAX_CHECKPOINT_BYTES)?;
    checkpoint_from_bytes(&bytes, path)
}

/// Reads a checkpoint held in memory (`path` names it in errors), choosing the format
/// from its first bytes as [`load_checkpoint`] does.
pub fn checkpoint_from_bytes(bytes: &[u8], path: &Path) -> Result<StateDict> {
    let fail = |reason: String| Error::Checkpoint { path: path.to_path_buf(), reason };
    let raw = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes).map_err(fail)?
    } else if bytes.starts_with(LEGACY_MAGIC) || bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        read_legacy(bytes).map_err(fail)?
    } else if bytes.len() >= 8 && looks_like_safetensors(bytes) {
        read_safetensors(bytes).map_err(fail)?
    } else {
        return Err(fail("not a PyTorch checkpoint (legacy or zip) nor safetensors: unrecognised first bytes".into()));
    };
    let mut tensors = BTreeMap::new();
    for (k, t) in raw {
        let k = k.strip_prefix("module.").unwrap_or(&k).to_string();
        tensors.insert(k, t);
    }
    if tensors.is_empty() {
        return Err(fail("holds no tensors".into()));
    }
    Ok(StateDict { tensors })
}

fn looks_like_safetensors(b: &[u8]) -> bool {
    let n = u64::from_le_bytes(b[..8].try_into().unwrap());
    n > 1 && n < b.len() as u64 && b.get(8) == Some(&b'{')
}

fn read_safetensors(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("safetensors: {e}"))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = match view.dtype() {
            safetensors::Dtype::F32 => {
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            }
            safetensors::Dtype::F64 => {
                view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            }
            safetensors::Dtype::I64 => {
                view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            }
            d => return Err(format!("tensor `{name}` has dtype {d:?}; supported: F32, F64, I64")),
        };
        out.push((name, Tensor { shape: view.shape().to_vec(), data }));
    }
    Ok(out)
}

/// Legacy format: five pickles (magic, protocol, sys_info, object, storage keys), then
/// for each key an 8-byte element count and the raw little-endian elements.
fn read_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let (magic, p) = pickle::load(bytes, 0)?;
    if !matches!(&magic.root, Value::BigInt(b) if **b == LEGACY_MAGIC[2..]) {
        return Err("wrong magic number for a legacy PyTorch file".into());
    }
    let (proto, p) = pickle::load(bytes, p)?;
    match proto.root {
        Value::Int(1001) => {}
        Value::Int(v) => return Err(format!("unsupported legacy protocol version {v} (expected 1001)")),
        ref v => return Err(format!("corrupt: legacy protocol version is a {} (expected the int 1001)", v.kind())),
    }
    let (_sys_info, p) = pickle::load(bytes, p)?;
    let (obj, p) = pickle::load(bytes, p)?;
    let (keys, mut p) = pickle::load(bytes, p)?;
    let keys: Vec<String> = keys
        .items(&keys.root)
        .ok_or("corrupt: storage key list missing")?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| "corrupt: storage key is not a string".to_string()))
        .collect::<Result<_, _>>()?;
    let tensors = find_state_dict(&obj)?;
    let mut storages: BTreeMap<String, &[u8]> = BTreeMap::new();
    for key in keys {
        let header = bytes.get(p..p.saturating_add(8)).ok_or("truncated: storage header missing")?;
        let numel = u64::from_le_bytes(header.try_into().unwrap());
        p += 8;
        let elem = tensors
            .iter()
            .find(|(_, t)| t.storage.key == key)
            .map(|(_, t)| element_size(&t.storage.dtype))
            .transpose()?
            .unwrap_or(4);
        let len = numel.checked_mul(elem as u64).ok_or("corrupt: storage size overflows")?;
        let end = (p as u64).checked_add(len).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
            format!("truncated: storage {key} needs {len} bytes at offset {p}, file has {}", bytes.len())
        })? as usize;
        storages.insert(key, &bytes[p..end]);
        p = end;
    }
    materialise_all(tensors, &storages)
}

/// Zip format: `<root>/data.pkl` and one file per storage under `<root>/data/`.
fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("zip: {e}"))?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or("zip checkpoint without data.pkl")?;
    let root = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut budget = zip_budget(bytes.len());
    // Each entry is read up to its declared size (one byte more tells a lie) and all
    // of them up to the budget: a deflate bomb stops at the first byte over.
    let mut read = |zip: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>, String> {
        let f = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
        let declared = f.size();
        if declared > budget {
            return Err(format!("{name}: declares {declared} bytes, over the {budget} bytes left for this file"));
        }
        let mut v = Vec::with_capacity(declared.min(1 << 26) as usize);
        f.take(declared + 1).read_to_end(&mut v).map_err(|e| format!("{name}: {e}"))?;
        if v.len() as u64 != declared {
            return Err(format!("{name}: holds {} bytes, declares {declared}", v.len()));
        }
        budget -= declared;
        Ok(v)
    };
    let pkl = read(&mut zip, &pkl_name)?;
    let (obj, _) = pickle::load(&pkl, 0)?;
    let tensors = find_state_dict(&obj)?;
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (_, t) in &tensors {
        if !blobs.contains_key(&t.storage.key) {
            let b = read(&mut zip, &format!("{root}data/{}", t.storage.key))?;
            blobs.insert(t.storage.key.clone(), b);
        }
    }
    let storages: BTreeMap<String, &[u8]> = blobs.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
    materialise_all(tensors, &storages)
}

/// Materialises every tensor, within [`MAX_ELEMENTS_PER_STORED`] times the elements
/// the storages hold (plus 1M).
fn materialise_all(
    tensors: Vec<(String, std::rc::Rc<TensorRef>)>,
    storages: &BTreeMap<String, &[u8]>,
) -> Result<Vec<(String, Tensor)>, String> {
    let stored: u64 = tensors
        .iter()
        .filter_map(|(_, t)| Some((t.storage.key.as_str(), storages.get(&t.storage.key)?.len() as u64)))
        .collect::<BTreeMap<_, _>>()
        .values()
        .sum();
    let mut budget = stored.saturating_mul(MAX_ELEMENTS_PER_STORED).saturating_add(1 << 20);
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let x = materialise(&name, &t, storages, budget)?;
        budget -= x.data.len() as u64;
        out.push((name, x));
    }
    Ok(out)
}

fn element_size(dtype: &str) -> Result<usize, String> {
    Ok(match dtype {
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        d => return Err(format!("unsupported storage type {d}")),
    })
}

/// Finds the `name -> tensor` mapping in a checkpoint object: the object itself, or a
/// dict value (`state_dict`, `model`, ...) that maps strings to tensors. Only these two
/// levels are looked at, so no self-referential or deep structure is walked.
fn find_state_dict(obj: &pickle::Pickle) -> Result<Vec<(String, std::rc::Rc<TensorRef>)>, String> {
    let tensors_of = |v: &Value| -> Option<Vec<(String, std::rc::Rc<TensorRef>)>> {
        let mut out = Vec::new();
        for (k, v) in obj.pairs(v)? {
            match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => out.push((k.to_string(), t.clone())),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    };
    if let Some(t) = tensors_of(&obj.root) {
        return Ok(t);
    }
    if let Some(pairs) = obj.pairs(&obj.root) {
        for key in ["state_dict", "model", "model_state_dict", "net"] {
            for (k, v) in pairs {
                if k.as_str() == Some(key) {
                    if let Some(t) = tensors_of(v) {
                        return Ok(t);
                    }
                }
            }
        }
    }
    Err("found no state_dict (a dict of name -> tensor) in the checkpoint".into())
}

fn materialise(name: &str, t: &TensorRef, storages: &BTreeMap<String, &[u8]>, budget: u64) -> Result<Tensor, String> {
    let StorageRef { key, dtype, numel } = &t.storage;
    let raw = storages.get(key).ok_or_else(|| format!("tensor `{name}`: storage {key} missing from the file"))?;
    let elem = element_size(dtype)?;
    if (raw.len() as u64) < numel.saturating_mul(elem as u64) {
        return Err(format!("tensor `{name}`: storage {key} holds {} bytes, needs {numel} x {elem}", raw.len()));
    }
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let count = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or("corrupt: tensor size overflows")?;
    if count > *numel {
        return Err(format!("tensor `{name}`: a view of {count} elements over a {numel}-element storage"));
    }
    if count > budget {
        return Err(format!(
            "tensor `{name}`: {count} elements, over the {budget} left for this file (views share storages too often)"
        ));
    }
    // Largest element index the view touches must be inside the storage.
    if count > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| (d - 1).checked_mul(s).and_then(|x| a.checked_add(x)))
            .ok_or("corrupt: tensor view overflows")?;
        if last >= *numel {
            return Err(format!("tensor `{name}`: view reaches element {last} of a {numel}-element storage"));
        }
    }
    let read = |i: u64| -> f32 {
        let o = (i as usize) * elem;
        let b = &raw[o..o + elem];
        match dtype.as_str() {
            "FloatStorage" => f32::from_le_bytes(b.try_into().unwrap()),
            "DoubleStorage" => f64::from_le_bytes(b.try_into().unwrap()) as f32,
            "LongStorage" => i64::from_le_bytes(b.try_into().unwrap()) as f32,
            "IntStorage" => i32::from_le_bytes(b.try_into().unwrap()) as f32,
            "ShortStorage" => i16::from_le_bytes(b.try_into().unwrap()) as f32,
            "HalfStorage" => half_to_f32(u16::from_le_bytes(b.try_into().unwrap())),
            "BFloat16Storage" => f32::from_bits((u16::from_le_bytes(b.try_into().unwrap()) as u32) << 16),
            "CharStorage" => b[0] as i8 as f32,
            _ => b[0] as f32,
        }
    };
    let mut data = Vec::with_capacity(count as usize);
    let mut idx = vec![0u64; shape.len()];
    for _ in 0..count {
        let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        data.push(read(off));
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Tensor { shape, data })
}

fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => return f32::from_bits(sign) + (if sign != 0 { -1.0 } else { 1.0 }) * frac as f32 * 2f32.powi(-24),
        31 => sign | 0x7f80_0000 | (frac << 13),
        e => sign | (((e - 15 + 127) as u32) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion_matches_known_values() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
    }
}
