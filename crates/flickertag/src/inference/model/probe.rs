//! One run of a graph with every image-dependent tensor exposed, to learn what ONNX
//! Runtime computes for each: element type and shape. Tap discovery needs both (only
//! float tensors are taps; layouts are read with shapes), and no static shape
//! inference covers every exporter's ops.

use std::collections::HashMap;

use onnx_protobuf::{ModelProto, ValueInfoProto};
use ort::value::TensorRef;

use super::graph;
use crate::error::{runtime, Result};

/// One probed tensor: whether it holds float32 (or float16) values, and its full shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probed {
    /// Float32 values.
    pub float: bool,
    /// Float16 values (a half-precision model's activations: read as float32).
    pub half: bool,
    /// Shape as run, batch axis first when the tensor has one.
    pub shape: Vec<usize>,
}

/// Most tensors probed by one run of [`probe_tensors`]. A graph with more is probed in
/// several runs, so that the outputs held at once (direct) and the nodes added (compact)
/// stay bounded: a 1.4 MB chain of 40,000 ReLUs
/// exposed all 40,000 (1 GB of outputs at batch 2) and `taps` peaked at 1.26 GB. Every
/// network of the zoo and the CIFAR ResNets has far fewer, so they are probed in one run.
pub(crate) const PROBE_CHUNK: usize = 2048;

/// What a probe run feeds: blank frames `[n, C, H, W]` (`[n, C, T, H, W]` for a clip
/// model) to the image input, zeros `[n, ...]` to each state input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeInput<'a> {
    /// The image input.
    pub input: &'a str,
    /// `[C, H, W]` of a frame.
    pub chw: [usize; 3],
    /// `T` of a clip model.
    pub clip: Option<usize>,
    /// A recurrent model's state inputs, with their per-frame shapes.
    pub states: &'a [(String, Vec<usize>)],
}

/// Runs `n` blank frames (and zero states) per `input` through `proto` (unoptimized,
/// one thread) and returns the element type and shape of each of `names`.
///
/// Compact first: each tensor `t` is reported by two small outputs, `Shape(t)` and its
/// first element (`Slice(Reshape(t, [-1]), 0, 1)`, of `t`'s own element type), so that
/// ONNX Runtime frees `t` as in a plain run. Exposing the tensors themselves held them
/// all at once: 902 MB of outputs for torchvision's Swin-T at 224 (3,632 tensors at
/// batch 2), and `taps` peaked at 1.2 GB on a 110 MB model. Where the compact graph
/// does not build or run (a sequence-typed tensor has no `Shape`; opsets before 10 have
/// no `Slice` with inputs), the tensors are exposed directly. Either way at most
/// [`PROBE_CHUNK`] tensors per run.
pub(crate) fn probe_tensors(
    proto: &ModelProto,
    input: ProbeInput<'_>,
    names: &[String],
    n: usize,
) -> Result<HashMap<String, Probed>> {
    // At most PROBE_CHUNK tensors per compact run too: one run with the probes of all
    // 40,000 tensors of a chain of ReLUs (120,000 nodes added) did not finish in 10
    // minutes, where runs of 2,048 take 31 s in all.
    in_runs(names, |run| probe_compact(proto, input, run, n)).or_else(|_| probe_chunked(proto, input, names, n))
}

/// The direct probe of [`probe_tensors`]: the tensors themselves exposed, at most
/// [`PROBE_CHUNK`] per run.
fn probe_chunked(
    proto: &ModelProto,
    input: ProbeInput<'_>,
    names: &[String],
    n: usize,
) -> Result<HashMap<String, Probed>> {
    in_runs(names, |run| probe_direct(proto, input, run, n))
}

/// `probe` over `names` in runs of at most [`PROBE_CHUNK`], the results merged; the
/// first error ends it. At least one run, which also tells whether the graph runs at all.
fn in_runs(
    names: &[String],
    probe: impl Fn(&[String]) -> Result<HashMap<String, Probed>>,
) -> Result<HashMap<String, Probed>> {
    if names.is_empty() {
        return probe(names);
    }
    let mut m = HashMap::new();
    for run in names.chunks(PROBE_CHUNK) {
        m.extend(probe(run)?);
    }
    Ok(m)
}

/// The names a compact probe gives the shape and first element of the `i`-th tensor.
fn compact_names(i: usize) -> (String, String) {
    (format!("flickertag.probe.{i}.shape"), format!("flickertag.probe.{i}.first"))
}

/// The compact probe of [`probe_tensors`]: one run, two small outputs per tensor.
fn probe_compact(
    proto: &ModelProto,
    input: ProbeInput<'_>,
    names: &[String],
    n: usize,
) -> Result<HashMap<String, Probed>> {
    if graph::default_opset(proto) < 10 {
        return Err(crate::error::Error::Runtime("opset before 10: Slice takes attributes".into()));
    }
    let first = proto.graph.as_ref().expect("checked at load").output[0].name.clone();
    let onnx = super::serialize::Onnx::edited(proto, |p| {
        let g = p.graph.as_mut().expect("checked at load");
        g.output.truncate(1);
        let (flat, zero, one) = ("flickertag.probe.flat", "flickertag.probe.zero", "flickertag.probe.one");
        g.initializer.push(graph::tensor_i64(flat, &[-1]));
        g.initializer.push(graph::tensor_i64(zero, &[0]));
        g.initializer.push(graph::tensor_i64(one, &[1]));
        // Each tensor's probe nodes are appended in reverse graph order. ONNX Runtime's
        // default execution order is a depth-first walk up from the graph's leaves, the
        // last leaf first: so the first tensor's probe runs right after it is made, and
        // each tensor can be freed at once. Appended in graph order (or placed right after
        // their producers), the probes ran after the whole network, holding every tensor
        // to the end (Swin-T at batch 2: 1.2 GB instead of 0.6 GB; measured).
        let at: HashMap<&str, usize> = names.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        let mut probes = Vec::with_capacity(names.len());
        for node in &g.node {
            for i in node.output.iter().filter_map(|o| at.get(o.as_str()).copied()) {
                let t = names[i].as_str();
                let (shape, elem) = compact_names(i);
                let flat_t = format!("flickertag.probe.{i}.flat");
                probes.push([
                    graph::node("Shape", &shape, &[t], &[&shape], vec![]),
                    graph::node("Reshape", &flat_t, &[t, flat], &[&flat_t], vec![]),
                    graph::node("Slice", &elem, &[&flat_t, zero, one], &[&elem], vec![]),
                ]);
                g.output.push(ValueInfoProto { name: shape, ..Default::default() });
                g.output.push(ValueInfoProto { name: elem, ..Default::default() });
            }
        }
        g.node.extend(probes.into_iter().rev().flatten());
    })?;
    let outs_names: Vec<(String, String)> = (0..names.len()).map(compact_names).collect();
    let mut session = probe_session(onnx)?;
    let mut m = HashMap::new();
    run_blank(&mut session, input, n, |outs| {
        for (name, (shape, elem)) in names.iter().zip(&outs_names) {
            let probed = if *name == first {
                outs.get(name.as_str()).and_then(probed_of)
            } else {
                let (Some(s), Some(e)) = (outs.get(shape.as_str()), outs.get(elem.as_str())) else { continue };
                let (_, dims) = s.try_extract_tensor::<i64>().map_err(runtime)?;
                probed_of(e).map(|p| Probed { shape: dims.iter().map(|&d| d.max(0) as usize).collect(), ..p })
            };
            if let Some(p) = probed {
                m.insert(name.clone(), p);
            }
        }
        Ok(())
    })?;
    Ok(m)
}

/// One run of [`probe_tensors`] with the tensors themselves exposed.
fn probe_direct(
    proto: &ModelProto,
    input: ProbeInput<'_>,
    names: &[String],
    n: usize,
) -> Result<HashMap<String, Probed>> {
    let onnx = super::serialize::Onnx::edited(proto, |p| {
        let g = p.graph.as_mut().expect("checked at load");
        g.output.truncate(1);
        let first = g.output[0].name.clone();
        for name in names.iter().filter(|x| **x != first) {
            g.output.push(ValueInfoProto { name: name.clone(), ..Default::default() });
        }
    })?;
    let mut session = probe_session(onnx)?;
    let mut m = HashMap::new();
    run_blank(&mut session, input, n, |outs| {
        for name in names {
            if let Some(p) = outs.get(name.as_str()).and_then(probed_of) {
                m.insert(name.clone(), p);
            }
        }
        Ok(())
    })?;
    Ok(m)
}

/// Element type and shape of a run's output, when it is a tensor.
fn probed_of(v: &ort::value::DynValue) -> Option<Probed> {
    let ort::value::ValueType::Tensor { ty, shape, .. } = v.dtype() else { return None };
    use ort::value::TensorElementType as T;
    Some(Probed {
        float: *ty == T::Float32,
        half: *ty == T::Float16,
        shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
    })
}

/// A one-thread session of an edited graph, unoptimized.
fn probe_session(onnx: super::serialize::Onnx) -> Result<ort::session::Session> {
    // Weights are not prepacked for kernels: one run does not repay it, and a
    // prepacked copy beside the weights is hundreds of MB on a large model.
    // No arena and no memory pattern: a tensor freed is given back, not kept in a block
    // sized for the whole run (the arena held 554 MB of Swin-T's at batch 2).
    let e = |e: ort::Error<ort::session::builder::SessionBuilder>| crate::error::Error::Runtime(e.to_string());
    let builder = crate::inference::runtime::session_builder(1, false)?
        .with_config_entry("session.disable_prepacking", "1")
        .map_err(e)?
        .with_memory_pattern(false)
        .map_err(e)?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
        .map_err(e)?;
    onnx.commit(builder)
    // `onnx` is dropped here: ONNX Runtime keeps its own copy of the weights
}

/// Runs blank frames `[n, C, H, W]` (and zero states) through `session` and hands its
/// outputs to `read`.
fn run_blank(
    session: &mut ort::session::Session,
    input: ProbeInput<'_>,
    n: usize,
    read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<()>,
) -> Result<()> {
    let [c, h, w] = input.chw;
    let shape = match input.clip {
        Some(t) => vec![n, c, t, h, w],
        None => vec![n, c, h, w],
    };
    let mut feeds = vec![(input.input.to_string(), shape)];
    feeds.extend(input.states.iter().map(|(s, dims)| (s.clone(), [&[n][..], dims].concat())));
    let zeros: Vec<Vec<f32>> = feeds.iter().map(|(_, s)| vec![0.0f32; s.iter().product()]).collect();
    let mut values: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = Vec::new();
    for ((name, shape), z) in feeds.iter().zip(&zeros) {
        values.push((
            name.as_str().into(),
            TensorRef::from_array_view((shape.clone(), z.as_slice())).map_err(runtime)?.into(),
        ));
    }
    let outs = session.run(values).map_err(runtime)?;
    read(&outs)
}

#[cfg(test)]
mod tests {
    use onnx_protobuf::{GraphProto, OperatorSetIdProto};

    use super::*;
    use crate::inference::model::graph;

    fn model(nodes: Vec<onnx_protobuf::NodeProto>, output: &str, opset: i64) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset, ..Default::default() }],
            graph: protobuf::MessageField::some(GraphProto {
                node: nodes,
                input: vec![graph::value_info("image", Some(&[None, Some(2), Some(3), Some(4)]))],
                output: vec![graph::value_info(output, None)],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Tensors of every kind the probe must tell apart: float32, float16, int64, a
    /// scalar, an empty tensor; the expected types and shapes follow from the ops.
    fn mixed() -> (ModelProto, Vec<String>, Vec<(&'static str, Probed)>) {
        let nodes = vec![
            graph::node("Relu", "relu", &["image"], &["relu"], vec![]),
            graph::node("Cast", "half", &["relu"], &["half"], vec![graph::attr_int("to", graph::FLOAT16 as i64)]),
            graph::node("Shape", "shape", &["relu"], &["shape"], vec![]),
            graph::node(
                "ReduceMean",
                "scalar",
                &["relu"],
                &["scalar"],
                vec![graph::attr_ints("axes", &[0, 1, 2, 3]), graph::attr_int("keepdims", 0)],
            ),
            graph::node("Slice", "empty", &["relu", "zero", "zero", "one"], &["empty"], vec![]),
            graph::node("Sigmoid", "out", &["relu"], &["out"], vec![]),
        ];
        let mut proto = model(nodes, "out", 13);
        let g = proto.graph.as_mut().unwrap();
        g.initializer.push(graph::tensor_i64("zero", &[0]));
        g.initializer.push(graph::tensor_i64("one", &[1]));
        let f = |half: bool, shape: &[usize]| Probed { float: !half, half, shape: shape.to_vec() };
        let expected = vec![
            ("relu", f(false, &[2, 2, 3, 4])),
            ("half", f(true, &[2, 2, 3, 4])),
            ("shape", Probed { float: false, half: false, shape: vec![4] }),
            ("scalar", f(false, &[])),
            ("empty", f(false, &[2, 0, 3, 4])),
            ("out", f(false, &[2, 2, 3, 4])),
        ];
        let names = expected.iter().map(|(n, _)| n.to_string()).collect();
        (proto, names, expected)
    }

    #[test]
    fn compact_probe_reports_each_element_type_and_shape_as_ort_computes_them() {
        let (proto, names, expected) = mixed();
        let input = ProbeInput { input: "image", chw: [2, 3, 4], clip: None, states: &[] };
        let compact = probe_compact(&proto, input, &names, 2).unwrap();
        let direct = probe_chunked(&proto, input, &names, 2).unwrap();
        for (name, want) in &expected {
            assert_eq!(compact.get(*name), Some(want), "{name} (compact)");
            assert_eq!(direct.get(*name), Some(want), "{name} (direct)");
        }
        assert_eq!(compact.len(), expected.len());
    }

    #[test]
    fn a_sequence_typed_tensor_falls_back_to_the_direct_probe() {
        // `Shape` takes no sequence: the compact graph does not build, the direct one
        // does, and reports every tensor (the sequence is no tensor: left out).
        let nodes = vec![
            graph::node("Relu", "relu", &["image"], &["relu"], vec![]),
            graph::node("SplitToSequence", "seq", &["relu"], &["seq"], vec![graph::attr_int("axis", 1)]),
            graph::node("SequenceAt", "at", &["seq", "index"], &["at"], vec![]),
            graph::node("Sigmoid", "out", &["at"], &["out"], vec![]),
        ];
        let mut proto = model(nodes, "out", 13);
        let mut index = graph::tensor_i64("index", &[0]);
        index.dims.clear(); // a scalar
        proto.graph.as_mut().unwrap().initializer.push(index);
        let names: Vec<String> = ["relu", "seq", "at", "out"].iter().map(|s| s.to_string()).collect();
        let input = ProbeInput { input: "image", chw: [2, 3, 4], clip: None, states: &[] };
        assert!(probe_compact(&proto, input, &names, 2).is_err());
        let p = probe_tensors(&proto, input, &names, 2).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p["relu"].shape, [2, 2, 3, 4]);
        assert_eq!(p["at"].shape, [2, 1, 3, 4]);
        assert!(!p.contains_key("seq"));
    }

    #[test]
    fn a_graph_before_opset_10_is_probed_directly() {
        let (mut proto, names, expected) = mixed();
        // Opset 9's Slice takes attributes: the same empty slice written that way.
        let g = proto.graph.as_mut().unwrap();
        let slice = g.node.iter_mut().find(|n| n.op_type == "Slice").unwrap();
        slice.input.truncate(1);
        slice.attribute =
            vec![graph::attr_ints("starts", &[0]), graph::attr_ints("ends", &[0]), graph::attr_ints("axes", &[1])];
        proto.opset_import[0].version = 9;
        let input = ProbeInput { input: "image", chw: [2, 3, 4], clip: None, states: &[] };
        assert!(probe_compact(&proto, input, &names, 2).is_err());
        let p = probe_tensors(&proto, input, &names, 2).unwrap();
        for (name, want) in &expected {
            assert_eq!(p.get(*name), Some(want), "{name}");
        }
    }

    #[test]
    fn a_graph_of_more_tensors_than_one_direct_probe_run_takes_is_probed_whole() {
        // A chain of ReLUs on [N, 2, 3, 4]: every tensor in some run, none lost between.
        let n = PROBE_CHUNK + 500;
        let name = |i: usize| if i == 0 { "image".to_string() } else { format!("t{i}") };
        let nodes =
            (1..=n).map(|i| graph::node("Relu", &format!("relu{i}"), &[&name(i - 1)], &[&name(i)], vec![])).collect();
        let proto = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13, ..Default::default() }],
            graph: protobuf::MessageField::some(GraphProto {
                node: nodes,
                input: vec![graph::value_info("image", Some(&[None, Some(2), Some(3), Some(4)]))],
                output: vec![graph::value_info(&name(n), None)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<String> = (1..=n).map(name).collect();
        let input = ProbeInput { input: "image", chw: [2, 3, 4], clip: None, states: &[] };
        let p = probe_chunked(&proto, input, &names, 2).unwrap();
        assert_eq!(p.len(), n);
        assert!(names.iter().all(|t| p[t] == Probed { float: true, half: false, shape: vec![2, 2, 3, 4] }));
    }
}
