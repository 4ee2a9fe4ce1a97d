//! From an ONNX graph to a [`Model`]: the image input (NCHW or NHWC), external weight
//! files, a fixed batch axis, the preprocessing the model records, and its taps with
//! names, kinds, layouts and shapes (one probe run of ONNX Runtime).

use std::collections::HashMap;
use std::path::{Component, Path};

use onnx_protobuf::{tensor_proto::DataLocation, tensor_shape_proto::dimension::Value as Dim, ModelProto};

use super::layout::{self, Layout};
use super::probe::{probe_tensors, ProbeInput};
use super::scan::{self, Skipped};
use super::time::{self, Time};
use super::{graph, Model, Preprocess, TapKind, TapPoint, MAX_INPUT_ELEMENTS, MAX_ONNX_BYTES};
use crate::error::{Error, Result};

/// The name of the NCHW input flickertag puts in front of an NHWC model.
const NCHW_INPUT: &str = "flickertag.input_nchw";

/// Reads the weights an exporter put in files beside the model (`torch.onnx.export`
/// writes `model.onnx.data` for large models) into the graph. Locations are resolved
/// next to the model file, never outside its folder (symbolic links followed), and each
/// range is checked against the file before it is read.
fn inline_external_data(proto: &mut ModelProto, model_path: &Path) -> Result<()> {
    let dir = model_path.parent().unwrap_or(Path::new("."));
    let bad = |reason: String| Error::Onnx { path: model_path.into(), reason };
    let g = proto.graph.as_mut().expect("checked by the caller");
    let mut total: u64 = 0;
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for t in g.initializer.iter_mut() {
        if t.data_location.enum_value_or_default() != DataLocation::EXTERNAL {
            continue;
        }
        let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
        let loc = get("location").ok_or_else(|| bad(format!("weight `{}` is external but names no file", t.name)))?;
        let rel = Path::new(&loc);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "weight `{}` names `{loc}`: external data must be a file beside the model",
                t.name
            )));
        }
        let num = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| v.parse::<u64>().map_err(|_| bad(format!("weight `{}`: {k} `{v}` is not a number", t.name))))
                .transpose()
        };
        let (offset, length) = (num("offset")?.unwrap_or(0), num("length")?);
        if !files.contains_key(&loc) {
            let p = dir.join(rel);
            if !p.is_file() {
                return Err(bad(format!(
                    "weight `{}` is stored in `{}`, which does not exist: keep the .data file the exporter \
                     wrote next to the .onnx file",
                    t.name,
                    p.display()
                )));
            }
            // Resolved with every symbolic link followed: a link beside the model that
            // points elsewhere (`w.data -> /etc/passwd`) is not beside the model.
            let inside = match (std::fs::canonicalize(&p), std::fs::canonicalize(dir)) {
                (Ok(file), Ok(folder)) => file.starts_with(&folder),
                _ => false,
            };
            if !inside {
                return Err(bad(format!(
                    "weight `{}` names `{loc}`, which resolves outside the model's folder (a symbolic link?): \
                     external data must be a file beside the model",
                    t.name
                )));
            }
            files.insert(loc.clone(), crate::io::data::read_regular_file(&p, MAX_ONNX_BYTES)?);
        }
        let bytes = &files[&loc];
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(bytes.len() as u64),
        }
        .filter(|&e| e <= bytes.len() as u64 && offset <= e)
        .ok_or_else(|| {
            bad(format!("weight `{}`: bytes {offset}.. lie outside `{loc}` ({} bytes)", t.name, bytes.len()))
        })?;
        total += end - offset;
        if total > MAX_ONNX_BYTES {
            return Err(bad(format!("external weights exceed {MAX_ONNX_BYTES} bytes")));
        }
        t.raw_data = bytes[offset as usize..end as usize].to_vec();
        t.external_data.clear();
        t.data_location = DataLocation::DEFAULT.into();
    }
    Ok(())
}

/// Reads `flickertag.mean` / `flickertag.std` metadata: `0.5,0.5,0.5` or `[0.5, 0.5, 0.5]`,
/// one value or three.
fn meta_triple(proto: &ModelProto, key: &'static str) -> Result<Option<[f32; 3]>> {
    let Some(v) = proto.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.trim().to_string()) else {
        return Ok(None);
    };
    let inner = v.trim_start_matches('[').trim_end_matches(']');
    let xs: Vec<f32> =
        inner.split(',').map(|x| x.trim().parse::<f32>()).collect::<std::result::Result<_, _>>().map_err(|_| {
            Error::Model(format!("metadata `{key}` is `{v}`: expected numbers such as 0.5,0.5,0.5 or [0.5, 0.5, 0.5]"))
        })?;
    Preprocess::triple(key, &xs).map(Some)
}

/// Where a float16 model's image input is cast to float16 (the graph input itself is
/// made float32, so frames go in as everywhere else).
const HALF_INPUT: &str = "flickertag.input_float16";

/// Gives a float16 model a float32 interface: its image input (`g.input[inp]`) becomes
/// float32 and is cast to float16 at the front of the graph, and a float16 first
/// output (the logits) is cast to float32 at the end. Nothing else changes: every
/// operation still runs in float16, as the model was exported.
fn lift_float16(g: &mut onnx_protobuf::GraphProto, inp: usize) {
    let input = g.input[inp].name.clone();
    for n in g.node.iter_mut() {
        for x in n.input.iter_mut().filter(|x| **x == input) {
            *x = HALF_INPUT.to_string();
        }
    }
    for o in g.output.iter_mut().filter(|o| o.name == input) {
        o.name = HALF_INPUT.to_string();
    }
    graph::set_elem_type(&mut g.input[inp], graph::FLOAT);
    let to = graph::attr_int("to", graph::FLOAT16 as i64);
    // (Nodes without a name: no module of the model, so never taps.)
    g.node.insert(0, graph::node("Cast", "", &[&input], &[HALF_INPUT], vec![to]));
    if graph::elem_type_of(&g.output[0]) == Some(graph::FLOAT16) {
        let out = g.output[0].name.clone();
        let lifted = format!("{out}.float32");
        let to = graph::attr_int("to", graph::FLOAT as i64);
        g.node.push(graph::node("Cast", "", &[&out], &[&lifted], vec![to]));
        g.output[0].name = lifted;
        graph::set_elem_type(&mut g.output[0], graph::FLOAT);
    }
}

/// Which of the graph inputs `inputs` (indices into `g.input`, initializers left
/// out) is the image: the only one; else the one no pair of `named` (the metadata
/// `flickertag.state`) feeds; else the only one shaped as an image or a clip (`[N, 1
/// or 3, ...]` of rank 4 or 5, or `[N, H, W, 1 or 3]`). The others are recurrent states.
fn image_input(
    g: &onnx_protobuf::GraphProto,
    inputs: &[usize],
    named: Option<&[(String, String)]>,
) -> std::result::Result<usize, String> {
    let names = || inputs.iter().map(|&i| g.input[i].name.as_str()).collect::<Vec<_>>();
    if inputs.is_empty() {
        return Err("no input (every graph input is a weight)".into());
    }
    if inputs.len() == 1 {
        return Ok(inputs[0]);
    }
    let candidates: Vec<usize> = match named {
        Some(pairs) => inputs.iter().copied().filter(|&i| !pairs.iter().any(|(s, _)| *s == g.input[i].name)).collect(),
        None => inputs
            .iter()
            .copied()
            .filter(|&i| {
                let d = graph::dims_of(&g.input[i]).unwrap_or_default();
                let ch = |x: &Option<i64>| matches!(x, Some(1) | Some(3));
                match d.as_slice() {
                    [_, c, _, _, _] => ch(c),
                    [_, c, _, l] => ch(c) || ch(l),
                    _ => false,
                }
            })
            .collect(),
    };
    match candidates.as_slice() {
        [i] => Ok(*i),
        _ => Err(format!(
            "inputs {:?}: expected one image input, and the others recurrent states; name the states and the outputs \
             that give their next values in the model's metadata `flickertag.state` = `input:output` (pairs separated \
             by commas), so that the input left is the image",
            names()
        )),
    }
}

impl Model {
    /// Wraps an ONNX graph: checks its image input, reads external weights, handles a
    /// fixed batch axis and an NHWC input, reads the recorded preprocessing, and finds
    /// the taps (one probe run).
    pub(crate) fn from_proto(mut proto: ModelProto, path: &Path, name: &str) -> Result<Model> {
        let bad = |reason: String| Error::Onnx { path: path.into(), reason };
        let g = proto.graph.as_ref().ok_or_else(|| bad("no graph (is this an ONNX file?)".into()))?;
        if g.node.is_empty() || g.output.is_empty() || proto.opset_import.is_empty() {
            return Err(bad("empty graph: no nodes, outputs or opset (is this an ONNX file?)".into()));
        }
        inline_external_data(&mut proto, path)?;
        let mut notes = Vec::new();
        let g = proto.graph.as_ref().expect("checked above");
        let inits: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        let inputs: Vec<usize> = (0..g.input.len()).filter(|&i| !inits.contains(&g.input[i].name)).collect();
        let named_states = time::metadata_pairs(&proto)?;
        let g = proto.graph.as_mut().expect("checked above");
        let inp = image_input(g, &inputs, named_states.as_deref()).map_err(bad)?;
        let input_name = g.input[inp].name.clone();
        // Every other input is a recurrent state: static per-frame shape, batch first.
        let mut states: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in inputs.iter().filter(|&&i| i != inp) {
            let v = &g.input[i];
            let dims = graph::dims_of(v).unwrap_or_default();
            let per: Option<Vec<usize>> =
                dims.iter().skip(1).map(|d| d.filter(|&x| x > 0).map(|x| x as usize)).collect();
            match per {
                Some(per) if !dims.is_empty() && per.iter().product::<usize>() as u64 <= MAX_INPUT_ELEMENTS => {
                    if graph::elem_type_of(v).is_some_and(|t| t != graph::FLOAT) {
                        return Err(bad(format!(
                            "state input `{}` is not float32: flickertag feeds float32 states",
                            v.name
                        )));
                    }
                    states.push((v.name.clone(), per))
                }
                _ => {
                    return Err(bad(format!(
                        "input `{}` {dims:?} (besides the image `{input_name}`) is read as a recurrent state and needs \
                         a static shape after the batch axis, at most {MAX_INPUT_ELEMENTS} values",
                        v.name
                    )))
                }
            }
        }
        if graph::elem_type_of(&g.input[inp]) == Some(graph::FLOAT16) {
            lift_float16(g, inp);
            notes.push(format!(
                "float16 model: frames are cast to float16 in the graph (input `{input_name}`), ONNX Runtime computes \
                 in float16, and every tap and the logits are read as float32: values carry float16's precision \
                 (about 3 significant digits of the tensor's scale)"
            ));
        }
        let dims = graph::dims_of(&g.input[inp]).unwrap_or_default();
        // A clip input [N, C, T, H, W]: the rest of flickertag sees its frames [C, H, W].
        let (dims, clip) = match dims.as_slice() {
            [n, Some(c), Some(t), Some(h), Some(w)] if (*c == 1 || *c == 3) && *t > 0 && *h > 0 && *w > 0 => {
                if *t as usize > time::MAX_CLIP {
                    return Err(bad(format!(
                        "clip input `{input_name}` holds {t} frames: at most {} per clip",
                        time::MAX_CLIP
                    )));
                }
                (vec![*n, Some(*c), Some(*h), Some(*w)], Some(*t as usize))
            }
            [_, _, _, _, _] => {
                return Err(bad(format!(
                    "input `{input_name}` is read as a clip and must be [N, C, T, H, W] with C 1 or 3 and static T, \
                     H, W; got {dims:?}"
                )))
            }
            _ => (dims, None),
        };
        if clip.is_some() && !states.is_empty() {
            return Err(bad("a clip model with state inputs: flickertag runs clips or states, not both".into()));
        }
        let dims4 = match dims.as_slice() {
            [b, Some(x), Some(y), Some(z)] if *x > 0 && *y > 0 && *z > 0 => {
                (*b, [*x as usize, *y as usize, *z as usize])
            }
            _ => {
                return Err(bad(format!(
                    "input `{input_name}` must be an image batch [N, C, H, W] or [N, H, W, C] with static C, H, W; \
                     got {dims:?}"
                )))
            }
        };
        let (batch, [a, b, c]) = dims4;
        let chan = |x: usize| x == 1 || x == 3;
        let nhwc = match (chan(a), chan(c)) {
            (true, false) => false,
            (false, true) => true,
            (true, true) if a == c => false,
            _ => {
                return Err(bad(format!(
                    "input `{input_name}` is [N, {a}, {b}, {c}]: flickertag feeds 1- or 3-channel images, as \
                     [N, C, H, W] (C first) or [N, H, W, C] (C last)"
                )))
            }
        };
        let input_shape = if nhwc { [c, a, b] } else { [a, b, c] };
        if input_shape.iter().map(|&v| v as u64).product::<u64>() > MAX_INPUT_ELEMENTS {
            return Err(bad(format!(
                "input `{input_name}` is [N, {a}, {b}, {c}]: C x H x W must be 1..={MAX_INPUT_ELEMENTS} values per frame"
            )));
        }
        // Every output's batch axis, and the input's, made symbolic.
        let fixed = batch.map(|b| b as usize);
        let symbolic = |p: &mut ModelProto| {
            let g = p.graph.as_mut().expect("checked");
            for v in g.input.iter_mut().chain(g.output.iter_mut()).chain(g.value_info.iter_mut()) {
                if let Some(onnx_protobuf::type_proto::Value::TensorType(t)) =
                    v.type_.as_mut().and_then(|t| t.value.as_mut())
                {
                    if let Some(d) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                        d.value = Some(Dim::DimParam("N".into()));
                    }
                }
            }
        };
        // What `symbolic` changes, kept to undo it (not a clone of the whole model: its
        // weights can be hundreds of MB).
        let original_io = fixed.map(|_| {
            let g = proto.graph.as_ref().expect("checked");
            (g.input.clone(), g.output.clone(), g.value_info.clone())
        });
        if fixed.is_some() {
            symbolic(&mut proto);
        }
        let run_input = if nhwc {
            let g = proto.graph.as_mut().expect("checked");
            let mut v = g.input[inp].clone();
            v.name = NCHW_INPUT.into();
            let dims = [None, Some(c as i64), Some(a as i64), Some(b as i64)];
            v.type_ = graph::value_info("", Some(&dims)).type_;
            g.input[inp] = v;
            g.node.insert(
                0,
                graph::node(
                    "Transpose",
                    NCHW_INPUT,
                    &[NCHW_INPUT],
                    &[&input_name],
                    vec![graph::attr_ints("perm", &[0, 2, 3, 1])],
                ),
            );
            notes.push(format!(
                "input `{input_name}` is channels-last [N, {a}, {b}, {c}]: frames are transposed to it in the graph"
            ));
            NCHW_INPUT.to_string()
        } else {
            input_name.clone()
        };
        let seeds: Vec<&str> =
            std::iter::once(run_input.as_str()).chain(states.iter().map(|(s, _)| s.as_str())).collect();
        let dynamic = scan::dynamic_outputs(proto.graph.as_ref().expect("checked"), &seeds);
        let feed = ProbeInput { input: &run_input, chw: input_shape, clip, states: &states };
        // Probe at batch 2 when the batch axis is free (it also tells which tensors are
        // batch-first); at the model's own batch when a reshape fixed it.
        let (probed, n, fixed_batch) = match probe_tensors(&proto, feed, &dynamic, 2) {
            Ok(p) => (p, 2, None),
            Err(e) => {
                let Some(b) = fixed else { return Err(e) };
                if b > 64 {
                    return Err(bad(format!("the graph runs only at its fixed batch of {b} frames (over 64): re-export it with a dynamic batch axis")));
                }
                if let Some((input, output, value_info)) = original_io {
                    let g = proto.graph.as_mut().expect("checked");
                    (g.input, g.output, g.value_info) = (input, output, value_info);
                }
                if nhwc {
                    return Err(bad(
                        "a channels-last model with a fixed batch: export it with a dynamic batch axis".into()
                    ));
                }
                notes.push(format!(
                    "the graph's batch axis is fixed at {b} and cannot be freed (a reshape holds it): runs use \
                     batches of {b} frames; export with dynamic_axes (or dynamic_shapes) for speed"
                ));
                (probe_tensors(&proto, feed, &dynamic, b)?, b, Some(b))
            }
        };
        if fixed.is_some() && fixed_batch.is_none() {
            notes.push(format!("the graph's batch axis was fixed at {}; flickertag made it free", fixed.unwrap_or(1)));
        }
        let g = proto.graph.as_ref().expect("checked");
        // The first output is read as the logits (float32) by every run: an index or
        // label output (ArgMax's int64) failed inside ONNX Runtime without naming either.
        if let Some(p) = probed.get(&g.output[0].name).filter(|p| !p.float) {
            return Err(bad(format!(
                "its first output `{}` is not float32 (shape {:?}; an index or label such as ArgMax's?): flickertag \
                 reads the first output as the logits; export the model without its post-processing",
                g.output[0].name, p.shape
            )));
        }
        // Float16 activations are taps like float32 ones (read through a Cast).
        let types: HashMap<String, i32> =
            probed.iter().map(|(k, p)| (k.clone(), if p.float || p.half { graph::FLOAT } else { 0 })).collect();
        let half: std::collections::HashSet<String> =
            probed.iter().filter(|(_, p)| p.half).map(|(k, _)| k.clone()).collect();
        let sc = scan::scan(g, &seeds, &types);
        let shapes: layout::Shapes = probed
            .iter()
            .filter(|(_, p)| (p.float || p.half) && p.shape.first() == Some(&n))
            .map(|(k, p)| (k.clone(), p.shape[1..].to_vec()))
            .collect();
        // Every image-dependent float tensor, batch-first or not (windows merged with the
        // batch axis are as large).
        let frame_bytes: u64 = probed
            .values()
            .filter(|p| p.float || p.half)
            .map(|p| 4 * (p.shape.iter().product::<usize>() / n) as u64)
            .sum();
        let mut shapes = shapes;
        let [ic, ih, iw] = input_shape;
        shapes.insert(run_input.clone(), if let Some(t) = clip { vec![ic, t, ih, iw] } else { input_shape.to_vec() });
        if nhwc {
            shapes.insert(input_name.clone(), vec![a, b, c]);
        }
        for (s, dims) in &states {
            shapes.insert(s.clone(), dims.clone());
        }
        let mut full: layout::Shapes =
            probed.iter().filter(|(_, p)| p.float || p.half).map(|(k, p)| (k.clone(), p.shape.clone())).collect();
        for (k, s) in &shapes {
            full.entry(k.clone()).or_insert_with(|| [&[n][..], s].concat());
        }
        let layout::Propagated { mut layouts, tokens: token_names, arranged } =
            layout::propagate(g, &run_input, false, &shapes, &full, n);
        // Arranged tensors (windows, unfolded patches): per frame, the first axis holds
        // the frame's share of the batch axis.
        let mut tables: HashMap<String, Vec<i64>> = HashMap::new();
        for (k, a) in arranged {
            let Some(f) = full.get(&k).filter(|f| f.first().is_some_and(|d| d % n == 0)) else { continue };
            shapes.insert(k.clone(), [&[f[0] / n][..], &f[1..]].concat());
            layouts.insert(k.clone(), Layout::Arranged { channel_axis: a.channel_axis, grid: a.grid });
            tables.insert(k, a.table);
        }
        let time = match clip {
            Some(length) => {
                // A clip model's channels-first [C, T', H', W'] tensors are read at
                // their centre time position.
                for (k, l) in layouts.iter_mut() {
                    if let (Layout::ChannelsFirst, Some([_, t, _, _])) = (*l, shapes.get(k).map(Vec::as_slice)) {
                        *l = Layout::Clip { time: t / 2 };
                    }
                }
                Some(Time::Clip { length })
            }
            None if !states.is_empty() => {
                let outputs: Vec<(String, Option<Vec<usize>>)> = g
                    .output
                    .iter()
                    .map(|o| {
                        (
                            o.name.clone(),
                            probed.get(&o.name).filter(|p| p.shape.first() == Some(&n)).map(|p| p.shape[1..].to_vec()),
                        )
                    })
                    .collect();
                let links = time::pair_states(&states, &outputs, named_states.as_deref()).map_err(|e| match e {
                    Error::Model(m) => bad(m),
                    e => e,
                })?;
                Some(Time::Recurrent { states: links })
            }
            None => None,
        };
        if matches!(time, Some(Time::Recurrent { .. })) && fixed_batch.is_some_and(|b| b > 1) {
            return Err(bad(format!(
                "a recurrent model whose batch axis is fixed at {} frames: it runs one frame at a time; export it \
                 with a dynamic batch axis",
                fixed_batch.unwrap_or(0)
            )));
        }
        if let Some(t) = &time {
            notes.push(t.describe());
        }
        let mut skipped: Vec<Skipped> = sc.skipped;
        let mut taps: Vec<TapPoint> = Vec::new();
        let mut convs = 0;
        for cand in &sc.candidates {
            // The channels-last input that flickertag's own transpose feeds is no module's output.
            if nhwc && cand.tensor == input_name {
                continue;
            }
            let Some(dims) = shapes.get(&cand.tensor) else {
                let reason = match full.get(&cand.tensor) {
                    Some(f) => format!(
                        "its first axis ({} at a batch of {n} frames) holds more than the frames (windows, patches, \
                         heads), and the graph's data movement gives it no single channel axis on the image grid \
                         (attention scores and heads are no taps)",
                        f.first().copied().unwrap_or(0)
                    ),
                    None => "no batch axis first".into(),
                };
                skipped.push(Skipped { name: cand.name.clone(), reason });
                continue;
            };
            let Some(&lay) = layouts.get(&cand.tensor) else {
                let reason = match dims.as_slice() {
                    // [T, D] tokens: never averaged over all tokens as if all were patches.
                    [t, d] if t > &1 => format!(
                        "token arrangement of a [{t}, {d}] tensor not determined from the graph (which tokens are \
                         class/register tokens and which are patches, on what grid)"
                    ),
                    _ => format!("channel axis of a {:?} tensor not determined from the graph", dims),
                };
                skipped.push(Skipped { name: cand.name.clone(), reason });
                continue;
            };
            let Some(chw) = lay.canonical(dims) else {
                skipped.push(Skipped {
                    name: cand.name.clone(),
                    reason: format!("layout {} does not fit {dims:?}", lay.describe()),
                });
                continue;
            };
            let conv_ordinal = (cand.kind == TapKind::Conv).then(|| {
                convs += 1;
                convs
            });
            let tap = TapPoint {
                name: cand.name.clone(),
                tensor: cand.tensor.clone(),
                kind: cand.kind,
                conv_ordinal,
                layout: lay,
                dims: dims.clone(),
                chw,
                aliases: cand.aliases.clone(),
                folded: cand.folded.clone(),
            };
            if let Layout::Tokens { prefix, .. } = lay {
                let t = tap.clone();
                taps.push(tap);
                let names = token_names.get(&t.tensor);
                for i in 0..prefix {
                    let suffix = names.and_then(|v| v.get(i)).cloned().unwrap_or_else(|| format!("tok{i}"));
                    taps.push(TapPoint {
                        name: format!("{}:{suffix}", t.name),
                        layout: Layout::Token { index: i },
                        chw: [t.chw[0], 1, 1],
                        conv_ordinal: None,
                        aliases: vec![],
                        folded: None,
                        ..t.clone()
                    });
                }
            } else {
                taps.push(tap);
            }
        }
        let folded: Vec<&str> = taps.iter().filter(|t| t.folded.is_some()).map(|t| t.name.as_str()).collect();
        if !folded.is_empty() {
            notes.push(format!(
                "{} conv taps hold the output of a BatchNorm folded into the conv at export, not the conv's own output \
                 (in no tensor of this graph): {}; `flickertag taps` lists the pairs; export without folding to \
                 measure the convs themselves",
                folded.len(),
                folded.iter().take(4).copied().collect::<Vec<_>>().join(", ") + if folded.len() > 4 { ", ..." } else { "" }
            ));
        }
        let tensors = layouts.into_iter().filter_map(|(k, l)| shapes.get(&k).map(|s| (k, (l, s.clone())))).collect();
        let meta = |k: &str| proto.metadata_props.iter().any(|p| p.key == k);
        let preprocess_known = meta("flickertag.mean") && meta("flickertag.std");
        let mut preprocess = match (meta_triple(&proto, "flickertag.mean")?, meta_triple(&proto, "flickertag.std")?) {
            (Some(mean), Some(std)) => Preprocess { mean, std, ..Preprocess::default() },
            _ => Preprocess::default(),
        };
        preprocess.grayscale = input_shape[0] == 1;
        let output_name = g.output[0].name.clone();
        Ok(Model {
            name: name.to_string(),
            source: path.to_path_buf(),
            sha256: super::serialize::content_sha256(&proto),
            input_name: run_input,
            input_shape,
            output_name,
            preprocess,
            preprocess_known,
            fixed_batch,
            taps,
            skipped,
            notes,
            frame_bytes,
            tensors,
            half,
            arranged: tables,
            proto,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_meta(kv: &[(&str, &str)]) -> ModelProto {
        ModelProto { metadata_props: kv.iter().map(|(k, v)| graph::meta(k, v)).collect(), ..Default::default() }
    }

    #[test]
    fn preprocessing_metadata_reads_comma_and_json_lists() {
        let p = with_meta(&[("flickertag.mean", "0.5,0.25,0"), ("flickertag.std", "[0.5, 0.5, 0.5]")]);
        assert_eq!(meta_triple(&p, "flickertag.mean").unwrap(), Some([0.5, 0.25, 0.0]));
        assert_eq!(meta_triple(&p, "flickertag.std").unwrap(), Some([0.5; 3]));
        let one = with_meta(&[("flickertag.mean", "[0.1307]")]);
        assert_eq!(meta_triple(&one, "flickertag.mean").unwrap(), Some([0.1307; 3]));
        assert_eq!(meta_triple(&one, "flickertag.std").unwrap(), None);
        let bad = with_meta(&[("flickertag.mean", "0.5;0.5;0.5")]);
        assert!(meta_triple(&bad, "flickertag.mean").unwrap_err().to_string().contains("flickertag.mean"));
        let pixels = with_meta(&[("flickertag.mean", "123.7,116.3,103.5")]);
        assert!(meta_triple(&pixels, "flickertag.mean").unwrap_err().to_string().contains("[0, 1] pixel units"));
    }
}
