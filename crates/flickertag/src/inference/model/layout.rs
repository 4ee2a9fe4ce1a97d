//! Tensor layouts: where a tap's channels are, found from the graph, and the graph
//! edits that reduce a tap to per-channel means `[N, C]` or lay it out as maps
//! `[N, C, H, W]`.
//!
//! A layout is propagated from the image input through the graph, node by node, with
//! the shapes of a probe run: a Conv's output is channels-first; a Transpose
//! `[0, 2, 3, 1]` makes it channels-last; `flatten(2).transpose(1, 2)` of a conv output
//! makes tokens `[N, T, D]` with the conv's spatial grid; a class token concatenated in
//! front makes a prefix; a Linear keeps the layout of its input with its channels last;
//! pointwise ops keep the layout of the input whose shape they keep. Where no rule
//! applies the layout is unknown, and such a tensor is never a tap by default and an
//! error when named: flickertag does not guess a channel axis.

use std::collections::HashMap;

use onnx_protobuf::{GraphProto, ModelProto, NodeProto};
use serde::{Deserialize, Serialize};

use super::graph;

/// How a tap's tensor is laid out, per frame (the batch axis `N` comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layout {
    /// `[N, C, H, W]` (or `[N, C, L]`): channels on axis 1, space after it.
    ChannelsFirst,
    /// `[N, H, W, C]`: channels last (a Linear applied to a permuted conv map).
    ChannelsLast,
    /// `[N, T, D]`: `prefix` class/register tokens, then `T - prefix` patch tokens on a
    /// `grid` (rows, columns) when known. Channels are `D`; the mean is over the patch
    /// tokens only.
    Tokens {
        /// Tokens before the patch tokens (class, registers).
        prefix: usize,
        /// Patch grid, rows x columns.
        grid: Option<[usize; 2]>,
    },
    /// One prefix token of a `[N, T, D]` tensor (`index` < prefix): channels `D`.
    Token {
        /// Token index.
        index: usize,
    },
    /// `[N, C]`: one value per channel.
    Flat,
}

impl Layout {
    /// A short name (`channels_first`, `tokens(1 + 8x8)`, ...).
    pub fn describe(&self) -> String {
        match self {
            Layout::ChannelsFirst => "channels_first".into(),
            Layout::ChannelsLast => "channels_last".into(),
            Layout::Tokens { prefix, grid: Some([h, w]) } => format!("tokens({prefix}+{h}x{w})"),
            Layout::Tokens { prefix, grid: None } => format!("tokens({prefix}+T)"),
            Layout::Token { index } => format!("token({index})"),
            Layout::Flat => "flat".into(),
        }
    }

    /// The per-frame shape `[C, H, W]` the rest of flickertag sees for a tensor of this
    /// layout and per-frame shape `s` (without the batch axis); `None` if they do not fit.
    pub fn canonical(&self, s: &[usize]) -> Option<[usize; 3]> {
        let prod = |v: &[usize]| v.iter().product::<usize>();
        match (self, s) {
            (Layout::ChannelsFirst, [c, h]) => Some([*c, *h, 1]),
            (Layout::ChannelsFirst, [c, h, rest @ ..]) => Some([*c, *h, prod(rest)]),
            (Layout::ChannelsLast, [h, w, c]) => Some([*c, *h, *w]),
            (Layout::Tokens { prefix, grid }, [t, d]) if t > prefix => match grid {
                Some([h, w]) if h * w == t - prefix => Some([*d, *h, *w]),
                Some(_) => None,
                None => Some([*d, t - prefix, 1]),
            },
            (Layout::Token { index }, [t, d]) if index < t => Some([*d, 1, 1]),
            (Layout::Flat, [c]) => Some([*c, 1, 1]),
            _ => None,
        }
    }
}

/// A layout during propagation (adds the intermediate `[N, C, T]` of a flattened map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    Cf,
    Cl,
    /// `[N, C, T]` flattened from a `grid` map.
    Seq([usize; 2]),
    Tok(usize, Option<[usize; 2]>),
    Flat,
}

/// Per-frame shapes (batch axis removed) of the probed tensors.
pub(crate) type Shapes = HashMap<String, Vec<usize>>;

/// An integer or integer-list attribute of `n` as a list (`[i]` for an integer).
pub(super) fn attr_ints(n: &NodeProto, k: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == k).map(|a| if a.ints.is_empty() { vec![a.i] } else { a.ints.clone() })
}

/// The int64 values of a constant tensor (initializer or Constant node).
fn const_ints(g: &GraphProto, name: &str) -> Option<Vec<i64>> {
    let t = g.initializer.iter().find(|t| t.name == name).or_else(|| {
        g.node
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.first().map(|s| s.as_str()) == Some(name))
            .and_then(|n| n.attribute.iter().find(|a| a.name == "value"))
            .and_then(|a| a.t.as_ref())
    })?;
    if !t.raw_data.is_empty() && t.data_type == 7 {
        Some(t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
    } else if t.data_type == 7 {
        Some(t.int64_data.clone())
    } else {
        None
    }
}

/// Axes of a Reduce* node (attribute before opset 18, input after), made non-negative.
fn reduce_axes(g: &GraphProto, n: &NodeProto, rank: usize) -> Option<Vec<usize>> {
    let v = attr_ints(n, "axes").or_else(|| n.input.get(1).filter(|s| !s.is_empty()).and_then(|a| const_ints(g, a)))?;
    v.iter().map(|&a| usize::try_from(if a < 0 { a + rank as i64 } else { a }).ok()).collect()
}

/// Propagates layouts from the image input (`nhwc`: the input is `[N, H, W, C]`).
/// Returns the layout of every tensor where one is known.
pub(crate) fn propagate(g: &GraphProto, input: &str, nhwc: bool, shapes: &Shapes) -> HashMap<String, Layout> {
    let mut lay: HashMap<String, L> = HashMap::new();
    lay.insert(input.to_string(), if nhwc { L::Cl } else { L::Cf });
    // Token sequence lengths seen, for a Linear on tokens whose arrangement was lost
    // (attention output reshaped back to [N, T, D]).
    let mut seqs: HashMap<usize, (usize, Option<[usize; 2]>)> = HashMap::new();
    let shape = |x: &str| shapes.get(x);
    for n in &g.node {
        let Some(out) = n.output.first() else { continue };
        let Some(so) = shape(out) else { continue };
        let dyn_in: Vec<&String> = n.input.iter().filter(|x| shapes.contains_key(*x) || lay.contains_key(*x)).collect();
        let l0 = dyn_in.first().and_then(|x| lay.get(*x)).copied();
        let s0 = dyn_in.first().and_then(|x| shape(x));
        let same_shape = || dyn_in.iter().filter(|x| shape(x) == Some(so)).find_map(|x| lay.get(*x)).copied();
        let op = n.op_type.as_str();
        let r = so.len();
        let res: Option<L> = match op {
            "Conv"
            | "ConvTranspose"
            | "MaxPool"
            | "AveragePool"
            | "LpPool"
            | "GlobalAveragePool"
            | "GlobalMaxPool"
            | "Pad"
            | "Resize"
            | "Upsample"
            | "DepthToSpace"
            | "SpaceToDepth"
            | "LRN"
            | "InstanceNormalization" => (r >= 2).then_some(L::Cf),
            "BatchNormalization" | "GroupNormalization" => Some(if r == 1 { L::Flat } else { L::Cf }),
            "Gemm" => Some(L::Flat),
            "MatMul" if dyn_in.len() == 1 => match (l0, r) {
                (Some(l @ (L::Cl | L::Tok(..) | L::Flat)), _) => Some(l),
                (None, 1) => Some(L::Flat),
                (None, 2) => Some(seqs.get(&so[0]).map_or(L::Tok(0, None), |&(p, g)| L::Tok(p, g))),
                (None, 3) => Some(L::Cl),
                _ => None,
            },
            "LayerNormalization" | "Softmax" | "LogSoftmax" | "Dropout" | "Identity" | "Cast" => l0,
            "Transpose" => {
                let perm = attr_ints(n, "perm").unwrap_or_default();
                match (l0, perm.as_slice()) {
                    (Some(L::Cf), [0, 2, 3, 1]) if r == 3 => Some(L::Cl),
                    (Some(L::Cl), [0, 3, 1, 2]) => Some(L::Cf),
                    (Some(L::Seq(g)), [0, 2, 1]) => Some(L::Tok(0, Some(g))),
                    (Some(L::Tok(0, Some(g))), [0, 2, 1]) => Some(L::Seq(g)),
                    _ => None,
                }
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => match (l0, s0.map(|s| s.as_slice())) {
                (Some(l), Some(si)) if si == so.as_slice() => Some(l),
                (Some(L::Cf), Some([c, h, w])) if so.as_slice() == [*c, h * w] => Some(L::Seq([*h, *w])),
                (Some(L::Cf), Some([c, h, w])) if h * w == 1 && so.as_slice() == [*c] => Some(L::Flat),
                (Some(L::Cl), Some([h, w, c])) if so.as_slice() == [h * w, *c] => Some(L::Tok(0, Some([*h, *w]))),
                (Some(L::Cl), Some([h, w, c])) if h * w == 1 && so.as_slice() == [*c] => Some(L::Flat),
                (Some(L::Tok(0, Some([h, w]))), Some([_, d])) if so.as_slice() == [h, w, *d] => Some(L::Cl),
                (Some(L::Seq([h, w])), Some([c, _])) if so.as_slice() == [*c, h, w] => Some(L::Cf),
                (Some(L::Flat), Some([c])) if so.as_slice() == [*c, 1, 1] => Some(L::Cf),
                _ => None,
            },
            "Concat" => {
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(0);
                let axis = if axis < 0 { axis + r as i64 + 1 } else { axis } as usize;
                let lays: Vec<Option<L>> = dyn_in.iter().map(|x| lay.get(*x).copied()).collect();
                let chan_axis = |l: L| match l {
                    L::Cf | L::Seq(_) | L::Flat => 1,
                    L::Cl => r,
                    L::Tok(..) => 2,
                };
                match lays.as_slice() {
                    [Some(l), rest @ ..] if rest.iter().all(|x| *x == Some(*l)) && axis == chan_axis(*l) => Some(*l),
                    _ => {
                        // [extra tokens, patch tokens] on the token axis: a prefix.
                        let last = n.input.last().map(|s| s.as_str());
                        match (last.and_then(|x| lay.get(x)), last.and_then(shape)) {
                            (Some(L::Tok(p, g)), Some(st)) if axis == 1 && n.input.len() > 1 && so[0] > st[0] => {
                                Some(L::Tok(p + so[0] - st[0], *g))
                            }
                            _ => None,
                        }
                    }
                }
            }
            "Slice" => match (l0, s0) {
                (Some(L::Cf), Some(si)) if si.len() == r && si[0] == so[0] => Some(L::Cf),
                (Some(L::Cl), Some(si)) if si.len() == r && si.last() == so.last() => Some(L::Cl),
                (Some(L::Flat), Some(si)) if si == so.as_slice() => Some(L::Flat),
                _ => None,
            },
            "Gather" => {
                let axis = attr_ints(n, "axis").and_then(|v| v.first().copied()).unwrap_or(0);
                match l0 {
                    Some(L::Tok(..)) if axis == 1 && r == 1 => Some(L::Flat),
                    _ => None,
                }
            }
            "ReduceMean" | "ReduceMax" | "ReduceSum" | "ReduceMin" => {
                let rank_in = s0.map_or(0, |s| s.len() + 1);
                let axes = reduce_axes(g, n, rank_in);
                let keep = attr_ints(n, "keepdims").is_none_or(|v| v.first() != Some(&0));
                match (l0, axes) {
                    (Some(L::Cf), Some(a)) if !a.is_empty() && a.iter().all(|&x| x >= 2) => Some(if keep {
                        L::Cf
                    } else if r == 1 {
                        L::Flat
                    } else {
                        L::Cf
                    }),
                    (Some(L::Cl), Some(a)) if a == [1, 2] && !keep => Some(L::Flat),
                    (Some(L::Tok(..)), Some(a)) if a == [1] && !keep => Some(L::Flat),
                    _ => None,
                }
            }
            _ => same_shape(),
        };
        if let Some(l) = res {
            if let L::Tok(p, g @ Some(_)) = l {
                seqs.insert(so[0], (p, g));
            }
            lay.insert(out.clone(), l);
        }
    }
    lay.into_iter()
        .filter_map(|(k, l)| {
            let s = shape(&k)?;
            let public = match l {
                L::Cf if s.len() >= 2 => Layout::ChannelsFirst,
                L::Cf if s.len() == 1 => Layout::Flat,
                L::Seq(_) => Layout::ChannelsFirst,
                L::Cl if s.len() == 3 => Layout::ChannelsLast,
                L::Tok(p, g) if s.len() == 2 => Layout::Tokens { prefix: p, grid: g },
                L::Flat if s.len() == 1 => Layout::Flat,
                _ => return None,
            };
            Some((k, public))
        })
        .collect()
}

/// Graph edits that expose taps: built against one opset (ReduceMean takes its axes
/// as an attribute before 18, as an input from 18).
pub(crate) struct Editor<'a> {
    proto: &'a mut ModelProto,
    opset: i64,
}

impl<'a> Editor<'a> {
    /// An editor of `proto`.
    pub fn new(proto: &'a mut ModelProto) -> Self {
        let opset =
            proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(13, |o| o.version);
        Editor { proto, opset }
    }

    fn g(&mut self) -> &mut GraphProto {
        self.proto.graph.as_mut().expect("checked at load")
    }

    /// The graph being edited.
    pub(super) fn graph(&mut self) -> &mut GraphProto {
        self.g()
    }

    fn ints(&mut self, name: &str, v: &[i64]) -> String {
        let t = graph::tensor_i64(name, v);
        self.g().initializer.push(t);
        name.to_string()
    }

    fn push(&mut self, op: &str, out: &str, inputs: &[&str], attrs: Vec<onnx_protobuf::AttributeProto>) {
        self.g().node.push(graph::node(op, out, inputs, &[out], attrs));
    }

    fn reduce_mean(&mut self, out: &str, x: &str, axes: &[i64], keep: bool) {
        let keep = graph::attr_int("keepdims", keep as i64);
        if self.opset >= 18 {
            let a = self.ints(&format!("{out}.axes"), axes);
            self.push("ReduceMean", out, &[x, &a], vec![keep]);
        } else {
            self.push("ReduceMean", out, &[x], vec![graph::attr_ints("axes", axes), keep]);
        }
    }

    fn patch_tokens(&mut self, out: &str, x: &str, prefix: usize, t: usize) -> String {
        let s = format!("{out}.patches");
        let starts = self.ints(&format!("{s}.starts"), &[prefix as i64]);
        let ends = self.ints(&format!("{s}.ends"), &[t as i64]);
        let axes = self.ints(&format!("{s}.axes"), &[1]);
        self.push("Slice", &s, &[x, &starts, &ends, &axes], vec![]);
        s
    }

    /// Adds a node computing the per-channel mean of `x` (per-frame shape `s`,
    /// `layout`) as `out`, `[N, C]` or `[N, C, 1, ...]`.
    pub fn mean(&mut self, out: &str, x: &str, layout: Layout, s: &[usize]) {
        match layout {
            Layout::ChannelsFirst if s.len() == 3 => {
                self.push("GlobalAveragePool", out, &[x], vec![]);
            }
            Layout::ChannelsFirst => {
                let axes: Vec<i64> = (2..=s.len() as i64).collect();
                self.reduce_mean(out, x, &axes, false)
            }
            Layout::ChannelsLast => self.reduce_mean(out, x, &[1, 2], false),
            Layout::Tokens { prefix, .. } => {
                let p = self.patch_tokens(out, x, prefix, s[0]);
                self.reduce_mean(out, &p, &[1], false)
            }
            Layout::Token { index } => {
                let i = self.ints(&format!("{out}.index"), &[index as i64]);
                let gathered = format!("{out}.token");
                self.push("Gather", &gathered, &[x, &i], vec![graph::attr_int("axis", 1)]);
                let shape = self.ints(&format!("{out}.shape"), &[0, s[1] as i64]);
                self.push("Reshape", out, &[&gathered, &shape], vec![]);
            }
            Layout::Flat => self.push("Identity", out, &[x], vec![]),
        }
        self.g().output.push(graph::value_info(out, None));
    }

    /// Adds nodes laying `x` out as maps `[N, C, H, W]` (`chw` from
    /// [`Layout::canonical`]) named `out`.
    pub fn map(&mut self, out: &str, x: &str, layout: Layout, s: &[usize], chw: [usize; 3]) {
        let [c, h, w] = chw.map(|v| v as i64);
        let shape = self.ints(&format!("{out}.shape"), &[0, c, h, w]);
        match layout {
            Layout::ChannelsFirst if s.len() == 3 => self.push("Identity", out, &[x], vec![]),
            Layout::ChannelsFirst | Layout::Flat => self.push("Reshape", out, &[x, &shape], vec![]),
            Layout::ChannelsLast => self.push("Transpose", out, &[x], vec![graph::attr_ints("perm", &[0, 3, 1, 2])]),
            Layout::Tokens { prefix, .. } => {
                let p = self.patch_tokens(out, x, prefix, s[0]);
                let t = format!("{out}.t");
                self.push("Transpose", &t, &[&p], vec![graph::attr_ints("perm", &[0, 2, 1])]);
                self.push("Reshape", out, &[&t, &shape], vec![]);
            }
            Layout::Token { index } => {
                let i = self.ints(&format!("{out}.index"), &[index as i64]);
                let gathered = format!("{out}.token");
                self.push("Gather", &gathered, &[x, &i], vec![graph::attr_int("axis", 1)]);
                self.push("Reshape", out, &[&gathered, &shape], vec![]);
            }
        }
        self.g().output.push(graph::value_info(out, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_shapes_per_layout() {
        assert_eq!(Layout::ChannelsFirst.canonical(&[16, 8, 8]), Some([16, 8, 8]));
        assert_eq!(Layout::ChannelsLast.canonical(&[8, 8, 16]), Some([16, 8, 8]));
        let vit = Layout::Tokens { prefix: 1, grid: Some([4, 4]) };
        assert_eq!(vit.canonical(&[17, 192]), Some([192, 4, 4]));
        assert_eq!(vit.canonical(&[16, 192]), None, "a grid that does not fit is refused");
        assert_eq!(Layout::Tokens { prefix: 0, grid: None }.canonical(&[10, 4]), Some([4, 10, 1]));
        assert_eq!(Layout::Token { index: 0 }.canonical(&[17, 192]), Some([192, 1, 1]));
        assert_eq!(Layout::Flat.canonical(&[10]), Some([10, 1, 1]));
        assert_eq!(Layout::Flat.canonical(&[10, 2]), None);
    }
}
