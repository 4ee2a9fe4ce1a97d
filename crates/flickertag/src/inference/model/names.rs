//! Module paths and functional names, the same from both PyTorch exporters.
//!
//! The dynamo exporter records a node's module chain in metadata, the legacy exporter
//! in the node's name ([`module_chain`]); functional ops get `<module>.<op>` with the
//! op as PyTorch names it ([`torch_op`]), counted per module by [`super::scan::scan`];
//! the legacy exporter's scope of a second call (`relu_1`) is read as the module
//! ([`merge_repeated_calls`]); the QuantizeLinear/DequantizeLinear pairs of an int8 QDQ
//! graph take the scopes of what they quantize ([`quantized_pairs`]).

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{GraphProto, NodeProto};

/// Parses dynamo's `name_scopes` metadata, a Python list of strings.
pub(super) fn parse_py_list(s: &str) -> Vec<String> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    s.split(", ").map(|x| x.trim().trim_matches('\'').trim_matches('"').to_string()).collect()
}

/// A trailing `_<digits>` removed: the exporters' counters (`add_25`, `Add_1`).
fn strip_counter(s: &str) -> &str {
    match s.rsplit_once('_') {
        Some((base, k)) if !base.is_empty() && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => s,
    }
}

/// The PyTorch function an ONNX op of the legacy exporter comes from, as the dynamo
/// exporter names its FX nodes (`Concat` is `cat`, `LayerNormalization` is
/// `layer_norm`), so that both exporters name a functional op alike; other ops are
/// their type in lower case.
fn torch_op(op_type: &str) -> String {
    let known = [
        ("Concat", "cat"),
        ("LayerNormalization", "layer_norm"),
        ("BatchNormalization", "batch_norm"),
        ("GroupNormalization", "group_norm"),
        ("InstanceNormalization", "instance_norm"),
        ("HardSwish", "hardswish"),
        ("HardSigmoid", "hardsigmoid"),
        ("LeakyRelu", "leaky_relu"),
        ("Gemm", "linear"),
        ("Conv", "conv2d"),
        ("MaxPool", "max_pool2d"),
        ("AveragePool", "avg_pool2d"),
        ("GlobalAveragePool", "adaptive_avg_pool2d"),
        ("ReduceMean", "mean"),
    ];
    known.iter().find(|(o, _)| *o == op_type).map_or_else(|| op_type.to_lowercase(), |(_, t)| t.to_string())
}

/// The module chain (outer to inner) and the functional name of a node.
/// Returns `(chain, functional)`: `functional` names the node as `<innermost module>.<op>`
/// with the op as PyTorch names it and without the exporter's counter; [`super::scan::scan`]
/// numbers repeats per module in graph order (`layer1.0.add`, `layer1.0.add_1`).
pub(crate) fn module_chain(n: &NodeProto) -> (Vec<String>, String) {
    let meta = |k: &str| n.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.as_str());
    if let Some(scopes) = meta("pkg.torch.onnx.name_scopes") {
        let v = parse_py_list(scopes);
        if let Some((last, mods)) = v.split_last() {
            let chain: Vec<String> = mods.iter().filter(|m| !m.is_empty()).cloned().collect();
            let op = strip_counter(last);
            let func = match chain.last() {
                Some(m) => format!("{m}.{op}"),
                None => op.to_string(),
            };
            return (chain, func);
        }
    }
    if n.name.contains('/') {
        let segs: Vec<&str> = n.name.split('/').filter(|s| !s.is_empty()).collect();
        let Some((last, parents)) = segs.split_last() else { return (vec![], n.name.clone()) };
        let mut chain: Vec<String> = Vec::new();
        let mut path = String::new();
        let mut prev = "";
        for s in parents {
            if !path.is_empty() && s.starts_with(&format!("{path}.")) {
                // A Sequential's child repeats the full prefix: `layer1/layer1.0`.
                path = s.to_string();
            } else if !prev.is_empty() && s.starts_with(&format!("{prev}.")) && path.ends_with(prev) {
                // ... or its parent's own name (`downsample/downsample.1`, the legacy
                // exporter's doubled segment): the child refines the parent.
                path = format!("{}{s}", &path[..path.len() - prev.len()]);
            } else {
                path = if path.is_empty() { s.to_string() } else { format!("{path}.{s}") };
            }
            chain.push(path.clone());
            prev = s;
        }
        let op = torch_op(strip_counter(last));
        let func = match chain.last() {
            Some(m) => format!("{m}.{op}"),
            None => op,
        };
        return (chain, func);
    }
    if n.name.is_empty() {
        return (vec![], String::new());
    }
    // flickertag's own graphs name each node by its module path.
    (vec![n.name.clone()], n.name.clone())
}

/// One QuantizeLinear -> DequantizeLinear pair of a QDQ-quantized graph.
pub(super) struct QdqPair {
    /// The QuantizeLinear node.
    pub q: usize,
    /// The DequantizeLinear node.
    pub dq: usize,
    /// The float tensor quantized.
    pub x: String,
    /// The scope and functional name of an activation the quantizer removed, whose
    /// output tensor name `x` still carries (`/relu/Relu_output_0`).
    pub removed: Option<(Vec<String>, String)>,
}

/// The QuantizeLinear -> DequantizeLinear pairs of a QDQ-quantized graph (ONNX
/// Runtime's `quantize_static`, `QuantFormat.QDQ`), and their scopes in `chains`.
///
/// A pair after a float tensor `x` quantizes it for the next layer; its nodes' names
/// (`<x>_QuantizeLinear`) are no module scopes. The pair takes the scope of the node
/// that computes `x`, so that the dequantized `x`, what the next layer reads, is that
/// module's output (and `x` itself an inner step). The quantizer also removes an
/// activation that the quantization range makes redundant (a ReLU after a conv or an
/// add) and writes the conv's output under the removed activation's tensor name
/// (`/relu/Relu_output_0`): then `x` stays the conv's output, and the pair takes the
/// activation's scope and name (`relu`; the ReLU clips where the quantized range starts).
pub(super) fn quantized_pairs(g: &GraphProto, chains: &mut [(Vec<String>, String)]) -> Vec<QdqPair> {
    let producer: HashMap<&str, usize> =
        g.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut pairs = Vec::new();
    for (dq, n) in g.node.iter().enumerate() {
        if n.op_type != "DequantizeLinear" {
            continue;
        }
        let Some(&q) = n.input.first().and_then(|x| producer.get(x.as_str())) else { continue };
        if g.node[q].op_type != "QuantizeLinear" {
            continue;
        }
        let Some(x) = g.node[q].input.first().cloned() else { continue };
        let from = producer.get(x.as_str()).map(|&j| chains[j].0.clone()).unwrap_or_default();
        let removed = x.rsplit_once('/').filter(|(_, last)| last.contains("_output_")).and_then(|(scope, last)| {
            let op = last.split("_output_").next().unwrap_or(last);
            let (chain, _) = module_chain(&NodeProto { name: format!("{scope}/{op}"), ..Default::default() });
            (chain != from && !chain.is_empty()).then(|| {
                let func = format!("{}.{}", chain.last().expect("not empty"), torch_op(op));
                (chain, func)
            })
        });
        match &removed {
            Some((chain, func)) => {
                chains[q] = (chain.clone(), String::new());
                chains[dq] = (chain.clone(), func.clone());
            }
            None => {
                chains[q] = (from.clone(), String::new());
                chains[dq] = (from, String::new());
            }
        }
        pairs.push(QdqPair { q, dq, x, removed });
    }
    pairs
}

/// The legacy exporter names the second call of a module `relu` as a scope `relu_1`
/// (the dynamo exporter keeps one scope for all calls). A scope `<path>_<k>` beside a
/// scope `<path>` whose nodes read the same weights (none, for a module without
/// parameters) is a repeated call: it becomes `<path>`, so that the calls are the
/// module's several outputs as from the dynamo exporter.
pub(super) fn merge_repeated_calls(
    g: &GraphProto,
    mut chains: Vec<(Vec<String>, String)>,
) -> Vec<(Vec<String>, String)> {
    let consts: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut weights: HashMap<&str, Vec<&str>> = HashMap::new();
    for (n, (chain, _)) in g.node.iter().zip(&chains) {
        if !n.name.contains('/') {
            continue; // only the legacy exporter's scopes
        }
        // (A quantizer's scales and zero points are no module's weights.)
        let qdq = matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear");
        for m in chain {
            let w = weights.entry(m.as_str()).or_default();
            if !qdq {
                w.extend(n.input.iter().map(|x| x.as_str()).filter(|x| consts.contains(x)));
            }
        }
    }
    let mut renames: Vec<(String, String)> = Vec::new();
    for (p, w) in &weights {
        let base = strip_counter(p);
        if base != *p && weights.get(base).is_some_and(|bw| bw == w) {
            renames.push((p.to_string(), base.to_string()));
        }
    }
    if renames.is_empty() {
        return chains;
    }
    renames.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let rename = |s: &str| -> String {
        for (p, base) in &renames {
            if s == p {
                return base.clone();
            }
            if let Some(rest) = s.strip_prefix(p.as_str()).filter(|r| r.starts_with('.')) {
                return format!("{base}{rest}");
            }
        }
        s.to_string()
    };
    for (chain, func) in chains.iter_mut() {
        let renamed: Vec<String> = chain.iter().map(|m| rename(m)).collect();
        if renamed != *chain {
            if let Some(op) = chain.last().and_then(|m| func.strip_prefix(m.as_str())).map(str::to_string) {
                *func = format!("{}{op}", renamed.last().expect("same length"));
            }
            *chain = renamed;
        }
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeProto {
        NodeProto { name: name.into(), ..Default::default() }
    }

    #[test]
    fn legacy_scopes_become_module_chains() {
        let (c, f) = module_chain(&node("/layer1/layer1.0/conv1/Conv"));
        assert_eq!(c, ["layer1", "layer1.0", "layer1.0.conv1"]);
        assert_eq!(f, "layer1.0.conv1.conv2d");
        let (c, f) = module_chain(&node("/layer2/layer2.0/downsample/downsample.0/Conv"));
        assert_eq!(c, ["layer2", "layer2.0", "layer2.0.downsample", "layer2.0.downsample.0"]);
        assert_eq!(f, "layer2.0.downsample.0.conv2d");
        let (c, f) = module_chain(&node("/blocks/blocks.0/Add_1"));
        assert_eq!(c, ["blocks", "blocks.0"]);
        assert_eq!(f, "blocks.0.add", "the exporter's counter is left to scan()");
        assert_eq!(module_chain(&node("/embeddings/Concat_2")).1, "embeddings.cat");
        let (c, f) = module_chain(&node("/Relu"));
        assert!(c.is_empty());
        assert_eq!(f, "relu");
        assert_eq!(module_chain(&node("layer2.3.bn1")).0, ["layer2.3.bn1"]);
    }

    #[test]
    fn dynamo_scopes_become_module_chains() {
        let mut n = node("node_linear_2");
        n.metadata_props.push(super::super::graph::meta(
            "pkg.torch.onnx.name_scopes",
            "['', 'blocks', 'blocks.0', 'blocks.0.mlp', 'blocks.0.mlp.fc1', 'linear_2']",
        ));
        let (c, f) = module_chain(&n);
        assert_eq!(c, ["blocks", "blocks.0", "blocks.0.mlp", "blocks.0.mlp.fc1"]);
        assert_eq!(f, "blocks.0.mlp.fc1.linear");
    }
}
