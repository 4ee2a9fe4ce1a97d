//! Tensor layouts: where a tap's channels are, found from the graph (the graph edits
//! that reduce a tap to per-channel means or lay it out as maps are in `edit.rs`).
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

use onnx_protobuf::{GraphProto, NodeProto};
use serde::{Deserialize, Serialize};

use super::arrange::{is_movement, Arrangement, Arranger, Found};
pub(crate) use super::graph::Shapes;
use super::graph::{const_ints, int_attr as attr_ints};

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
    /// Any arrangement of a grid's positions that the graph's data movement determines
    /// (windowed attention `[N·windows, w·w, C]`, unfolded patches `[N·P, patches, C]`,
    /// see `arrange`): the frame's elements are its block of the first axis, the
    /// channels on `channel_axis`, each grid position on one row (a table per tensor).
    Arranged {
        /// Axis of the channels (the first axis, 0, holds frames and windows).
        channel_axis: usize,
        /// The grid, rows x columns.
        grid: [usize; 2],
    },
    /// `[N, C, T, H, W]` of a clip model ([`super::time::Time::Clip`]): channels first,
    /// then time; the tap is read at time position `time` (the centre, `T / 2`).
    Clip {
        /// Time position read.
        time: usize,
    },
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
            Layout::Clip { time } => format!("clip(t={time})"),
            Layout::Arranged { channel_axis, grid: [h, w] } => {
                format!("arranged({h}x{w}, channels axis {channel_axis})")
            }
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
            (Layout::Clip { time }, [c, t, h, w]) if time < t => Some([*c, *h, *w]),
            (Layout::Arranged { channel_axis, grid: [h, w] }, s) if *channel_axis >= 1 => {
                s.get(*channel_axis).map(|c| [*c, *h, *w])
            }
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
    /// `[N, T, D]`: a prefix of extra tokens (their kinds in the arena at the third
    /// field), then the patch tokens on a grid; a prefix as long as the sequence (no
    /// grid) holds extra tokens only.
    Tok(usize, Option<[usize; 2]>, usize),
    Flat,
}

/// What an extra token is, from the parameter it is made from: `cls` (`cls_token`,
/// `class_token`, `class_embedding`), `reg` (`reg_token`, `register_tokens`), `dist`
/// (`dist_token`, `distillation_token`), or `tok` when the graph does not say.
fn token_kind(parameter: &str) -> &'static str {
    let p = parameter.to_ascii_lowercase();
    let last = p.rsplit(['.', '/', ':']).next().unwrap_or(&p);
    if last.contains("reg") {
        "reg"
    } else if last.contains("dist") {
        "dist"
    } else if last.contains("cls") || last.contains("class") {
        "cls"
    } else {
        "tok"
    }
}

/// The names of extra tokens of the given kinds, in order: a kind that occurs once is
/// named as itself (`cls`), one that occurs several times is numbered (`reg0`, `reg1`);
/// tokens of unknown kind are `tok<i>` with `i` their position.
pub(crate) fn token_names(kinds: &[&str]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let total = kinds.iter().filter(|&&x| x == k).count();
            let j = seen.entry(k).or_insert(0);
            *j += 1;
            match k {
                "tok" => format!("tok{i}"),
                _ if total == 1 => k.to_string(),
                _ => format!("{k}{}", *j - 1),
            }
        })
        .collect()
}

/// The parameter an extra-token tensor is made from: followed back through its first
/// input (Expand, Tile, Reshape, Add of position embeddings, Cast, ...) to an
/// initializer or a graph input that is not the image, at most 16 nodes back.
fn source_parameter<'a>(g: &'a GraphProto, producers: &HashMap<&str, &'a NodeProto>, x: &'a str) -> Option<&'a str> {
    let mut x = x;
    for _ in 0..16 {
        if g.initializer.iter().any(|t| t.name == x) {
            return Some(x);
        }
        let n = producers.get(x)?;
        if n.op_type == "Constant" {
            return Some(n.name.as_str()).filter(|s| !s.is_empty()).or(Some(x));
        }
        x = n.input.first()?.as_str();
    }
    None
}

/// Axes of a Reduce* node (attribute before opset 18, input after), made non-negative.
fn reduce_axes(g: &GraphProto, n: &NodeProto, rank: usize) -> Option<Vec<usize>> {
    let v = attr_ints(n, "axes").or_else(|| n.input.get(1).filter(|s| !s.is_empty()).and_then(|a| const_ints(g, a)))?;
    v.iter().map(|&a| usize::try_from(if a < 0 { a + rank as i64 } else { a }).ok()).collect()
}

/// Propagates layouts from the image input (`nhwc`: the input is `[N, H, W, C]`).
/// `shapes`: per-frame shapes of the batch-first tensors; `full`: full shapes of every
/// probed float tensor at `n` frames per batch (for the data movement replayed by
/// [`super::arrange`]). Returns the layout of every tensor where one is known.
pub(crate) fn propagate(
    g: &GraphProto,
    input: &str,
    nhwc: bool,
    shapes: &Shapes,
    full: &Shapes,
    frames: usize,
) -> Propagated {
    let mut lay: HashMap<String, L> = HashMap::new();
    lay.insert(input.to_string(), if nhwc { L::Cl } else { L::Cf });
    // Token sequence lengths seen, for a Linear on tokens whose arrangement was lost
    // (attention output reshaped back to [N, T, D]); `None` where two token layouts
    // of one length were seen (then the length says nothing).
    let mut seqs: HashMap<usize, Option<L>> = HashMap::new();
    // Kinds of the extra tokens of each token layout (index 0: none).
    let mut kinds: Vec<Vec<&'static str>> = vec![vec![]];
    let producers: HashMap<&str, &NodeProto> =
        g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let shape = |x: &str| shapes.get(x);
    let mut arranger = Arranger::new(g, frames);
    let mut arranged: HashMap<String, Arrangement> = HashMap::new();
    let plain = |lay: &HashMap<String, L>, x: &str| -> Option<Found> {
        match lay.get(x)? {
            L::Cf => Some(Found::ChannelsFirst),
            L::Cl => Some(Found::ChannelsLast),
            L::Tok(0, Some(g), _) => Some(Found::Tokens(*g)),
            L::Seq(g) => Some(Found::Seq(*g)),
            L::Flat => Some(Found::Flat),
            _ => None,
        }
    };
    for n in &g.node {
        let Some(out) = n.output.first() else { continue };
        // Data moved around (windows, unfolded patches, shuffled channels): replayed on
        // tags first where an input has them or the op only moves data, else where no
        // rule below applies. `replay` says whether `out` got tags (then they decide its
        // layout, plain or arranged, and the rules below are not tried).
        let replay =
            |arranger: &mut Arranger, lay: &mut HashMap<String, L>, arranged: &mut HashMap<String, Arrangement>| {
                let outs = arranger.replay_node(g, n, &|x| plain(lay, x), full);
                let tagged = outs.iter().any(|(k, _)| k == out);
                for (name, tags) in outs {
                    match arranger.classify(&tags) {
                        Some(Found::Arranged(a)) => {
                            arranged.insert(name, a);
                        }
                        Some(f) => {
                            let l = match f {
                                Found::ChannelsFirst => L::Cf,
                                Found::ChannelsLast => L::Cl,
                                Found::Tokens(g) => L::Tok(0, Some(g), 0),
                                Found::Seq(g) => L::Seq(g),
                                _ => L::Flat,
                            };
                            lay.insert(name, l);
                        }
                        None => {}
                    }
                }
                tagged
            };
        let tried = arranger.has_tags(n) || is_movement(&n.op_type);
        if tried && replay(&mut arranger, &mut lay, &mut arranged) {
            arranger.visit(n);
            continue;
        }
        let Some(so) = shape(out) else {
            if !tried {
                replay(&mut arranger, &mut lay, &mut arranged);
            }
            arranger.visit(n);
            continue;
        };
        let dyn_in: Vec<&String> = n.input.iter().filter(|x| shapes.contains_key(*x) || lay.contains_key(*x)).collect();
        let l0 = dyn_in.first().and_then(|x| lay.get(*x)).copied();
        let s0 = dyn_in.first().and_then(|x| shape(x));
        let same_shape = || dyn_in.iter().filter(|x| shape(x) == Some(so)).find_map(|x| lay.get(*x)).copied();
        let op = n.op_type.as_str();
        let r = so.len();
        let back = if op == "Reshape" { reshaped_back(&producers, n, &lay, shapes) } else { None };
        let res: Option<L> = match op {
            "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "LpPool" | "GlobalAveragePool" | "GlobalMaxPool"
            | "Resize" | "Upsample" | "DepthToSpace" | "SpaceToDepth" | "LRN" => (r >= 2).then_some(L::Cf),
            // A Pad keeps a channels-first layout; a channels-last one only where nothing
            // is added (else the data movement is replayed, `arrange`).
            "Pad" => match l0 {
                Some(L::Cf) => (r >= 2).then_some(L::Cf),
                Some(l) if s0 == Some(so) => Some(l),
                _ => None,
            },
            // Channels first by the op's definition, but a model's channels only when
            // its input is laid out so: GroupNorm is exported as a reshape to
            // [N, groups, C*H*W] and an InstanceNormalization of that, whose one
            // "channel" per group is no channel of the model (no one-channel stand-in).
            "InstanceNormalization" => (r >= 2 && l0 == Some(L::Cf)).then_some(L::Cf),
            "BatchNormalization" | "GroupNormalization" => Some(if r == 1 { L::Flat } else { L::Cf }),
            "Gemm" => Some(L::Flat),
            "MatMul" if dyn_in.len() == 1 => match (l0, r) {
                (Some(l @ (L::Cl | L::Tok(..) | L::Flat)), _) => Some(l),
                (None, 1) => Some(L::Flat),
                // Tokens whose arrangement was lost in between (attention heads merged
                // back): the one token layout of this length seen before, else unknown
                // (never all tokens averaged as if they were patches).
                (None, 2) => seqs.get(&so[0]).copied().flatten(),
                (None, 3) => Some(L::Cl),
                _ => None,
            },
            "LayerNormalization" | "Softmax" | "LogSoftmax" | "Dropout" | "Identity" | "Cast" => l0,
            // A quantized graph's QuantizeLinear -> DequantizeLinear pair keeps the
            // float tensor's layout (the integer tensor in between has no probe shape).
            "DequantizeLinear" => producers
                .get(n.input.first().map_or("", |s| s.as_str()))
                .filter(|q| q.op_type == "QuantizeLinear")
                .and_then(|q| q.input.first())
                .and_then(|x| lay.get(x.as_str()))
                .copied(),
            "Transpose" => {
                let perm = attr_ints(n, "perm").unwrap_or_default();
                match (l0, perm.as_slice()) {
                    (Some(L::Cf), [0, 2, 3, 1]) if r == 3 => Some(L::Cl),
                    (Some(L::Cl), [0, 3, 1, 2]) => Some(L::Cf),
                    (Some(L::Seq(g)), [0, 2, 1]) => Some(L::Tok(0, Some(g), 0)),
                    (Some(L::Tok(0, Some(g), _)), [0, 2, 1]) => Some(L::Seq(g)),
                    _ => None,
                }
            }
            "Reshape" if back.is_some() => back,
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => match (l0, s0.map(|s| s.as_slice())) {
                (Some(l), Some(si)) if si == so.as_slice() => Some(l),
                (Some(L::Cf), Some([c, h, w])) if so.as_slice() == [*c, h * w] => Some(L::Seq([*h, *w])),
                (Some(L::Cf), Some([c, h, w])) if h * w == 1 && so.as_slice() == [*c] => Some(L::Flat),
                (Some(L::Cl), Some([h, w, c])) if so.as_slice() == [h * w, *c] => Some(L::Tok(0, Some([*h, *w]), 0)),
                (Some(L::Cl), Some([h, w, c])) if h * w == 1 && so.as_slice() == [*c] => Some(L::Flat),
                (Some(L::Tok(0, Some([h, w]), _)), Some([_, d])) if so.as_slice() == [h, w, *d] => Some(L::Cl),
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
                    _ if axis == 1 && r == 2 => concat_tokens(g, &producers, &n.input, &lay, shapes, &mut kinds, so[0]),
                    _ => None,
                }
            }
            "Slice" => match (l0, s0) {
                // Part of the channels (a chunk) or of the grid: the same layout.
                (Some(L::Cf), Some(si)) if si.len() == r => Some(L::Cf),
                (Some(L::Cl), Some(si)) if si.len() == r => Some(L::Cl),
                (Some(L::Flat), Some(si)) if si == so.as_slice() => Some(L::Flat),
                (Some(L::Tok(p, grid, k)), Some(si)) if si.len() == 2 && si[1] == so[1] => {
                    slice_tokens(g, n, (p, grid, &kinds[k]), si[0], so[0]).map(|(p, grid, ks)| {
                        kinds.push(ks);
                        L::Tok(p, grid, kinds.len() - 1)
                    })
                }
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
        if res.is_none() && !tried && replay(&mut arranger, &mut lay, &mut arranged) {
            arranger.visit(n);
            continue;
        }
        arranger.visit(n);
        if let Some(l) = res {
            if let L::Tok(_, Some(_), _) = l {
                let e = seqs.entry(so[0]).or_insert(Some(l));
                if e.is_some_and(|x| x != l && !same_tokens(x, l, &kinds)) {
                    *e = None;
                }
            }
            lay.insert(out.clone(), l);
        }
    }
    let mut out = Propagated { arranged, ..Propagated::default() };
    for (k, l) in lay {
        let Some(s) = shape(&k) else { continue };
        let public = match l {
            L::Cf if s.len() >= 2 => Layout::ChannelsFirst,
            L::Cf if s.len() == 1 => Layout::Flat,
            L::Seq(_) => Layout::ChannelsFirst,
            L::Cl if s.len() == 3 => Layout::ChannelsLast,
            L::Tok(p, g @ Some(_), ks) if s.len() == 2 => {
                if p > 0 {
                    out.tokens.insert(k.clone(), token_names(&kinds[ks]));
                }
                Layout::Tokens { prefix: p, grid: g }
            }
            L::Flat if s.len() == 1 => Layout::Flat,
            _ => continue,
        };
        out.layouts.insert(k, public);
    }
    out
}

/// The layouts [`propagate`] found.
#[derive(Debug, Default)]
pub(crate) struct Propagated {
    /// The layout of every tensor where one is known.
    pub layouts: HashMap<String, Layout>,
    /// For a token tensor with extra tokens, their names (`cls`, `reg0`, `dist`,
    /// `tok<i>`), one per prefix token.
    pub tokens: HashMap<String, Vec<String>>,
    /// Tensors read through an [`Arrangement`] (windows, unfolded patches): full shape
    /// at the probe's batch known, no plain layout.
    pub arranged: HashMap<String, Arrangement>,
}

/// The layout of a Reshape back to the shape of the tensor `t` its data came from:
/// `Reshape(f(Reshape(t, ...)), Shape(t))` where `f` keeps the order of the elements
/// (InstanceNormalization over groups, pointwise ops), as in a decomposed GroupNorm.
/// Then the output is laid out as `t`.
fn reshaped_back(
    producers: &HashMap<&str, &NodeProto>,
    n: &NodeProto,
    lay: &HashMap<String, L>,
    shapes: &Shapes,
) -> Option<L> {
    let shape_of = producers.get(n.input.get(1)?.as_str()).filter(|p| p.op_type == "Shape")?;
    let t = shape_of.input.first()?.as_str();
    let l = *lay.get(t)?;
    if shapes.get(t)? != shapes.get(n.output.first()?.as_str())? {
        return None;
    }
    // Back from the data through element-order-keeping ops to a Reshape of `t`.
    let mut x = n.input.first()?.as_str();
    for _ in 0..8 {
        let p = producers.get(x)?;
        match p.op_type.as_str() {
            "Reshape" if p.input.first().map(|s| s.as_str()) == Some(t) => return Some(l),
            "InstanceNormalization" | "Reshape" | "Identity" | "Cast" | "Mul" | "Add" | "Sub" | "Div" => {
                x = p.input.first()?.as_str();
            }
            _ => return None,
        }
    }
    None
}

/// Two token layouts that differ only in their arena index but hold the same kinds.
fn same_tokens(a: L, b: L, kinds: &[Vec<&'static str>]) -> bool {
    match (a, b) {
        (L::Tok(p, g, i), L::Tok(q, h, j)) => p == q && g == h && kinds[i] == kinds[j],
        _ => false,
    }
}

/// The token layout of a Concat on the token axis of `[N, T, D]` tensors (`t` tokens
/// out): extra tokens (parameters broadcast over the batch, or extra tokens sliced
/// off a token tensor) in front of one token tensor's patch tokens, which must come
/// last and whole. Anything else (patches in the middle, two patch sets) is unknown.
fn concat_tokens(
    g: &GraphProto,
    producers: &HashMap<&str, &NodeProto>,
    inputs: &[String],
    lay: &HashMap<String, L>,
    shapes: &Shapes,
    kinds: &mut Vec<Vec<&'static str>>,
    t: usize,
) -> Option<L> {
    let mut ks: Vec<&'static str> = Vec::new();
    let mut grid = None;
    let mut any_tokens = false;
    // Token counts: from the probe's shapes; a parameter broadcast over the batch may
    // have none (not image-dependent), and one such input takes the tokens left over.
    // Otherwise the parameter's own dims say: `[1, k, D]` is k tokens, `[1, D]` or `[D]` one.
    let param_tokens = |x: &str| {
        let p = source_parameter(g, producers, x)?;
        let t = g.initializer.iter().find(|t| t.name == p)?;
        match t.dims.as_slice() {
            [1, k, _] => usize::try_from(*k).ok(),
            [1, _] | [_] => Some(1),
            _ => None,
        }
    };
    let known: Vec<Option<usize>> = inputs
        .iter()
        .map(|x| shapes.get(x).filter(|s| s.len() == 2).map(|s| s[0]).or_else(|| param_tokens(x)))
        .collect();
    if known.iter().filter(|k| k.is_none()).count() > 1 {
        return None;
    }
    let rest = t.checked_sub(known.iter().flatten().sum())?;
    for (x, n) in inputs.iter().zip(&known) {
        let n = n.unwrap_or(rest);
        if grid.is_some() {
            return None; // patch tokens must come last
        }
        match lay.get(x) {
            Some(&L::Tok(p, gr, k)) => {
                any_tokens = true;
                ks.extend_from_slice(kinds[k].get(..p)?);
                if p < n {
                    grid = Some(gr?);
                }
            }
            Some(_) => return None,
            None => {
                let kind = source_parameter(g, producers, x).map_or("tok", token_kind);
                ks.extend(std::iter::repeat_n(kind, n));
            }
        }
    }
    if !any_tokens {
        return None;
    }
    let p = ks.len();
    kinds.push(ks);
    match grid {
        Some([h, w]) if p + h * w == t => Some(L::Tok(p, Some([h, w]), kinds.len() - 1)),
        None if p == t => Some(L::Tok(p, None, kinds.len() - 1)),
        _ => None,
    }
}

/// A token sequence during propagation: extra tokens in front, the patch grid after
/// them (none when all tokens are extra), the extra tokens' kinds.
type TokenPart = (usize, Option<[usize; 2]>, Vec<&'static str>);

/// The token layout of a Slice of a token tensor along its token axis only (`t_in`
/// tokens in, `t_out` out, step 1): extra tokens alone, extra tokens with all the
/// patches after them, or all the patches alone. A part of the patch grid is unknown.
fn slice_tokens(
    g: &GraphProto,
    n: &NodeProto,
    (p, grid, ks): (usize, Option<[usize; 2]>, &[&'static str]),
    t_in: usize,
    t_out: usize,
) -> Option<TokenPart> {
    let at = |i: usize| n.input.get(i).filter(|s| !s.is_empty()).map(|x| const_ints(g, x));
    let (starts, ends) = (at(1)??, at(2)??);
    let axes = at(3).map_or(Some(vec![0; 0]), |a| a)?;
    let steps = at(4).map_or(Some(vec![1]), |a| a)?;
    // Only the token axis (1 of [N, T, D]) is sliced, with step 1.
    if starts.len() != 1 || ends.len() != 1 || !(axes == [1] || axes == [-2]) || steps.iter().any(|&x| x != 1) {
        return None;
    }
    let clamp = |v: i64| (if v < 0 { v + t_in as i64 } else { v }).clamp(0, t_in as i64) as usize;
    let (s, e) = (clamp(starts[0]), clamp(ends[0]));
    if e.saturating_sub(s) != t_out {
        return None;
    }
    let extras = ks.get(s.min(p)..e.min(p))?.to_vec();
    match grid {
        _ if e <= p => Some((extras.len(), None, extras)),
        Some(gr) if s <= p && e == t_in => Some((extras.len(), Some(gr), extras)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph;
    use super::*;

    /// Full shapes at a probe batch of 2 of per-frame `shapes`.
    fn batched(shapes: &Shapes) -> Shapes {
        shapes.iter().map(|(k, v)| (k.clone(), [&[2][..], v].concat())).collect()
    }

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
        assert_eq!(Layout::Clip { time: 2 }.canonical(&[16, 4, 8, 8]), Some([16, 8, 8]));
        assert_eq!(Layout::Clip { time: 4 }.canonical(&[16, 4, 8, 8]), None, "a time position beyond the clip");
    }

    #[test]
    fn extra_tokens_are_named_by_kind_and_numbered_when_repeated() {
        assert_eq!(token_names(&["cls", "reg", "reg"]), ["cls", "reg0", "reg1"]);
        assert_eq!(token_names(&["cls", "dist"]), ["cls", "dist"]);
        assert_eq!(token_names(&["tok", "tok"]), ["tok0", "tok1"]);
        assert_eq!(token_kind("embeddings.register_tokens"), "reg");
        assert_eq!(token_kind("embeddings.class_embedding"), "cls");
        assert_eq!(token_kind("distillation_token"), "dist");
        assert_eq!(token_kind("pos_embed"), "tok");
    }

    /// The embedding of transformers' DINOv2 with registers (dynamo export): patch
    /// tokens from a conv, a class token in front, position embeddings, then the
    /// registers inserted between the class token and the patches by two slices; an
    /// attention whose heads are merged back by reshapes; `d` channels, a 4x4 grid.
    /// `probed_params`: whether the broadcast parameters have probe shapes (they have
    /// none when the probe records image-dependent tensors only).
    fn dinov2_like(patches_last: bool, probed_params: bool) -> (GraphProto, Shapes) {
        let d = 8;
        let f = |n: &str, dims: &[usize]| graph::tensor_f32(n, dims, &vec![0.5; dims.iter().product()]);
        let mut g = GraphProto {
            initializer: vec![
                f("w", &[d, 3, 8, 8]),
                f("embeddings.cls_token", &[1, 1, d]),
                f("embeddings.register_tokens", &[1, 4, d]),
                f("pos", &[1, 17, d]),
                f("proj", &[d, d]),
                graph::tensor_i64("flat", &[0, d as i64, 16]),
                graph::tensor_i64("heads", &[0, 21, 2, d as i64 / 2]),
                graph::tensor_i64("merged", &[0, 21, d as i64]),
                graph::tensor_i64("expand", &[2, 1, d as i64]),
                graph::tensor_i64("zero", &[0]),
                graph::tensor_i64("one", &[1]),
                graph::tensor_i64("end", &[17]),
            ],
            ..Default::default()
        };
        let cat = if patches_last { vec!["e1", "t"] } else { vec!["t", "e1"] };
        g.node = vec![
            graph::node("Conv", "conv", &["image", "w"], &["c"], vec![graph::attr_ints("strides", &[8, 8])]),
            graph::node("Reshape", "view", &["c", "flat"], &["v"], vec![]),
            graph::node("Transpose", "transpose", &["v"], &["t"], vec![graph::attr_ints("perm", &[0, 2, 1])]),
            graph::node("Expand", "expand", &["embeddings.cls_token", "expand"], &["e1"], vec![]),
            graph::node("Concat", "cat", &cat, &["cat"], vec![graph::attr_int("axis", 1)]),
            graph::node("Add", "add", &["cat", "pos"], &["add"], vec![]),
            graph::node("Slice", "slice_1", &["add", "zero", "one", "one"], &["s1"], vec![]),
            graph::node("Expand", "expand_1", &["embeddings.register_tokens", "expand"], &["e2"], vec![]),
            graph::node("Slice", "slice_2", &["add", "one", "end", "one"], &["s2"], vec![]),
            graph::node("Concat", "cat_1", &["s1", "e2", "s2"], &["cat_1"], vec![graph::attr_int("axis", 1)]),
            graph::node("LayerNormalization", "norm1", &["cat_1"], &["ln"], vec![]),
            graph::node("Reshape", "heads", &["ln", "heads"], &["h"], vec![]),
            graph::node("Reshape", "merge", &["h", "merged"], &["m"], vec![]),
            graph::node("MatMul", "o_proj", &["m", "proj"], &["o"], vec![]),
        ];
        let mut shapes: Shapes = [
            ("image", vec![3, 32, 32]),
            ("c", vec![d, 4, 4]),
            ("v", vec![d, 16]),
            ("t", vec![16, d]),
            ("cat", vec![17, d]),
            ("add", vec![17, d]),
            ("s1", vec![1, d]),
            ("s2", vec![16, d]),
            ("cat_1", vec![21, d]),
            ("ln", vec![21, d]),
            ("h", vec![21, 2, d / 2]),
            ("m", vec![21, d]),
            ("o", vec![21, d]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if probed_params {
            shapes.insert("e1".into(), vec![1, d]);
            shapes.insert("e2".into(), vec![4, d]);
        }
        (g, shapes)
    }

    #[test]
    fn registers_inserted_after_the_class_token_are_left_out_of_the_patch_mean() {
        for probed in [true, false] {
            let (g, shapes) = dinov2_like(true, probed);
            let p = propagate(&g, "image", false, &shapes, &batched(&shapes), 2);
            let want = Layout::Tokens { prefix: 5, grid: Some([4, 4]) };
            for t in ["ln", "o"] {
                assert_eq!(p.layouts.get(t), Some(&want), "{t} (parameters probed: {probed})");
                assert_eq!(p.tokens[t], ["cls", "reg0", "reg1", "reg2", "reg3"], "{t}");
            }
            assert_eq!(p.layouts.get("add"), Some(&Layout::Tokens { prefix: 1, grid: Some([4, 4]) }));
            assert_eq!(p.tokens["add"], ["cls"]);
            assert_eq!(want.canonical(&shapes["o"]), Some([8, 4, 4]));
        }
    }

    #[test]
    fn tokens_whose_arrangement_is_unknown_are_no_tap_rather_than_averaged_whole() {
        // Patch tokens first, the class token after them: no rule places the patches,
        // so neither the sequence nor anything computed from it has a token layout
        // (before, a Linear on it averaged all 21 tokens as if they were patches).
        let (g, shapes) = dinov2_like(false, true);
        let p = propagate(&g, "image", false, &shapes, &batched(&shapes), 2);
        for t in ["cat", "add", "cat_1", "ln", "m", "o"] {
            assert_eq!(p.layouts.get(t), None, "{t}");
        }
        assert_eq!(p.layouts.get("t"), Some(&Layout::Tokens { prefix: 0, grid: Some([4, 4]) }));
    }
}
