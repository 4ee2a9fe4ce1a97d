//! The CIFAR ResNet family (He et al. 2016; Idelbayev's PyTorch implementation):
//! builds an ONNX graph from a [`StateDict`].
//!
//! Architecture: `conv1` 3x3 (16) → `bn1` → `relu`; three stages `layer1..3` of n
//! BasicBlocks (16/32/64 filters, stride 2 at the first block of stages 2 and 3);
//! global average pool; `linear` 64→10. Depth = 6n + 2 (n = 3, 5, 7, 9 for ResNet-20,
//! 32, 44, 56). Option-A shortcut: `x[:, :, ::2, ::2]` zero-padded by `planes/4`
//! channels at both ends.
//!
//! Every node's output tensor is named by its dotted module path, which is also its
//! tap name: `conv1`, `bn1`, `relu`, `layer2.3.conv1`, `layer2.3.bn1`,
//! `layer2.3.relu1`, `layer2.3.conv2`, `layer2.3.bn2`, `layer2.3.add` (residual sum),
//! `layer2.3.relu2` (block output), then `avgpool`, `logits`.

use onnx_protobuf::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};
use protobuf::MessageField;

use super::checkpoint::StateDict;
use super::graph::{attr_float, attr_int, attr_ints, meta, node, tensor_f32, tensor_i64, value_info};
use crate::error::{Error, Result};

/// ONNX opset the built graphs use.
pub const OPSET: i64 = 13;

/// Blocks per stage in the state dict, i.e. n in depth 6n+2: every stage must have
/// the same number, counted from all of its `layerS.K.*` keys (a gap or a stage with
/// another count is an error naming them, never a smaller network).
pub fn blocks_per_stage(sd: &StateDict) -> Result<usize> {
    if !sd.tensors.contains_key("conv1.weight") || !sd.tensors.contains_key("linear.weight") {
        return Err(Error::Model(
            "weights are not a CIFAR ResNet (need conv1.weight, layer1.0.conv1.weight, ..., linear.weight)".into(),
        ));
    }
    let mut counts = Vec::new();
    for stage in 1..=3 {
        let prefix = format!("layer{stage}.");
        let mut blocks: Vec<usize> =
            sd.tensors.keys().filter_map(|k| k.strip_prefix(&prefix)?.split('.').next()?.parse().ok()).collect();
        blocks.sort_unstable();
        blocks.dedup();
        let n = blocks.len();
        if blocks.iter().enumerate().any(|(i, &b)| i != b) {
            return Err(Error::Model(format!("layer{stage} has blocks {blocks:?}: not numbered 0..{n}")));
        }
        counts.push(n);
    }
    if counts[0] == 0 || counts.iter().any(|&c| c != counts[0]) {
        return Err(Error::Model(format!(
            "blocks per stage are {counts:?} (layer1, layer2, layer3): a CIFAR ResNet has the same n >= 1 in each"
        )));
    }
    Ok(counts[0])
}

struct Builder<'a> {
    sd: &'a StateDict,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    used: std::collections::BTreeSet<String>,
}

impl Builder<'_> {
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<String> {
        let t = self.sd.get(name, shape)?;
        self.used.insert(name.to_string());
        self.inits.push(tensor_f32(name, shape, &t.data));
        Ok(name.to_string())
    }

    fn conv(&mut self, x: &str, name: &str, cin: usize, cout: usize, stride: i64) -> Result<String> {
        let w = self.weight(&format!("{name}.weight"), &[cout, cin, 3, 3])?;
        let attrs = vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[stride, stride]),
        ];
        self.nodes.push(node("Conv", name, &[x, &w], &[name], attrs));
        Ok(name.into())
    }

    fn bn(&mut self, x: &str, name: &str, c: usize) -> Result<String> {
        let ins: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|p| self.weight(&format!("{name}.{p}"), &[c]))
            .collect::<Result<_>>()?;
        let mut inputs = vec![x];
        inputs.extend(ins.iter().map(String::as_str));
        self.nodes.push(node("BatchNormalization", name, &inputs, &[name], vec![attr_float("epsilon", 1e-5)]));
        Ok(name.into())
    }

    fn relu(&mut self, x: &str, name: &str) -> String {
        self.nodes.push(node("Relu", name, &[x], &[name], vec![]));
        name.into()
    }

    fn block(&mut self, x: &str, prefix: &str, cin: usize, planes: usize, stride: i64) -> Result<String> {
        let c1 = self.conv(x, &format!("{prefix}.conv1"), cin, planes, stride)?;
        let b1 = self.bn(&c1, &format!("{prefix}.bn1"), planes)?;
        let r1 = self.relu(&b1, &format!("{prefix}.relu1"));
        let c2 = self.conv(&r1, &format!("{prefix}.conv2"), planes, planes, 1)?;
        let b2 = self.bn(&c2, &format!("{prefix}.bn2"), planes)?;
        let short = if stride != 1 || cin != planes {
            // Option A: keep even rows/columns, zero-pad channels planes/4 on each side.
            let sl = format!("{prefix}.shortcut.slice");
            let names = [format!("{sl}.starts"), format!("{sl}.ends"), format!("{sl}.axes"), format!("{sl}.steps")];
            self.inits.push(tensor_i64(&names[0], &[0, 0]));
            self.inits.push(tensor_i64(&names[1], &[i64::MAX, i64::MAX]));
            self.inits.push(tensor_i64(&names[2], &[2, 3]));
            self.inits.push(tensor_i64(&names[3], &[stride, stride]));
            let ins = [x, &names[0], &names[1], &names[2], &names[3]];
            self.nodes.push(node("Slice", &sl, &ins, &[&sl], vec![]));
            let p = ((planes - cin) / 2) as i64;
            let pads = format!("{prefix}.shortcut.pads");
            self.inits.push(tensor_i64(&pads, &[0, p, 0, 0, 0, p, 0, 0]));
            let out = format!("{prefix}.shortcut");
            self.nodes.push(node("Pad", &out, &[&sl, &pads], &[&out], vec![]));
            out
        } else {
            x.to_string()
        };
        let add = format!("{prefix}.add");
        self.nodes.push(node("Add", &add, &[&b2, &short], &[&add], vec![]));
        Ok(self.relu(&add, &format!("{prefix}.relu2")))
    }
}

/// Builds the ONNX graph of a CIFAR ResNet from its weights. Input `input`
/// `[N, 3, 32, 32]` (normalized), output `logits` `[N, classes]`.
pub(crate) fn build(sd: &StateDict, name: &str) -> Result<ModelProto> {
    let n = blocks_per_stage(sd)?;
    let classes = sd.tensors["linear.weight"].shape.first().copied().unwrap_or(0);
    let mut b = Builder { sd, nodes: Vec::new(), inits: Vec::new(), used: Default::default() };
    let c = b.conv("input", "conv1", 3, 16, 1)?;
    let c = b.bn(&c, "bn1", 16)?;
    let mut x = b.relu(&c, "relu");
    let mut cin = 16;
    for (stage, planes) in [(1usize, 16usize), (2, 32), (3, 64)] {
        for k in 0..n {
            let stride = if stage > 1 && k == 0 { 2 } else { 1 };
            x = b.block(&x, &format!("layer{stage}.{k}"), cin, planes, stride)?;
            cin = planes;
        }
    }
    b.nodes.push(node("GlobalAveragePool", "avgpool", &[&x], &["avgpool"], vec![]));
    b.nodes.push(node("Flatten", "flatten", &["avgpool"], &["flatten"], vec![attr_int("axis", 1)]));
    let w = b.weight("linear.weight", &[classes, 64])?;
    let bias = b.weight("linear.bias", &[classes])?;
    b.nodes.push(node("Gemm", "linear", &["flatten", &w, &bias], &["logits"], vec![attr_int("transB", 1)]));
    // Every tensor must have found its place (BatchNorm's step counter carries no weights).
    let unused: Vec<&String> =
        sd.tensors.keys().filter(|k| !b.used.contains(*k) && !k.ends_with("num_batches_tracked")).collect();
    if !unused.is_empty() {
        let shown: Vec<&str> = unused.iter().take(8).map(|s| s.as_str()).collect();
        return Err(Error::Model(format!(
            "{} tensor(s) the ResNet-{} built from these weights does not use: {}{}; the checkpoint is not this \
             architecture, or its keys were renamed",
            unused.len(),
            6 * n + 2,
            shown.join(", "),
            if unused.len() > 8 { ", ..." } else { "" }
        )));
    }
    let graph = GraphProto {
        name: name.into(),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("input", Some(&[None, Some(3), Some(32), Some(32)]))],
        output: vec![value_info("logits", Some(&[None, Some(classes as i64)]))],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: 7,
        producer_name: "flickertag".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET, ..Default::default() }],
        graph: MessageField::some(graph),
        metadata_props: vec![
            meta("flickertag.architecture", &format!("resnet{}", 6 * n + 2)),
            meta("flickertag.mean", "0.485,0.456,0.406"),
            meta("flickertag.std", "0.229,0.224,0.225"),
        ],
        ..Default::default()
    })
}

/// Weights of a CIFAR ResNet with `n` blocks per stage, drawn at random (seeded):
/// Kaiming-normal convs and linear, identity BatchNorm. For demonstrations and tests
/// of the pipeline only; such a network has learnt nothing.
pub fn random_weights(n: usize, seed: u64) -> StateDict {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move |std: f32| -> f32 { std * rng.sample::<f32, _>(rand_distr::StandardNormal) };
    let mut sd = StateDict::default();
    let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
        sd.tensors.insert(name, super::checkpoint::Tensor { shape, data });
    };
    let mut conv = |name: String, cin: usize, cout: usize, put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        let std = (2.0 / (cin * 9) as f32).sqrt();
        put(format!("{name}.weight"), vec![cout, cin, 3, 3], (0..cout * cin * 9).map(|_| normal(std)).collect());
    };
    let bn = |name: String, c: usize, put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        for (p, v) in [("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)] {
            put(format!("{name}.{p}"), vec![c], vec![v; c]);
        }
    };
    conv("conv1".into(), 3, 16, &mut put);
    bn("bn1".into(), 16, &mut put);
    let mut cin = 16;
    for (stage, planes) in [(1, 16), (2, 32), (3, 64)] {
        for k in 0..n {
            let p = format!("layer{stage}.{k}");
            conv(format!("{p}.conv1"), cin, planes, &mut put);
            bn(format!("{p}.bn1"), planes, &mut put);
            conv(format!("{p}.conv2"), planes, planes, &mut put);
            bn(format!("{p}.bn2"), planes, &mut put);
            cin = planes;
        }
    }
    let lin: Vec<f32> = (0..640).map(|_| normal((1.0f32 / 64.0).sqrt())).collect();
    put("linear.weight".into(), vec![10, 64], lin);
    put("linear.bias".into(), vec![10], vec![0.0; 10]);
    sd
}
