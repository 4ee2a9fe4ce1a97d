//! Channel means of pointwise convolutions taken from their input.
//!
//! A tap's per-channel mean is a `GlobalAveragePool` over its tensor: one more pass
//! over memory, and a second consumer of the conv output, which stops ONNX Runtime
//! from fusing the conv with the `Add` and `Relu` after it (the `Relu` then makes a
//! pass of its own). On ResNet-50 at 224 the 53 conv means cost about 18 % of plain
//! inference's CPU time that way, most of it on the bottlenecks' expanding 1x1 `conv3`
//! (64 to 512 channels in, 256 to 2048 out).
//!
//! The mean of a 1x1 convolution with stride 1 and no padding is linear in its
//! input: `mean_hw(W * x + b) = W * mean_hw(x) + b`. It is computed as the same
//! convolution (the same weights, bias and groups) applied to the input's
//! `GlobalAveragePool`, `[N, C_in, 1, 1]`, wherever the input has fewer channels than
//! the output (`C_in < C_out`): the pool reads less, and the conv keeps its fusions.
//! ResNet-50 at 224: the taps' cost fell from about 18 % to about 10 % of plain
//! inference (`flickertag bench --taps conv` against `--taps none`, batch 5). The
//! values agree with the output's pool to float rounding (test
//! `conv_means_from_the_input_match_the_convolution_computed_in_f64`).
//!
//! Measured and not done: the same for any convolution. The means of the input over
//! each kernel offset's window, `[N, C_in, kh, kw]`, with the conv's own weights
//! applied, give its mean exactly for any stride, padding and dilation.
//! - With one `AveragePool` of an `H' x W'` window and the conv's padding (stride-1
//!   convs only): slower; ResNet-32's 3x3 convs at 32 x 32 went from 83 % to 75 % of
//!   plain inference, and ResNet-50 gained nothing.
//! - With two depthwise convs of constant kernels (`1 x W'` dilated by the stride,
//!   then `H' x 1`), for convs whose input is at most half their output (the stems,
//!   VGG's first conv of a stage): built and tested on 2026-12-06 (commit 14be788,
//!   since reverted). Exact, but the gain was within the noise of one call: ResNet-50
//!   95.3 % to 95.7 % of plain inference, VGG16-BN 96.0 % to 97.5 %
//!   (`flickertag bench`), and 92.8-93.9 % and 100.4-101.6 % for every strategy in
//!   `bench/tap_means_ab.py` (docs/benchmarks.md). It also moved the `authors` scores
//!   of the CIFAR ResNets' stem conv, which is linear in the frame, so its off-line
//!   bins hold float32 rounding alone: rounded differently, those scores changed by
//!   up to 0.9 (the other taps by at most 0.0015), and the pruning by tagging scores
//!   that ranks them with the rest came out differently.

use std::collections::HashMap;

use onnx_protobuf::ModelProto;

use super::edit::Editor;
use super::graph;
use super::graph::int_attr as attr_ints;

/// A pointwise convolution whose output mean is cheaper to take from its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FromInput {
    /// The conv's input tensor `[N, C_in, H, W]`.
    pub input: String,
    /// Its weight `[C_out, C_in / group, 1, 1]` (an initializer).
    pub weight: String,
    /// Its bias `[C_out]`, if any.
    pub bias: Option<String>,
    /// Its groups.
    pub group: i64,
}

/// Every 1x1 convolution of `proto` with stride 1, no padding, an initializer weight
/// and fewer input than output channels, by output tensor name.
pub(crate) fn pointwise_convs(proto: &ModelProto) -> HashMap<&str, FromInput> {
    let Some(g) = proto.graph.as_ref() else { return HashMap::new() };
    let weights: HashMap<&str, &[i64]> = g.initializer.iter().map(|t| (t.name.as_str(), t.dims.as_slice())).collect();
    let mut out = HashMap::new();
    for n in &g.node {
        let standard = n.domain.is_empty() || n.domain == "ai.onnx";
        if n.op_type != "Conv" || !standard || n.output.len() != 1 || !(2..=3).contains(&n.input.len()) {
            continue;
        }
        let Some(&[c_out, per_group, 1, 1]) = weights.get(n.input[1].as_str()).copied() else { continue };
        let all = |k: &str, x: i64| attr_ints(n, k).is_none_or(|v| v.iter().all(|&y| y == x));
        let auto_pad = n.attribute.iter().find(|a| a.name == "auto_pad").map_or(&b""[..], |a| a.s.as_slice());
        let group = attr_ints(n, "group").map_or(1, |v| v[0]);
        let plain = all("strides", 1) && all("pads", 0) && all("kernel_shape", 1);
        let padding = matches!(auto_pad, b"" | b"NOTSET" | b"VALID");
        // i128: the channel counts come from the file.
        let expanding = group >= 1 && i128::from(per_group) * i128::from(group) < i128::from(c_out);
        if !(plain && padding && expanding) || n.input[0].is_empty() {
            continue;
        }
        let bias = n.input.get(2).filter(|b| !b.is_empty()).cloned();
        let (input, weight) = (n.input[0].clone(), n.input[1].clone());
        out.insert(n.output[0].as_str(), FromInput { input, weight, bias, group });
    }
    out
}

impl Editor<'_> {
    /// Adds nodes computing the per-channel means `[N, C_out, 1, 1]` of `conv`'s
    /// output, named `out`, from its input's (one pool per input tensor).
    pub(crate) fn mean_from_input(&mut self, out: &str, conv: &FromInput) {
        let pooled = format!("flickertag.pool.{}", conv.input);
        if !self.graph().node.iter().any(|n| n.output.first() == Some(&pooled)) {
            let pool = graph::node("GlobalAveragePool", &pooled, &[&conv.input], &[&pooled], vec![]);
            self.graph().node.push(pool);
        }
        let mut inputs = vec![pooled.as_str(), conv.weight.as_str()];
        inputs.extend(conv.bias.as_deref());
        let attrs = vec![graph::attr_ints("kernel_shape", &[1, 1]), graph::attr_int("group", conv.group)];
        self.graph().node.push(graph::node("Conv", out, &inputs, &[out], attrs));
        self.graph().output.push(graph::value_info(out, None));
    }
}

#[cfg(test)]
mod tests {
    use onnx_protobuf::{AttributeProto, GraphProto, OperatorSetIdProto};

    use super::*;
    use crate::inference::engine::{EngineConfig, Session};

    /// Input channels, height and width of the test networks.
    const C: usize = 3;
    const H: usize = 6;
    const W: usize = 5;

    /// A network `image [N, 3, 6, 5] -> conv (weight dims `wd`, bias, `attrs`) -> relu ->
    /// pool -> logits`.
    fn network(wd: [usize; 4], attrs: Vec<AttributeProto>) -> (ModelProto, Vec<f32>, Vec<f32>) {
        let w: Vec<f32> = (0..wd.iter().product()).map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0).collect();
        let b: Vec<f32> = (0..wd[0]).map(|i| i as f32 / 4.0 - 1.0).collect();
        let nodes = vec![
            graph::node("Conv", "/conv/Conv", &["image", "conv.weight", "conv.bias"], &["c"], attrs),
            graph::node("Relu", "/relu/Relu", &["c"], &["r"], vec![]),
            graph::node("GlobalAveragePool", "/pool/GlobalAveragePool", &["r"], &["p"], vec![]),
            graph::node("Flatten", "/flatten/Flatten", &["p"], &["logits"], vec![]),
        ];
        let proto = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13, ..Default::default() }],
            graph: protobuf::MessageField::some(GraphProto {
                node: nodes,
                initializer: vec![
                    graph::tensor_f32("conv.weight", &wd, &w),
                    graph::tensor_f32("conv.bias", &[wd[0]], &b),
                ],
                input: vec![graph::value_info("image", Some(&[None, Some(C as i64), Some(H as i64), Some(W as i64)]))],
                output: vec![graph::value_info("logits", Some(&[None, Some(wd[0] as i64)]))],
                ..Default::default()
            }),
            ..Default::default()
        };
        (proto, w, b)
    }

    /// The oracle: the convolution (stride 1, zero padding `[top, left, bottom, right]`,
    /// `group` groups) at every output pixel of one frame `[C, H, W]`, then its mean
    /// per output channel, in f64.
    fn conv_means_f64(x: &[f32], w: &[f32], b: &[f32], wd: [usize; 4], pads: [usize; 4], group: usize) -> Vec<f64> {
        let [co, cg, kh, kw] = wd;
        let (ho, wo) = (H + pads[0] + pads[2] + 1 - kh, W + pads[1] + pads[3] + 1 - kw);
        (0..co)
            .map(|o| {
                let g = o / (co / group);
                let mut sum = 0.0;
                for y in 0..ho {
                    for xx in 0..wo {
                        sum += b[o] as f64;
                        for i in 0..cg {
                            for r in 0..kh {
                                for q in 0..kw {
                                    let (iy, ix) = ((y + r) as i64 - pads[0] as i64, (xx + q) as i64 - pads[1] as i64);
                                    if (0..H as i64).contains(&iy) && (0..W as i64).contains(&ix) {
                                        let c = g * cg + i;
                                        let v = x[c * H * W + iy as usize * W + ix as usize] as f64;
                                        sum += w[((o * cg + i) * kh + r) * kw + q] as f64 * v;
                                    }
                                }
                            }
                        }
                    }
                }
                sum / (ho * wo) as f64
            })
            .collect()
    }

    #[test]
    fn conv_means_from_the_input_match_the_convolution_computed_in_f64() {
        // (weight dims, pads, group, expected to be taken from the input)
        let cases: [([usize; 4], [usize; 4], usize, bool); 6] = [
            ([8, 3, 1, 1], [0; 4], 1, true),        // expanding pointwise: the input's pool
            ([6, 1, 1, 1], [0; 4], 3, true),        // grouped pointwise (multiplier 2)
            ([2, 3, 1, 1], [0; 4], 1, false),       // contracting: the output's pool
            ([3, 3, 1, 1], [0; 4], 1, false),       // as many channels out as in
            ([6, 3, 3, 3], [1; 4], 1, false),       // 3x3: the output's pool
            ([6, 3, 3, 2], [2, 0, 1, 1], 1, false), // asymmetric kernel and padding
        ];
        for (wd, pads, group, from_input) in cases {
            let attrs = vec![
                graph::attr_ints("pads", &pads.map(|p| p as i64)),
                graph::attr_int("group", group as i64),
                graph::attr_ints("kernel_shape", &[wd[2] as i64, wd[3] as i64]),
            ];
            let (proto, w, b) = network(wd, attrs);
            let m =
                crate::inference::model::Model::from_proto(proto, std::path::Path::new("conv.onnx"), "conv").unwrap();
            let tap = m.taps.iter().find(|t| t.tensor == "c").expect("the conv is a tap");
            let nodes = m.with_tap_means(&[tap]).proto.graph.unwrap().node;
            let pooled_input = nodes.iter().any(|n| n.op_type == "GlobalAveragePool" && n.input[0] == "image");
            assert_eq!(pooled_input, from_input, "{wd:?} {pads:?}: taken from the input");
            let cfg = EngineConfig { threads: 1, batch: 4, ..EngineConfig::default() };
            let mut s = Session::for_model(&m, &[tap], false, &cfg).unwrap();
            let n = C * H * W;
            let frames: Vec<f32> = (0..4 * n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
            let means = &s.run_all(&frames, 4, None).unwrap()[1];
            assert_eq!(means.data.len(), 4 * wd[0]);
            for f in 0..4 {
                let want = conv_means_f64(&frames[f * n..(f + 1) * n], &w, &b, wd, pads, group);
                for (o, want) in want.iter().enumerate() {
                    let got = means.data[f * wd[0] + o] as f64;
                    assert!((got - want).abs() < 1e-5, "{wd:?} {pads:?} frame {f} channel {o}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn strided_padded_and_auto_padded_pointwise_convs_keep_the_pool_of_their_output() {
        let found = |attrs| pointwise_convs(&network([8, 3, 1, 1], attrs).0).contains_key("c");
        assert!(found(vec![graph::attr_ints("strides", &[1, 1]), graph::attr_ints("dilations", &[2, 2])]));
        assert!(!found(vec![graph::attr_ints("strides", &[2, 2])]));
        assert!(!found(vec![graph::attr_ints("pads", &[0, 1, 0, 1])]));
        let same = AttributeProto { name: "auto_pad".into(), s: b"SAME_UPPER".to_vec(), ..Default::default() };
        assert!(!found(vec![same]));
        assert!(!found(vec![graph::attr_int("group", 0)]));
    }
}
