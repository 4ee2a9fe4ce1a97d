//! One run of a graph with every image-dependent tensor exposed, to learn what ONNX
//! Runtime computes for each: element type and shape. Tap discovery needs both (only
//! float tensors are taps; layouts are read with shapes), and no static shape
//! inference covers every exporter's ops.

use std::collections::HashMap;

use onnx_protobuf::{ModelProto, ValueInfoProto};
use ort::value::TensorRef;

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

/// Most tensors exposed by one probe run. A graph with more is probed in several runs,
/// so that the outputs held at once stay bounded: a 1.4 MB chain of 40,000 ReLUs
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
/// one thread) with `names` added as untyped graph outputs (ONNX Runtime infers their
/// types), at most [`PROBE_CHUNK`] at a time, and returns what it computed for each.
pub(crate) fn probe_tensors(
    proto: &ModelProto,
    input: ProbeInput<'_>,
    names: &[String],
    n: usize,
) -> Result<HashMap<String, Probed>> {
    // At least one run, which also tells whether the graph runs at all.
    let chunks: Vec<&[String]> = if names.is_empty() { vec![names] } else { names.chunks(PROBE_CHUNK).collect() };
    let mut m = HashMap::new();
    for chunk in chunks {
        m.extend(probe_run(proto, input, chunk, n)?);
    }
    Ok(m)
}

/// One probe run of [`probe_tensors`].
fn probe_run(proto: &ModelProto, input: ProbeInput<'_>, names: &[String], n: usize) -> Result<HashMap<String, Probed>> {
    let onnx = super::serialize::Onnx::edited(proto, |p| {
        let g = p.graph.as_mut().expect("checked at load");
        g.output.truncate(1);
        let first = g.output[0].name.clone();
        for name in names.iter().filter(|x| **x != first) {
            g.output.push(ValueInfoProto { name: name.clone(), ..Default::default() });
        }
    })?;
    // Weights are not prepacked for kernels: one run does not repay it, and a
    // prepacked copy beside the weights is hundreds of MB on a large model.
    let builder = crate::inference::runtime::session_builder(1, false)?
        .with_config_entry("session.disable_prepacking", "1")
        .map_err(|e| crate::error::Error::Runtime(e.to_string()))?;
    let mut session = onnx.commit(builder)?;
    drop(onnx); // ONNX Runtime keeps its own copy of the weights
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
    let mut m = HashMap::new();
    for name in names {
        let Some(v) = outs.get(name.as_str()) else { continue };
        if let ort::value::ValueType::Tensor { ty, shape, .. } = v.dtype() {
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            use ort::value::TensorElementType as T;
            m.insert(name.clone(), Probed { float: *ty == T::Float32, half: *ty == T::Float16, shape });
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use onnx_protobuf::{GraphProto, OperatorSetIdProto};

    use super::*;
    use crate::inference::model::graph;

    #[test]
    fn a_graph_of_more_tensors_than_one_probe_run_takes_is_probed_whole() {
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
        let p = probe_tensors(&proto, input, &names, 2).unwrap();
        assert_eq!(p.len(), n);
        assert!(names.iter().all(|t| p[t] == Probed { float: true, half: false, shape: vec![2, 2, 3, 4] }));
    }
}
