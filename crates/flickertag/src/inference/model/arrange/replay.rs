//! The replay of each op on tags (see the parent module): data movement by its ONNX
//! semantics, and the computing ops whose outputs keep plain positions.

use std::collections::HashMap;
use std::rc::Rc;

use onnx_protobuf::{GraphProto, NodeProto};

use super::classify::{classify, Found};
use super::tags::{
    concat, each_index, gather, pos_tag, same_channels, slice_params, strides, Tags, MAX_ELEMENTS, NONE,
};
use crate::inference::model::graph::{const_ints, int_attr as attr_ints, Shapes};

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
        // (Grid ids have 16 bits of a tag, frames 16 and positions 32.)
        if self.grids.len() >= 0xffff || grid[0] * grid[1] >= 1 << 32 || self.n >= 0xffff {
            return None;
        }
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
        Some(Tags { shape: shape.to_vec(), pos: Rc::new(pos), chan: Rc::new(chan) })
    }

    /// The tags of `x`: replayed earlier, or seeded from its plain layout.
    fn get(&mut self, x: &str, plain: &dyn Fn(&str) -> Option<Found>, full: &Shapes) -> Option<Tags> {
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
        full: &Shapes,
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

    /// What a tagged tensor is (see the parent module); `None` when the tags do not say.
    pub fn classify(&self, t: &Tags) -> Option<Found> {
        classify(t, self.n, &self.grids)
    }
}

impl Arranger {
    /// The tags of the outputs of `n` (see [`Arranger::replay_node`]); `None` where an
    /// input has none or the op does not keep them.
    pub(super) fn replay(
        &mut self,
        g: &GraphProto,
        n: &NodeProto,
        plain: &dyn Fn(&str) -> Option<Found>,
        full: &Shapes,
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
                one(Tags { shape: so, pos: Rc::new(pos), chan: Rc::new(ch) })
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
}

/// Ops that only move data: replayed on tags before the layout rules are tried, so
/// that the parts of a shifted or cropped map keep their places on the grid.
pub(crate) fn is_movement(op: &str) -> bool {
    matches!(op, "Slice" | "Concat" | "Split" | "Pad" | "Gather")
}

/// Ops that compute each output element from the elements at the same index of their
/// (broadcast) inputs.
pub(super) fn is_pointwise(op: &str) -> bool {
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
