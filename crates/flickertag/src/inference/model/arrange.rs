//! Arrangements: where each element of a tensor lies on the image grid, found by
//! replaying the graph's data movement on tags instead of values.
//!
//! The rules of `layout.rs` know a tensor's channels from the op that made it. Some
//! networks move activations around before and after computing on them: windowed
//! attention (Swin: a cyclic shift by Slice + Concat, then `[N, H, W, C]` cut into
//! `[N·windows, w·w, C]` and put back after the attention), unfolded patches (MobileViT:
//! `[N, C, H, W]` to `[N·P, patches, C]` and back), channel shuffles (ShuffleNet:
//! `[N, g, C/g, H, W]` transposed) and strided subsampling (LeViT's shrinking grid).
//! The batch axis is often merged with windows there, so such a tensor is not even
//! batch-first. For these, flickertag replays the movement itself: every element of a
//! tensor whose layout is known is tagged with the frame and the grid position it
//! belongs to and with its channel, and the tags go through Reshape, Transpose, Slice,
//! Concat, Split, Gather and Pad exactly as the values do (with the probe's shapes, at
//! the probe's batch). Computing ops keep tags where their meaning is plain: pointwise
//! ops, normalizations over the channel axis, a Linear (new channels, same positions),
//! and attention's products (an output row sits at its query's position, the convention
//! of every token model; its channels are the value's).
//!
//! A tagged tensor is a tap when its tags say unambiguously how to read it: the
//! elements of frame `f` are the `f`-th block of the batch axis, exactly one axis holds
//! the channels (tags vary along it in channel and along no other), and every grid
//! position appears exactly once per channel and frame (positions a Pad added are
//! allowed: they are in the mean, as a hook sees them, and not in maps). Its mean per
//! channel is taken over the frame's block; its maps gather each grid position's row.
//! A tagged tensor that is a plain layout again (the windows put back) continues as
//! that layout. Anything else (attention scores, heads, partial grids) has no
//! arrangement, and is no tap: flickertag does not guess.
//!
//! Hand-written: no crate replays ONNX data-movement ops on index arrays; the ops are
//! few and their ONNX semantics are stated where each is replayed.

use std::collections::HashMap;

use onnx_protobuf::{GraphProto, NodeProto};

use super::layout::{attr_ints, const_ints};

/// No position (or channel): mixed from several, or not from the image grid.
const NONE: u64 = u64::MAX;
/// An element a Pad added.
const PAD: u64 = u64::MAX - 1;
/// Largest tagged tensor, in elements at the probe's batch (two tags of 8 bytes each).
const MAX_ELEMENTS: usize = 1 << 22;

/// Tags of one tensor: per element (row-major, probe batch first), the frame and grid
/// position it belongs to (`pos`) and its channel (`chan`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tags {
    shape: Vec<usize>,
    pos: Vec<u64>,
    chan: Vec<u64>,
}

fn pos_tag(frame: usize, grid: usize, p: usize) -> u64 {
    ((frame as u64) << 48) | ((grid as u64) << 32) | p as u64
}
fn frame_of(t: u64) -> usize {
    (t >> 48) as usize
}
fn grid_of(t: u64) -> usize {
    ((t >> 32) & 0xffff) as usize
}
fn p_of(t: u64) -> usize {
    (t & 0xffff_ffff) as usize
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Calls `f(flat, index)` for every element of `shape` in row-major order.
fn each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
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

/// How a tagged tensor is read as a tap (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arrangement {
    /// The axis of the full tensor (batch axis 0) that holds the channels.
    pub channel_axis: usize,
    /// The grid, rows x columns.
    pub grid: [usize; 2],
    /// For each grid position (row-major), its row within the frame's block once the
    /// channel axis is moved last (`[N, rows, C]`).
    pub table: Vec<i64>,
}

/// What [`Arranger::classify`] finds a tagged tensor to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    /// A plain layout: channels first `[N, C, H, W]` (`grid`), channels last
    /// `[N, H, W, C]`, patch tokens `[N, T, D]` on `grid`, `[N, C, T]` of a grid, `[N, C]`.
    ChannelsFirst,
    /// `[N, H, W, C]`.
    ChannelsLast,
    /// `[N, T, D]`, T = rows x columns of the grid.
    Tokens([usize; 2]),
    /// `[N, C, T]`, T = rows x columns of the grid.
    Seq([usize; 2]),
    /// `[N, C]`.
    Flat,
    /// Anything else that reads unambiguously.
    Arranged(Arrangement),
}

/// The tags of a graph's tensors during layout propagation.
pub(crate) struct Arranger {
    /// Frames per probe batch.
    n: usize,
    tags: HashMap<String, Tags>,
    grids: Vec<[usize; 2]>,
    next_space: u64,
    /// Consumers of each tensor not yet visited (tags are dropped after the last).
    uses: HashMap<String, usize>,
}

impl Arranger {
    /// An arranger for `g` run at `n` frames per batch.
    pub fn new(g: &GraphProto, n: usize) -> Self {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for node in &g.node {
            for x in &node.input {
                *uses.entry(x.clone()).or_default() += 1;
            }
        }
        Arranger { n, tags: HashMap::new(), grids: Vec::new(), next_space: 0, uses }
    }

    fn grid_id(&mut self, g: [usize; 2]) -> usize {
        match self.grids.iter().position(|x| *x == g) {
            Some(i) => i,
            None => {
                self.grids.push(g);
                self.grids.len() - 1
            }
        }
    }

    fn space(&mut self) -> u64 {
        self.next_space += 1;
        self.next_space << 32
    }

    /// Tags for a tensor of known plain layout `found` and full shape `shape`.
    fn seed(&mut self, found: &Found, shape: &[usize]) -> Option<Tags> {
        let total: usize = shape.iter().product();
        if total > MAX_ELEMENTS || shape.first() != Some(&self.n) {
            return None;
        }
        // (channel axis, grid, position axes)
        let (ca, grid): (usize, [usize; 2]) = match (found, shape) {
            (Found::ChannelsFirst, [_, _, h, w]) => (1, [*h, *w]),
            (Found::ChannelsFirst, [_, _, l]) => (1, [*l, 1]),
            (Found::ChannelsLast, [_, h, w, _]) => (3, [*h, *w]),
            (Found::Tokens(g), [_, t, _]) if g[0] * g[1] == *t => (2, *g),
            (Found::Seq(g), [_, _, t]) if g[0] * g[1] == *t => (1, *g),
            (Found::Flat, [_, _]) => (1, [1, 1]),
            _ => return None,
        };
        let gid = self.grid_id(grid);
        let space = self.space();
        let mut pos = vec![0; total];
        let mut chan = vec![0; total];
        each_index(shape, |flat, idx| {
            let p =
                idx[1..].iter().enumerate().filter(|(a, _)| a + 1 != ca).fold(0, |acc, (a, &i)| acc * shape[a + 1] + i);
            pos[flat] = pos_tag(idx[0], gid, p);
            chan[flat] = space | idx[ca] as u64;
        });
        Some(Tags { shape: shape.to_vec(), pos, chan })
    }

    /// The tags of `x`: replayed earlier, or seeded from its plain layout.
    fn get(&mut self, x: &str, plain: &dyn Fn(&str) -> Option<Found>, full: &super::layout::Shapes) -> Option<Tags> {
        if let Some(t) = self.tags.get(x) {
            return Some(t.clone());
        }
        let found = plain(x)?;
        let t = self.seed(&found, full.get(x)?)?;
        // Kept for the other consumers: the parts of one tensor must share its tags.
        if self.uses.get(x).copied().unwrap_or(0) > 1 {
            self.tags.insert(x.to_string(), t.clone());
        }
        Some(t)
    }

    /// Whether an input of `n` has tags (then its outputs are replayed first).
    pub fn has_tags(&self, n: &NodeProto) -> bool {
        n.input.iter().any(|x| self.tags.contains_key(x))
    }

    /// Replays node `n` on tags: the tags of its outputs, where its inputs have tags (or
    /// plain layouts, per `plain`) and the op keeps them; they are kept for the
    /// outputs' consumers. `full`: full shapes (batch first) of the probed tensors.
    pub fn replay_node(
        &mut self,
        g: &GraphProto,
        n: &NodeProto,
        plain: &dyn Fn(&str) -> Option<Found>,
        full: &super::layout::Shapes,
    ) -> Vec<(String, Tags)> {
        let out = self.replay(g, n, plain, full).unwrap_or_default();
        for (name, t) in &out {
            if self.uses.get(name).copied().unwrap_or(0) > 0 {
                self.tags.insert(name.clone(), t.clone());
            }
        }
        out
    }

    /// Marks node `n` visited: the tags of an input whose last consumer it is are dropped.
    pub fn visit(&mut self, n: &NodeProto) {
        for x in &n.input {
            if let Some(u) = self.uses.get_mut(x) {
                *u = u.saturating_sub(1);
                if *u == 0 {
                    self.tags.remove(x);
                }
            }
        }
    }

    fn replay(
        &mut self,
        g: &GraphProto,
        n: &NodeProto,
        plain: &dyn Fn(&str) -> Option<Found>,
        full: &super::layout::Shapes,
    ) -> Option<Vec<(String, Tags)>> {
        let out = n.output.first()?;
        let so = full.get(out)?.clone();
        if so.iter().product::<usize>() > MAX_ELEMENTS {
            return None;
        }
        let dynamic: Vec<&String> = n.input.iter().filter(|x| full.contains_key(*x)).collect();
        // The data input (first) of data movement; any image-dependent input of pointwise ops.
        let first = match n.input.first().filter(|x| full.contains_key(*x)) {
            Some(x) => x,
            None if is_pointwise(&n.op_type) => *dynamic.first()?,
            None => return None,
        };
        let one = |t: Tags| Some(vec![(out.clone(), t)]);
        let op = n.op_type.as_str();
        match op {
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout" | "Cast" => {
                let t = self.get(first, plain, full)?;
                (t.pos.len() == so.iter().product::<usize>()).then_some(())?;
                one(Tags { shape: so, ..t })
            }
            "Transpose" => {
                let t = self.get(first, plain, full)?;
                let r = t.shape.len();
                let perm: Vec<usize> = match attr_ints(n, "perm") {
                    Some(p) => p.iter().map(|&a| usize::try_from(a).ok().filter(|a| *a < r)).collect::<Option<_>>()?,
                    None => (0..r).rev().collect(),
                };
                let st = strides(&t.shape);
                let src = gather(&so, |idx| Some(perm.iter().zip(idx).map(|(&a, &i)| i * st[a]).sum()));
                one(t.moved(so, &src))
            }
            "Slice" => {
                let t = self.get(first, plain, full)?;
                let (starts, steps) = slice_params(g, n, &t.shape, &so)?;
                let st = strides(&t.shape);
                let src = gather(&so, |idx| {
                    let mut f = 0i64;
                    for a in 0..idx.len() {
                        f += (starts[a] + steps[a] * idx[a] as i64) * st[a] as i64;
                    }
                    usize::try_from(f).ok()
                });
                one(t.moved(so, &src))
            }
            "Gather" => {
                let t = self.get(first, plain, full)?;
                let r = t.shape.len() as i64;
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(0);
                let axis = usize::try_from(if axis < 0 { axis + r } else { axis }).ok()?;
                let ind = const_ints(g, n.input.get(1)?)?;
                let dim = *t.shape.get(axis)? as i64;
                let ind: Vec<usize> = ind
                    .iter()
                    .map(|&i| usize::try_from(if i < 0 { i + dim } else { i }).ok().filter(|i| (*i as i64) < dim))
                    .collect::<Option<_>>()?;
                // Indices of rank 0 (the axis removed) or 1 (the axis kept).
                let scalar = so.len() + 1 == t.shape.len();
                let mut in_shape_of_out = t.shape.clone();
                if scalar {
                    (ind.len() == 1).then_some(())?;
                    in_shape_of_out.remove(axis);
                } else {
                    in_shape_of_out[axis] = ind.len();
                }
                (in_shape_of_out == so).then_some(())?;
                let st = strides(&t.shape);
                let src = gather(&so, |idx| {
                    let mut f = 0;
                    let mut k = 0;
                    for (a, &sa) in st.iter().enumerate() {
                        let i = if a == axis {
                            if scalar {
                                ind[0]
                            } else {
                                k += 1;
                                ind[idx[k - 1]]
                            }
                        } else {
                            k += 1;
                            idx[k - 1]
                        };
                        f += i * sa;
                    }
                    Some(f)
                });
                one(t.moved(so, &src))
            }
            "Concat" => {
                let r = so.len() as i64;
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(0);
                let axis = usize::try_from(if axis < 0 { axis + r } else { axis }).ok()?;
                let parts: Vec<Tags> = n.input.iter().map(|x| self.get(x, plain, full)).collect::<Option<_>>()?;
                one(concat(&parts, axis, so)?)
            }
            "Split" => {
                let t = self.get(first, plain, full)?;
                let r = t.shape.len() as i64;
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(0);
                let axis = usize::try_from(if axis < 0 { axis + r } else { axis }).ok()?;
                let st = strides(&t.shape);
                let mut at = 0;
                let mut outs = Vec::new();
                for o in &n.output {
                    let s = full.get(o)?.clone();
                    let src = gather(&s, |idx| {
                        Some(idx.iter().enumerate().map(|(a, &i)| (i + if a == axis { at } else { 0 }) * st[a]).sum())
                    });
                    at += *s.get(axis)?;
                    outs.push((o.clone(), t.moved(s, &src)));
                }
                (at == *t.shape.get(axis)?).then_some(outs)
            }
            "Pad" => {
                let t = self.get(first, plain, full)?;
                if t.shape == so {
                    return one(Tags { shape: so, ..t });
                }
                let mode = n.attribute.iter().find(|a| a.name == "mode").map(|a| a.s.clone()).unwrap_or_default();
                (mode.is_empty() || mode == b"constant").then_some(())?;
                let pads = attr_ints(n, "pads").or_else(|| n.input.get(1).and_then(|p| const_ints(g, p)))?;
                let r = t.shape.len();
                (pads.len() == 2 * r && n.input.get(3).is_none_or(|a| a.is_empty())).then_some(())?;
                for a in 0..r {
                    (t.shape[a] as i64 + pads[a] + pads[a + r] == so[a] as i64).then_some(())?;
                }
                let st = strides(&t.shape);
                let src = gather(&so, |idx| {
                    let mut f = 0;
                    for a in 0..r {
                        let i = usize::try_from(idx[a] as i64 - pads[a]).ok().filter(|i| *i < t.shape[a])?;
                        f += i * st[a];
                    }
                    Some(f)
                });
                one(t.moved(so, &src))
            }
            "MatMul" | "Gemm" => {
                let a = self.get(first, plain, full)?;
                let rows = a.row_tags()?;
                let b = n.input.get(1)?;
                let cols = so[so.len() - 1];
                // A Linear (constant weights): new channels at the same positions. Two
                // products of activations (attention): the value's channels.
                // (Attention scores, a product over channels: no channel.)
                let chan: Vec<u64> = match (full.contains_key(b), op) {
                    (false, _) => {
                        let s = self.space();
                        (0..cols as u64).map(|j| s | j).collect()
                    }
                    (true, "MatMul") => self.get(b, plain, full)?.col_chans().unwrap_or_else(|| vec![NONE; cols]),
                    _ => return None,
                };
                (so.len() == a.shape.len() && so[..so.len() - 1] == a.shape[..a.shape.len() - 1]).then_some(())?;
                // The value's channels per leading index (batch, head), or one set.
                let m = if so.len() >= 2 { so[so.len() - 2] } else { 1 };
                let leads = chan.len() / cols;
                (chan.len().is_multiple_of(cols) && (leads == 1 || leads * m == rows.len())).then_some(())?;
                let total = rows.len() * cols;
                let (mut pos, mut ch) = (vec![0; total], vec![0; total]);
                for (r, &p) in rows.iter().enumerate() {
                    let lead = if leads == 1 { 0 } else { r / m };
                    for j in 0..cols {
                        pos[r * cols + j] = p;
                        ch[r * cols + j] = chan[lead * cols + j];
                    }
                }
                one(Tags { shape: so, pos, chan: ch })
            }
            "LayerNormalization" | "Softmax" | "LogSoftmax" => {
                let t = self.get(first, plain, full)?;
                let r = t.shape.len() as i64;
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(-1);
                let axis = usize::try_from(if axis < 0 { axis + r } else { axis }).ok()?;
                // Normalized across axes where the position does not change: each
                // output element stays at its position.
                (axis..t.shape.len()).all(|a| t.constant_along(a, true)).then_some(())?;
                (t.shape == so).then_some(())?;
                one(t)
            }
            _ if is_pointwise(op) || op == "BatchNormalization" => {
                // Every image-dependent input: the same tags at the output's shape
                // (a broadcast activation, as in squeeze-excitation, is left to
                // `layout.rs`); constants broadcast freely.
                let inputs: Vec<&String> = if op == "BatchNormalization" { vec![first] } else { dynamic };
                let mut got: Option<Tags> = None;
                for x in inputs {
                    let t = self.get(x, plain, full)?;
                    (t.shape == so).then_some(())?;
                    // Same positions, and channels that correspond one to one (a
                    // residual sum of a Linear's output and its input).
                    match &got {
                        Some(g0) if g0.pos != t.pos || !same_channels(&g0.chan, &t.chan) => return None,
                        Some(_) => {}
                        None => got = Some(t),
                    }
                }
                one(got?)
            }
            _ => None,
        }
    }

    /// What a tagged tensor is (see the module doc); `None` when the tags do not say.
    /// Positions on a regular sub-lattice of the grid (a strided subsampling, a crop)
    /// are read on a grid of their own; the tags keep the grid they came from, so that
    /// the parts of a cyclic shift still fit together.
    pub fn classify(&self, t: &Tags) -> Option<Found> {
        let n = self.n;
        let shape = &t.shape;
        let r = shape.len();
        if r < 2 || !shape[0].is_multiple_of(n) || shape[0] < n {
            return None;
        }
        let total = t.pos.len();
        let block = total / n;
        // Every element belongs to one frame, block-wise, on one grid.
        let mut gid = None;
        for (i, (&p, &c)) in t.pos.iter().zip(&t.chan).enumerate() {
            if p == PAD {
                continue;
            }
            if p == NONE || c == NONE || c == PAD || frame_of(p) != i / block {
                return None;
            }
            match gid {
                None => gid = Some(grid_of(p)),
                Some(g0) if g0 != grid_of(p) => return None,
                _ => {}
            }
        }
        let gid = gid?;
        // The channel axis: the one axis along which the channel varies (and the
        // position does not); along every other axis the channel stays.
        let axes: Vec<usize> = (1..r).filter(|&a| shape[a] > 1).collect();
        let varying: Vec<usize> = axes.iter().copied().filter(|&a| !t.constant_along(a, false)).collect();
        let ca = match varying.as_slice() {
            [a] if t.constant_along(*a, true) => *a,
            _ => return None,
        };
        let c = shape[ca];
        // Rows: the elements of channel index 0, in order once the channel axis is last.
        let st = strides(shape);
        let mut rest: Vec<usize> = shape.clone();
        rest.remove(ca);
        let rows_per_frame = block / c;
        let mut frame_rows: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
        each_index(&rest, |row, idx| {
            let flat: usize = idx.iter().enumerate().map(|(k, &i)| i * st[if k < ca { k } else { k + 1 }]).sum();
            let p = t.pos[flat];
            if p != PAD {
                frame_rows[row / rows_per_frame].push((row % rows_per_frame, p));
            }
        });
        let [_, gw] = self.grids[gid];
        // The positions of frame 0; every frame alike.
        let mut ys: Vec<usize> = frame_rows[0].iter().map(|(_, p)| p_of(*p) / gw).collect();
        let mut xs: Vec<usize> = frame_rows[0].iter().map(|(_, p)| p_of(*p) % gw).collect();
        ys.sort_unstable();
        ys.dedup();
        xs.sort_unstable();
        xs.dedup();
        let lattice = |v: &[usize]| v.len() < 2 || v.windows(2).all(|w| w[1] - w[0] == v[1] - v[0]);
        if !lattice(&ys) || !lattice(&xs) || ys.len() * xs.len() != frame_rows[0].len() {
            return None;
        }
        let (h, w) = (ys.len(), xs.len());
        let sub = |p: usize| -> Option<usize> {
            let (y, x) = (p / gw, p % gw);
            Some(ys.binary_search(&y).ok()? * w + xs.binary_search(&x).ok()?)
        };
        let mut table = vec![-1i64; h * w];
        for (f, rows) in frame_rows.iter().enumerate() {
            let mut seen = vec![-1i64; h * w];
            for &(row, p) in rows {
                let q = sub(p_of(p))?;
                if seen[q] >= 0 {
                    return None; // a position twice
                }
                seen[q] = row as i64;
            }
            if seen.contains(&-1) || (f > 0 && seen != table) {
                return None;
            }
            table = seen;
        }
        let identity = shape[0] == n && !t.pos.contains(&PAD) && table.iter().enumerate().all(|(i, &v)| v == i as i64);
        let found = match (r, ca) {
            (4, 1) if identity && [shape[2], shape[3]] == [h, w] => Found::ChannelsFirst,
            (4, 3) if identity && [shape[1], shape[2]] == [h, w] => Found::ChannelsLast,
            (3, 2) if identity && shape[1] == h * w => Found::Tokens([h, w]),
            (3, 1) if identity && shape[2] == h * w => Found::Seq([h, w]),
            (2, 1) if identity && h * w == 1 => Found::Flat,
            _ => Found::Arranged(Arrangement { channel_axis: ca, grid: [h, w], table }),
        };
        Some(found)
    }
}

impl Tags {
    /// These tags moved: output element `i` takes input element `src[i]` (a Pad's new
    /// elements where `None`).
    fn moved(&self, shape: Vec<usize>, src: &[Option<usize>]) -> Tags {
        let pick = |v: &[u64], pad: u64| src.iter().map(|s| s.and_then(|i| v.get(i).copied()).unwrap_or(pad)).collect();
        Tags { pos: pick(&self.pos, PAD), chan: pick(&self.chan, PAD), shape }
    }

    /// Whether the position (`pos`) or the channel tag stays the same along axis `a`
    /// (padding aside).
    fn constant_along(&self, a: usize, pos: bool) -> bool {
        let v = if pos { &self.pos } else { &self.chan };
        let st = strides(&self.shape);
        let mut ok = true;
        each_index(&self.shape, |flat, idx| {
            if ok && idx[a] > 0 {
                let (x, y) = (v[flat], v[flat - st[a]]);
                ok = x == y || x == PAD || y == PAD;
            }
        });
        ok
    }

    /// The position of each row (all axes but the last), which must not vary along it.
    fn row_tags(&self) -> Option<Vec<u64>> {
        let last = *self.shape.last()?;
        if last == 0 || !self.constant_along(self.shape.len() - 1, true) {
            return None;
        }
        Some(self.pos.chunks(last).map(|r| r.iter().copied().find(|&p| p != PAD).unwrap_or(PAD)).collect())
    }

    /// The channel of each column (last axis) for each leading index (all axes but the
    /// last two), which must not vary along the second-to-last axis.
    fn col_chans(&self) -> Option<Vec<u64>> {
        let r = self.shape.len();
        if r < 2 || !self.constant_along(r - 2, false) {
            return None;
        }
        let (k, cols) = (self.shape[r - 2], self.shape[r - 1]);
        Some(self.chan.chunks(k * cols).flat_map(|m| m[..cols].to_vec()).collect())
    }
}

/// For each element of `shape`, the flat input index `f(index)` it takes.
fn gather(shape: &[usize], f: impl Fn(&[usize]) -> Option<usize>) -> Vec<Option<usize>> {
    let mut out = vec![None; shape.iter().product()];
    each_index(shape, |flat, idx| out[flat] = f(idx));
    out
}

/// Concat of tagged `parts` along `axis` into `shape`.
fn concat(parts: &[Tags], axis: usize, shape: Vec<usize>) -> Option<Tags> {
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
    let mut bad = false;
    each_index(&shape, |flat, idx| {
        let k = offsets.iter().rposition(|&o| o <= idx[axis]).unwrap_or(0);
        let p = &parts[k];
        let st = strides(&p.shape);
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
    (!bad).then_some(Tags { shape, pos, chan })
}

/// Per-axis start and step of a Slice of `si` to `so` (ONNX semantics: negative
/// starts and ends count from the end, clamped; negative steps go backwards). Starts
/// and ends must be constants unless nothing is cut.
fn slice_params(g: &GraphProto, n: &NodeProto, si: &[usize], so: &[usize]) -> Option<(Vec<i64>, Vec<i64>)> {
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
fn same_channels(a: &[u64], b: &[u64]) -> bool {
    let mut ab: HashMap<u64, u64> = HashMap::new();
    let mut ba: HashMap<u64, u64> = HashMap::new();
    a.iter().zip(b).all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}

/// Ops that only move data: replayed on tags before the layout rules are tried, so
/// that the parts of a shifted or cropped map keep their places on the grid.
pub(crate) fn is_movement(op: &str) -> bool {
    matches!(op, "Slice" | "Concat" | "Split" | "Pad" | "Gather")
}

/// Ops that compute each output element from the elements at the same index of their
/// (broadcast) inputs.
fn is_pointwise(op: &str) -> bool {
    matches!(
        op,
        "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Relu"
            | "Sigmoid"
            | "Tanh"
            | "Gelu"
            | "Erf"
            | "HardSwish"
            | "HardSigmoid"
            | "LeakyRelu"
            | "Elu"
            | "Selu"
            | "Softplus"
            | "Clip"
            | "Pow"
            | "Sqrt"
            | "Neg"
            | "Abs"
            | "Exp"
            | "Log"
            | "Max"
            | "Min"
            | "Mish"
            | "PRelu"
            | "Where"
    )
}

#[cfg(test)]
mod tests {
    use super::super::graph::{self, attr_int, attr_ints, node};
    use super::super::layout::{propagate, Layout, Shapes};
    use onnx_protobuf::GraphProto;

    /// Full shapes at batch 2 and per-frame shapes of the batch-first ones.
    fn shapes(full: &[(&str, &[usize])]) -> (Shapes, Shapes) {
        let f: Shapes = full.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        let per = f.iter().filter(|(_, v)| v[0] == 2).map(|(k, v)| (k.clone(), v[1..].to_vec())).collect();
        (per, f)
    }

    /// A Swin block's data movement on a 4x4 grid of 4 channels: a cyclic shift by one
    /// row (Slice + Concat), 2x2 windows `[N·4, 4, C]`, a Linear on the windows, the
    /// windows put back and the shift undone.
    fn swin_like() -> (GraphProto, Shapes, Shapes) {
        let mut g = GraphProto {
            initializer: vec![
                graph::tensor_f32("w", &[4, 3, 2, 2], &[0.5; 48]),
                graph::tensor_f32("lin", &[4, 6], &[0.5; 24]),
                graph::tensor_i64("s0", &[-1]),
                graph::tensor_i64("e0", &[i64::MAX]),
                graph::tensor_i64("s1", &[0]),
                graph::tensor_i64("e1", &[-1]),
                graph::tensor_i64("s2", &[1]),
                graph::tensor_i64("e2", &[1]),
                graph::tensor_i64("ax1", &[1]),
                graph::tensor_i64("part", &[2, 2, 2, 2, 2, 4]),
                graph::tensor_i64("win", &[8, 4, 4]),
                graph::tensor_i64("part6", &[2, 2, 2, 2, 2, 6]),
                graph::tensor_i64("back", &[2, 4, 4, 6]),
            ],
            ..Default::default()
        };
        let perm = |p: &[i64]| vec![attr_ints("perm", p)];
        g.node = vec![
            node("Conv", "conv", &["image", "w"], &["c"], vec![attr_ints("strides", &[2, 2])]),
            node("Transpose", "t", &["c"], &["cl"], perm(&[0, 2, 3, 1])),
            // roll by +1 along H: the last row, then the others
            node("Slice", "a", &["cl", "s0", "e0", "ax1"], &["ra"], vec![]),
            node("Slice", "b", &["cl", "s1", "e1", "ax1"], &["rb"], vec![]),
            node("Concat", "roll", &["ra", "rb"], &["rolled"], vec![attr_int("axis", 1)]),
            node("Reshape", "p1", &["rolled", "part"], &["p1"], vec![]),
            node("Transpose", "p2", &["p1"], &["p2"], perm(&[0, 1, 3, 2, 4, 5])),
            node("Reshape", "p3", &["p2", "win"], &["windows"], vec![]),
            node("MatMul", "qkv", &["windows", "lin"], &["qkv"], vec![]),
            // an attention-score-like product of the windows with themselves
            node("Transpose", "kt", &["qkv"], &["kt"], perm(&[0, 2, 1])),
            node("MatMul", "scores", &["qkv", "kt"], &["scores"], vec![]),
            node("Reshape", "r1", &["qkv", "part6"], &["r1"], vec![]),
            node("Transpose", "r2", &["r1"], &["r2"], perm(&[0, 1, 3, 2, 4, 5])),
            node("Reshape", "r3", &["r2", "back"], &["r3"], vec![]),
            // roll back by -1: rows 1.., then row 0
            node("Slice", "c", &["r3", "s2", "e0", "ax1"], &["rc"], vec![]),
            node("Slice", "d", &["r3", "s1", "e2", "ax1"], &["rd"], vec![]),
            node("Concat", "unroll", &["rc", "rd"], &["out"], vec![attr_int("axis", 1)]),
        ];
        let (per, full) = shapes(&[
            ("image", &[2, 3, 8, 8]),
            ("c", &[2, 4, 4, 4]),
            ("cl", &[2, 4, 4, 4]),
            ("ra", &[2, 1, 4, 4]),
            ("rb", &[2, 3, 4, 4]),
            ("rolled", &[2, 4, 4, 4]),
            ("p1", &[2, 2, 2, 2, 2, 4]),
            ("p2", &[2, 2, 2, 2, 2, 4]),
            ("windows", &[8, 4, 4]),
            ("qkv", &[8, 4, 6]),
            ("kt", &[8, 6, 4]),
            ("scores", &[8, 4, 4]),
            ("r1", &[2, 2, 2, 2, 2, 6]),
            ("r2", &[2, 2, 2, 2, 2, 6]),
            ("r3", &[2, 4, 4, 6]),
            ("rc", &[2, 3, 4, 6]),
            ("rd", &[2, 1, 4, 6]),
            ("out", &[2, 4, 4, 6]),
        ]);
        (g, per, full)
    }

    #[test]
    fn shifted_windows_are_arranged_on_the_grid_and_put_back_as_channels_last() {
        let (g, per, full) = swin_like();
        let p = propagate(&g, "image", false, &per, &full, 2);
        assert_eq!(p.layouts.get("cl"), Some(&Layout::ChannelsLast));
        assert_eq!(p.layouts.get("out"), Some(&Layout::ChannelsLast), "the shift undone is plain again");
        let a = p.arranged.get("qkv").expect("the windows' Linear is arranged");
        assert_eq!((a.channel_axis, a.grid), (2, [4, 4]));
        // Known answer: grid position (y, x) of the unshifted map sits at row y+1 (mod
        // 4) of the shifted one, in window (row / 2, x / 2), at (row % 2, x % 2) in it.
        for y in 0..4 {
            for x in 0..4 {
                let r = (y + 1) % 4;
                let window = (r / 2) * 2 + x / 2;
                let row = window * 4 + (r % 2) * 2 + x % 2;
                assert_eq!(a.table[y * 4 + x], row as i64, "({y}, {x})");
            }
        }
        assert!(p.arranged.contains_key("windows"));
        assert!(p.arranged.get("rolled").is_some_and(|a| a.channel_axis == 3), "the shifted map itself");
        assert!(!p.arranged.contains_key("scores") && !p.layouts.contains_key("scores"), "scores: no channels");
    }

    #[test]
    fn a_channel_shuffle_keeps_channels_first() {
        let g = GraphProto {
            initializer: vec![
                graph::tensor_f32("w", &[4, 3, 2, 2], &[0.5; 48]),
                graph::tensor_i64("split", &[2, 2, 2, 4, 4]),
                graph::tensor_i64("merged", &[2, 4, 4, 4]),
            ],
            node: vec![
                node("Conv", "conv", &["image", "w"], &["c"], vec![attr_ints("strides", &[2, 2])]),
                node("Reshape", "a", &["c", "split"], &["a"], vec![]),
                node("Transpose", "b", &["a"], &["b"], vec![attr_ints("perm", &[0, 2, 1, 3, 4])]),
                node("Reshape", "shuffled", &["b", "merged"], &["shuffled"], vec![]),
            ],
            ..Default::default()
        };
        let (per, full) = shapes(&[
            ("image", &[2, 3, 8, 8]),
            ("c", &[2, 4, 4, 4]),
            ("a", &[2, 2, 2, 4, 4]),
            ("b", &[2, 2, 2, 4, 4]),
            ("shuffled", &[2, 4, 4, 4]),
        ]);
        let p = propagate(&g, "image", false, &per, &full, 2);
        assert_eq!(p.layouts.get("shuffled"), Some(&Layout::ChannelsFirst));
        assert_eq!(p.layouts.get("a"), None, "channels split over two axes: no layout");
    }
}
