//! Tags: per element of a tensor, its frame and grid position and its channel, and the
//! index arithmetic that moves them (see the parent module).

use std::collections::HashMap;
use std::rc::Rc;

use onnx_protobuf::{GraphProto, NodeProto};

use crate::inference::model::graph::{const_ints, int_attr as attr_ints};

/// No position (or channel): mixed from several, or not from the image grid.
pub(super) const NONE: u64 = u64::MAX;
/// An element a Pad added.
pub(super) const PAD: u64 = u64::MAX - 1;
/// Largest tagged tensor, in elements at the probe's batch (two tags of 8 bytes each).
pub(super) const MAX_ELEMENTS: usize = 1 << 22;

/// Tags of one tensor: per element (row-major, probe batch first), the frame and grid
/// position it belongs to (`pos`) and its channel (`chan`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tags {
    pub(super) shape: Vec<usize>,
    pub(super) pos: Rc<Vec<u64>>,
    pub(super) chan: Rc<Vec<u64>>,
}

pub(super) fn pos_tag(frame: usize, grid: usize, p: usize) -> u64 {
    ((frame as u64) << 48) | ((grid as u64) << 32) | p as u64
}
pub(super) fn frame_of(t: u64) -> usize {
    (t >> 48) as usize
}
pub(super) fn grid_of(t: u64) -> usize {
    ((t >> 32) & 0xffff) as usize
}
pub(super) fn p_of(t: u64) -> usize {
    (t & 0xffff_ffff) as usize
}

pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Calls `f(flat, index)` for every element of `shape` in row-major order.
pub(super) fn each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let total: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    for flat in 0..total {
        f(flat, &idx);
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

impl Tags {
    /// These tags moved: output element `i` takes input element `src[i]` (a Pad's new
    /// elements where `None`).
    pub(super) fn moved(&self, shape: Vec<usize>, src: &[Option<usize>]) -> Tags {
        let pick = |v: &[u64], pad: u64| src.iter().map(|s| s.and_then(|i| v.get(i).copied()).unwrap_or(pad)).collect();
        Tags { pos: Rc::new(pick(&self.pos, PAD)), chan: Rc::new(pick(&self.chan, PAD)), shape }
    }

    /// Whether the position (`pos`) or the channel tag stays the same along axis `a`
    /// (padding aside).
    pub(super) fn constant_along(&self, a: usize, pos: bool) -> bool {
        let v = if pos { &self.pos } else { &self.chan };
        let (st, d) = (strides(&self.shape)[a], self.shape[a]);
        let block = st * d;
        // Each element against the one before it along `a`, block by block (no division).
        v.chunks(block.max(1)).all(|b| {
            (st..b.len()).all(|i| {
                let (x, y) = (b[i], b[i - st]);
                x == y || x == PAD || y == PAD
            })
        })
    }

    /// The position of each row (all axes but the last), which must not vary along it.
    pub(super) fn row_tags(&self) -> Option<Vec<u64>> {
        let last = *self.shape.last()?;
        if last == 0 || !self.constant_along(self.shape.len() - 1, true) {
            return None;
        }
        Some(self.pos.chunks(last).map(|r| r.iter().copied().find(|&p| p != PAD).unwrap_or(PAD)).collect())
    }

    /// The channel of each column (last axis) for each leading index (all axes but the
    /// last two), which must not vary along the second-to-last axis.
    pub(super) fn col_chans(&self) -> Option<Vec<u64>> {
        let r = self.shape.len();
        if r < 2 || !self.constant_along(r - 2, false) {
            return None;
        }
        let (k, cols) = (self.shape[r - 2], self.shape[r - 1]);
        Some(self.chan.chunks(k * cols).flat_map(|m| m[..cols].to_vec()).collect())
    }
}

/// For each element of `shape`, the flat input index `f(index)` it takes.
pub(super) fn gather(shape: &[usize], f: impl Fn(&[usize]) -> Option<usize>) -> Vec<Option<usize>> {
    let mut out = vec![None; shape.iter().product()];
    each_index(shape, |flat, idx| out[flat] = f(idx));
    out
}

/// Concat of tagged `parts` along `axis` into `shape`.
pub(super) fn concat(parts: &[Tags], axis: usize, shape: Vec<usize>) -> Option<Tags> {
    let r = shape.len();
    if parts.iter().any(|p| p.shape.len() != r) || parts.iter().map(|p| p.shape[axis]).sum::<usize>() != shape[axis] {
        return None;
    }
    let mut offsets = Vec::new();
    let mut at = 0;
    for p in parts {
        offsets.push(at);
        at += p.shape[axis];
    }
    let total: usize = shape.iter().product();
    let (mut pos, mut chan) = (vec![0; total], vec![0; total]);
    let part_strides: Vec<Vec<usize>> = parts.iter().map(|p| strides(&p.shape)).collect();
    let mut bad = false;
    each_index(&shape, |flat, idx| {
        let k = offsets.iter().rposition(|&o| o <= idx[axis]).unwrap_or(0);
        let p = &parts[k];
        let st = &part_strides[k];
        let mut f = 0;
        for a in 0..r {
            let i = if a == axis { idx[a] - offsets[k] } else { idx[a] };
            if i >= p.shape[a] {
                bad = true;
                return;
            }
            f += i * st[a];
        }
        pos[flat] = p.pos[f];
        chan[flat] = p.chan[f];
    });
    (!bad).then_some(Tags { shape, pos: Rc::new(pos), chan: Rc::new(chan) })
}

/// Per-axis start and step of a Slice of `si` to `so` (ONNX semantics: negative
/// starts and ends count from the end, clamped; negative steps go backwards). Starts
/// and ends must be constants unless nothing is cut.
pub(super) fn slice_params(g: &GraphProto, n: &NodeProto, si: &[usize], so: &[usize]) -> Option<(Vec<i64>, Vec<i64>)> {
    let r = si.len();
    let (mut starts, mut steps) = (vec![0i64; r], vec![1i64; r]);
    if si == so {
        return Some((starts, steps));
    }
    let at = |i: usize| n.input.get(i).filter(|s| !s.is_empty()).map(|x| const_ints(g, x));
    let (s, e) = match (attr_ints(n, "starts"), attr_ints(n, "ends")) {
        (Some(s), Some(e)) => (s, e),
        _ => (at(1)??, at(2)??),
    };
    let axes = match at(3) {
        Some(a) => a?,
        None => attr_ints(n, "axes").unwrap_or_else(|| (0..s.len() as i64).collect()),
    };
    let st = match at(4) {
        Some(a) => a?,
        None => vec![1; s.len()],
    };
    if axes.len() != s.len() || e.len() != s.len() || st.len() != s.len() {
        return None;
    }
    for k in 0..s.len() {
        let a = usize::try_from(if axes[k] < 0 { axes[k] + r as i64 } else { axes[k] }).ok().filter(|a| *a < r)?;
        let dim = si[a] as i64;
        let norm = |v: i64| if v < 0 { v + dim } else { v };
        let step = st[k];
        let (b, c) = match step {
            0 => return None,
            1.. => (norm(s[k]).clamp(0, dim), norm(e[k]).clamp(0, dim)),
            _ => (norm(s[k]).clamp(0, dim - 1), norm(e[k]).clamp(-1, dim - 1)),
        };
        let count = if step > 0 { (c - b + step - 1).div_euclid(step) } else { (b - c - step - 1).div_euclid(-step) };
        if count.max(0) != so[a] as i64 {
            return None;
        }
        starts[a] = b;
        steps[a] = step;
    }
    Some((starts, steps))
}

/// Whether two channel tags of one shape name the channels alike: equal tags in one
/// where and only where they are equal in the other.
pub(super) fn same_channels(a: &[u64], b: &[u64]) -> bool {
    let mut ab: HashMap<u64, u64> = HashMap::new();
    let mut ba: HashMap<u64, u64> = HashMap::new();
    a.iter().zip(b).all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}
