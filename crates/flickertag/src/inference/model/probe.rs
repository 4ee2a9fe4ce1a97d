//! One run of a graph with every image-dependent tensor exposed, to learn what ONNX
//! Runtime computes for each: element type and shape. Tap discovery needs both (only
//! float tensors are taps; layouts are read with shapes), and no static shape
//! inference covers every exporter's ops.

use std::collections::HashMap;

use onnx_protobuf::{ModelProto, ValueInfoProto};
use ort::value::TensorRef;

use crate::error::{runtime, Result};

/// One probed tensor: whether it holds float32 values, and its full shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probed {
    /// Float32 values.
    pub float: bool,
    /// Shape as run, batch axis first when the tensor has one.
    pub shape: Vec<usize>,
}

/// Runs `n` blank frames `[n, C, H, W]` (`chw`) through `proto` (unoptimized, one
/// thread) with `names` added as untyped graph outputs (ONNX Runtime infers their
/// types), and returns what it computed for each.
pub(crate) fn probe_tensors(
    proto: &ModelProto,
    input: &str,
    chw: [usize; 3],
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
    // Weights are not prepacked for kernels: one run does not repay it, and a
    // prepacked copy beside the weights is hundreds of MB on a large model.
    let builder = crate::inference::runtime::session_builder(1, false)?
        .with_config_entry("session.disable_prepacking", "1")
        .map_err(|e| crate::error::Error::Runtime(e.to_string()))?;
    let mut session = onnx.commit(builder)?;
    drop(onnx); // ONNX Runtime keeps its own copy of the weights
    let [c, h, w] = chw;
    let frames = vec![0.0f32; n * c * h * w];
    let value = TensorRef::from_array_view(([n, c, h, w], frames.as_slice())).map_err(runtime)?;
    let outs = session.run(ort::inputs![input => value]).map_err(runtime)?;
    let mut m = HashMap::new();
    for name in names {
        let Some(v) = outs.get(name.as_str()) else { continue };
        if let ort::value::ValueType::Tensor { ty, shape, .. } = v.dtype() {
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            m.insert(name.clone(), Probed { float: *ty == ort::value::TensorElementType::Float32, shape });
        }
    }
    Ok(m)
}
