//! Channel means of convolutions taken from their input.
//!
//! A tap's per-channel mean is a `GlobalAveragePool` over its tensor: one more pass
//! over memory, and a second consumer of the conv output, which stops ONNX Runtime
//! from fusing the conv with the `Add` and `Relu` after it (the `Relu` then makes a
//! pass of its own). On ResNet-50 at 224 the 53 conv means cost about 18 % of plain
//! inference's CPU time that way, most of it on the bottlenecks' expanding 1x1 `conv3`
//! (64 to 512 channels in, 256 to 2048 out).
//!
//! A convolution is linear in its input, and so is its mean over the output grid:
//! `mean_hw(W * x + b) = sum_{i,r,q} W[o, i, r, q] * M[i, r, q] + b[o]`, where
//! `M[i, r, q]` is the mean of the (zero-padded) input channel `i` over the pixels
//! that kernel offset `(r, q)` sees, one `H' x W'` grid of them. Where the input is
//! smaller than the output this is computed from the input, and the conv keeps its
//! fusions:
//!
//! - a 1x1 convolution with stride 1 and no padding that has fewer input than output
//!   channels (`C_in < C_out`): every offset sees the whole input, `M` is its
//!   `GlobalAveragePool` `[N, C_in, 1, 1]`, shared by the convs that read it. ResNet-50
//!   at 224, 2026-12-05: the taps' cost fell from about 18 % to about 10 % of plain inference
//!   (`flickertag bench --taps conv` against `--taps none`, batch 5).
//! - any other 2-D convolution (kernel, stride, padding, dilation and groups as
//!   given) whose input holds at most half as many values per frame as its output,
//!   such as a stem that takes 3 channels to 64: `M` `[N, C_in, kh, kw]` is summed by
//!   two depthwise convolutions with constant kernels, `1 x W'` along the rows
//!   (dilated by the stride, stepping by the dilation) then `H' x 1` along the
//!   columns. It reads the smaller tensor, and the conv keeps its fusion with the
//!   `Relu` (or `BatchNormalization`) after it. What that saves is small and, on this
//!   project's machine, within the noise of one call: ResNet-50's 7x7 stem `Relu` and
//!   pool took 1.9 ms of about 210 ms per batch of 5 in ONNX Runtime's profile;
//!   docs/benchmarks.md has the timings (`bench/tap_means_ab.py`).
//!
//! Both agree with the output's pool to float rounding (test
//! `conv_means_from_the_input_match_the_convolution_computed_in_f64`).
//!
//! Measured and not chosen: windows for convs whose input is as large as their
//! output (ResNet-50's stride-1 3x3 convs): they read as much as the output's pool,
//! and the timings disagree from call to call (`bench/tap_means_ab.py`, strategy
//! `windows-all`: 93.9 against 93.5 % of plain inference in one call, 91.9 against
//! 94.8 % in a draft of it); `AveragePool`s in place of the depthwise convs were no
//! better, and one `AveragePool` with an `H' x W'` window made ResNet-32's 3x3 convs
//! at 32 x 32 slower (83 % to 75 % of plain inference).

use std::collections::HashMap;

use onnx_protobuf::{ModelProto, NodeProto};

use super::edit::Editor;
use super::graph;
use super::graph::int_attr as attr_ints;

/// Most values of the two constant kernels that sum one conv's windows, `C_in x (H' + W')`
/// (a conv past it keeps the pool of its output).
const MAX_WINDOW_KERNEL: i64 = 1 << 22;

/// A convolution whose output mean is cheaper to take from its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FromInput {
    /// The conv's input tensor `[N, C_in, H, W]`.
    pub input: String,
    /// Its weight `[C_out, C_in / group, kh, kw]` (an initializer).
    pub weight: String,
    /// Its bias `[C_out]`, if any.
    pub bias: Option<String>,
    /// Its groups.
    pub group: i64,
    /// How its kernel offsets see the input: `None` for a pointwise conv with stride 1
    /// and no padding (each sees all of it).
    pub windows: Option<Windows>,
}

/// The input windows of a convolution's kernel offsets: offset `(r, q)` sees rows
/// `r * dilation - top + y * stride` for `y < H'` and the like for columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Windows {
    /// Input channels.
    pub channels: i64,
    /// The kernel `[kh, kw]`.
    pub kernel: [i64; 2],
    /// The output grid `[H', W']`: pixels per window along each axis.
    pub grid: [i64; 2],
    /// The conv's strides `[sh, sw]`.
    pub strides: [i64; 2],
    /// The conv's dilations `[dh, dw]`.
    pub dilations: [i64; 2],
    /// The conv's pads `[top, left, bottom, right]`, the bottom and right ones less what
    /// no output pixel reaches (so that exactly `kernel` windows fit).
    pub pads: [i64; 4],
}

/// Every convolution of `proto` whose output's per-channel mean is taken from its
/// input (see the module docs), by output tensor name. `dims` gives a tensor's shape
/// per frame (`[C, H, W]`), where known.
pub(crate) fn from_input_convs(
    proto: &ModelProto,
    dims: impl Fn(&str) -> Option<Vec<usize>>,
) -> HashMap<&str, FromInput> {
    let Some(g) = proto.graph.as_ref() else { return HashMap::new() };
    let weights: HashMap<&str, &[i64]> = g.initializer.iter().map(|t| (t.name.as_str(), t.dims.as_slice())).collect();
    let mut out = HashMap::new();
    for n in &g.node {
        let standard = n.domain.is_empty() || n.domain == "ai.onnx";
        let arity = n.output.len() == 1 && (2..=3).contains(&n.input.len());
        if n.op_type != "Conv" || !standard || !arity || n.input[0].is_empty() {
            continue;
        }
        let Some(&[c_out, per_group, kh, kw]) = weights.get(n.input[1].as_str()).copied() else { continue };
        let group = attr_ints(n, "group").map_or(1, |v| v[0]);
        // i128: the channel counts come from the file.
        let c_in = i128::from(per_group) * i128::from(group);
        if group < 1 || per_group < 1 || c_out < 1 || kh < 1 || kw < 1 || c_in > i128::from(i64::MAX) {
            continue;
        }
        let Some(geometry) = Geometry::of(n) else { continue };
        let pointwise = [kh, kw] == [1, 1] && geometry.strides == [1, 1] && geometry.pads == [0; 4];
        let windows = if pointwise && c_in < i128::from(c_out) {
            None
        } else {
            let (Some(x), Some(y)) = (dims(&n.input[0]), dims(&n.output[0])) else { continue };
            let Some(w) = geometry.windows(c_in as i64, c_out, [kh, kw], &x, &y) else { continue };
            Some(w)
        };
        let bias = n.input.get(2).filter(|b| !b.is_empty()).cloned();
        let (input, weight) = (n.input[0].clone(), n.input[1].clone());
        out.insert(n.output[0].as_str(), FromInput { input, weight, bias, group, windows });
    }
    out
}

/// A 2-D convolution's strides, dilations and explicit pads.
struct Geometry {
    strides: [i64; 2],
    dilations: [i64; 2],
    pads: [i64; 4],
}

impl Geometry {
    /// `n`'s geometry, when it is 2-D, explicit (`auto_pad` unset or `VALID`) and valid.
    fn of(n: &NodeProto) -> Option<Geometry> {
        let pair = |k: &str| match attr_ints(n, k) {
            None => Some([1, 1]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Some([v[0], v[1]]),
            Some(_) => None,
        };
        let auto_pad = n.attribute.iter().find(|a| a.name == "auto_pad").map_or(&b""[..], |a| a.s.as_slice());
        let pads = match (auto_pad, attr_ints(n, "pads")) {
            (b"" | b"NOTSET", None) | (b"VALID", _) => [0; 4],
            (b"" | b"NOTSET", Some(v)) if v.len() == 4 && v.iter().all(|&x| x >= 0) => [v[0], v[1], v[2], v[3]],
            _ => return None,
        };
        Some(Geometry { strides: pair("strides")?, dilations: pair("dilations")?, pads })
    }

    /// The windows of a conv with this geometry, `c_in` input and `c_out` output
    /// channels and kernel `k`, input `x` and output `y` per frame (`[C, H, W]`); `None`
    /// when the shapes do not agree with it or the input is not at most half the output.
    fn windows(&self, c_in: i64, c_out: i64, k: [i64; 2], x: &[usize], y: &[usize]) -> Option<Windows> {
        let ([cx, h, w], [cy, ho, wo]) = (<[usize; 3]>::try_from(x).ok()?, <[usize; 3]>::try_from(y).ok()?);
        let as_i64 = |v: usize| i64::try_from(v).ok();
        let (cx, h, w, cy, ho, wo) = (as_i64(cx)?, as_i64(h)?, as_i64(w)?, as_i64(cy)?, as_i64(ho)?, as_i64(wo)?);
        if cx != c_in || cy != c_out || ho < 1 || wo < 1 {
            return None;
        }
        let [pt, pl, pb, pr] = self.pads;
        // The trimmed end pad of one axis: input `n`, pads `a` and `b`, kernel `k`,
        // output `m`; None unless ONNX's output size is `m`.
        let end = |n: i64, a: i64, b: i64, k: i64, m: i64, s: i64, d: i64| -> Option<i64> {
            let span = (k - 1).checked_mul(d)?.checked_add(1)?;
            let room = n.checked_add(a)?.checked_add(b)?.checked_sub(span)?;
            if room < 0 || room / s + 1 != m {
                return None;
            }
            let trimmed = span.checked_add((m - 1).checked_mul(s)?)?.checked_sub(n)?.checked_sub(a)?;
            (0..=b).contains(&trimmed).then_some(trimmed)
        };
        let [sh, sw] = self.strides;
        let [dh, dw] = self.dilations;
        let bottom = end(h, pt, pb, k[0], ho, sh, dh)?;
        let right = end(w, pl, pr, k[1], wo, sw, dw)?;
        let (input, output) = (c_in.checked_mul(h)?.checked_mul(w)?, c_out.checked_mul(ho)?.checked_mul(wo)?);
        let kernels = c_in.checked_mul(ho.checked_add(wo)?)?;
        if input.checked_mul(2)? > output || kernels > MAX_WINDOW_KERNEL {
            return None;
        }
        Some(Windows {
            channels: c_in,
            kernel: k,
            grid: [ho, wo],
            strides: self.strides,
            dilations: self.dilations,
            pads: [pt, pl, bottom, right],
        })
    }
}

impl Editor<'_> {
    /// Adds nodes computing the per-channel means `[N, C_out, 1, 1]` of `conv`'s
    /// output, named `out`, from its input's (one pool per input tensor).
    pub(crate) fn mean_from_input(&mut self, out: &str, conv: &FromInput) {
        let (means, kernel) = match &conv.windows {
            None => (self.input_pool(&conv.input), [1, 1]),
            Some(w) => (self.window_means(out, &conv.input, w), w.kernel),
        };
        let mut inputs = vec![means.as_str(), conv.weight.as_str()];
        inputs.extend(conv.bias.as_deref());
        let attrs = vec![graph::attr_ints("kernel_shape", &kernel), graph::attr_int("group", conv.group)];
        self.graph().node.push(graph::node("Conv", out, &inputs, &[out], attrs));
        self.graph().output.push(graph::value_info(out, None));
    }

    /// The `GlobalAveragePool` of `input`, `[N, C, 1, 1]`, added once.
    fn input_pool(&mut self, input: &str) -> String {
        let pooled = format!("flickertag.pool.{input}");
        if !self.graph().node.iter().any(|n| n.output.first() == Some(&pooled)) {
            let pool = graph::node("GlobalAveragePool", &pooled, &[input], &[&pooled], vec![]);
            self.graph().node.push(pool);
        }
        pooled
    }

    /// Adds the means `M` `[N, C_in, kh, kw]` of `input` over the windows `w` (named
    /// after the conv mean `out`): a depthwise `1 x W'` conv along the rows, then an
    /// `H' x 1` one along the columns, each kernel `1 / W'` (`1 / H'`) throughout.
    fn window_means(&mut self, out: &str, input: &str, w: &Windows) -> String {
        let c = w.channels;
        let [pt, pl, pb, pr] = w.pads;
        let mut sum = |name: String, x: &str, axis: usize| {
            let len = w.grid[axis];
            let (shape, kernel) = if axis == 1 { ([c, 1, 1, len], [1, len]) } else { ([c, 1, len, 1], [len, 1]) };
            // The window pixels are a stride apart (the conv's stride as this kernel's
            // dilation); consecutive kernel offsets a dilation apart (as its stride).
            let (mut dilations, mut strides, pads) =
                ([1, 1], [1, 1], if axis == 1 { [0, pl, 0, pr] } else { [pt, 0, pb, 0] });
            dilations[axis] = w.strides[axis];
            strides[axis] = w.dilations[axis];
            let weights = format!("{name}.kernel");
            let dims = shape.map(|d| d as usize);
            let ones = vec![1.0 / len as f32; dims.iter().product()];
            self.graph().initializer.push(graph::tensor_f32(&weights, &dims, &ones));
            let attrs = vec![
                graph::attr_ints("kernel_shape", &kernel),
                graph::attr_ints("dilations", &dilations),
                graph::attr_ints("strides", &strides),
                graph::attr_ints("pads", &pads),
                graph::attr_int("group", c),
            ];
            self.graph().node.push(graph::node("Conv", &name, &[x, &weights], &[&name], attrs));
            name
        };
        let rows = sum(format!("{out}.window_rows"), input, 1);
        sum(format!("{out}.windows"), &rows, 0)
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

    /// A conv's geometry: zero pads `[top, left, bottom, right]`, strides, dilations, groups.
    #[derive(Clone, Copy)]
    struct Conv {
        pads: [usize; 4],
        strides: [usize; 2],
        dilations: [usize; 2],
        group: usize,
    }

    /// The oracle: the convolution at every output pixel of one frame `[C, H, W]`
    /// (output size by ONNX's rule), then its mean per output channel, in f64.
    fn conv_means_f64(x: &[f32], w: &[f32], b: &[f32], wd: [usize; 4], g: Conv) -> Vec<f64> {
        let [co, cg, kh, kw] = wd;
        let Conv { pads: [pt, pl, pb, pr], strides: [sh, sw], dilations: [dh, dw], group } = g;
        let ho = (H + pt + pb - (kh - 1) * dh - 1) / sh + 1;
        let wo = (W + pl + pr - (kw - 1) * dw - 1) / sw + 1;
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
                                    let iy = (y * sh + r * dh) as i64 - pt as i64;
                                    let ix = (xx * sw + q * dw) as i64 - pl as i64;
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

    /// How a conv's mean is taken: from the input's pool, its windows, or the output's pool.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Taken {
        Pool,
        Windows,
        Output,
    }

    #[test]
    fn conv_means_from_the_input_match_the_convolution_computed_in_f64() {
        let plain = Conv { pads: [0; 4], strides: [1, 1], dilations: [1, 1], group: 1 };
        let pad1 = Conv { pads: [1; 4], ..plain };
        let cases: [([usize; 4], Conv, Taken); 11] = [
            ([8, 3, 1, 1], plain, Taken::Pool), // expanding pointwise: the input's pool
            ([6, 1, 1, 1], Conv { group: 3, ..plain }, Taken::Pool), // grouped pointwise (multiplier 2)
            ([2, 3, 1, 1], plain, Taken::Output), // contracting: the output's pool
            ([3, 3, 1, 1], plain, Taken::Output), // as many channels out as in
            ([5, 3, 3, 3], pad1, Taken::Output), // 3x3, input more than half the output
            ([6, 3, 3, 3], pad1, Taken::Windows), // 3x3, input half the output
            ([6, 3, 3, 2], Conv { pads: [2, 0, 1, 1], ..plain }, Taken::Windows), // asymmetric kernel, pads
            ([24, 3, 3, 3], Conv { strides: [2, 2], ..pad1 }, Taken::Windows), // strided: 3 x 3 out, rows trimmed
            ([12, 3, 3, 2], Conv { pads: [2, 1, 2, 0], dilations: [2, 3], ..plain }, Taken::Windows), // dilated
            ([30, 1, 3, 3], Conv { pads: [1, 2, 0, 1], strides: [2, 1], dilations: [1, 2], group: 3 }, Taken::Windows),
            // Stride 2 leaves the last column unread: no pads to trim, the output's pool.
            ([32, 3, 2, 2], Conv { strides: [2, 2], ..plain }, Taken::Output),
        ];
        for (wd, g, taken) in cases {
            let attrs = vec![
                graph::attr_ints("pads", &g.pads.map(|p| p as i64)),
                graph::attr_ints("strides", &g.strides.map(|p| p as i64)),
                graph::attr_ints("dilations", &g.dilations.map(|p| p as i64)),
                graph::attr_int("group", g.group as i64),
                graph::attr_ints("kernel_shape", &[wd[2] as i64, wd[3] as i64]),
            ];
            let (proto, w, b) = network(wd, attrs);
            let m =
                crate::inference::model::Model::from_proto(proto, std::path::Path::new("conv.onnx"), "conv").unwrap();
            let tap = m.taps.iter().find(|t| t.tensor == "c").expect("the conv is a tap");
            let nodes = m.with_tap_means(&[tap]).proto.graph.unwrap().node;
            let reads = |op: &str| nodes.iter().any(|n| n.op_type == op && n.input[0] == "image" && n.output[0] != "c");
            let got = match (reads("GlobalAveragePool"), reads("Conv")) {
                (true, false) => Taken::Pool,
                (false, true) => Taken::Windows,
                (false, false) => Taken::Output,
                (true, true) => panic!("both"),
            };
            let label = format!("{wd:?} pads {:?} strides {:?} dilations {:?}", g.pads, g.strides, g.dilations);
            assert_eq!(got, taken, "{label}: how the mean is taken");
            let cfg = EngineConfig { threads: 1, batch: 4, ..EngineConfig::default() };
            let mut s = Session::for_model(&m, &[tap], false, &cfg).unwrap();
            let n = C * H * W;
            let frames: Vec<f32> = (0..4 * n).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
            let means = &s.run_all(&frames, 4, None).unwrap()[1];
            assert_eq!(means.data.len(), 4 * wd[0]);
            for f in 0..4 {
                let want = conv_means_f64(&frames[f * n..(f + 1) * n], &w, &b, wd, g);
                for (o, want) in want.iter().enumerate() {
                    let got = means.data[f * wd[0] + o] as f64;
                    assert!((got - want).abs() < 1e-5, "{label} frame {f} channel {o}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn strided_padded_and_auto_padded_pointwise_convs_keep_the_pool_of_their_output() {
        let found = |attrs| from_input_convs(&network([8, 3, 1, 1], attrs).0, |_| None).contains_key("c");
        assert!(found(vec![graph::attr_ints("strides", &[1, 1]), graph::attr_ints("dilations", &[2, 2])]));
        // Without the shapes the windows cannot be laid out: the output's pool.
        assert!(!found(vec![graph::attr_ints("strides", &[2, 2])]));
        assert!(!found(vec![graph::attr_ints("pads", &[0, 1, 0, 1])]));
        let same = AttributeProto { name: "auto_pad".into(), s: b"SAME_UPPER".to_vec(), ..Default::default() };
        assert!(!found(vec![same]));
        assert!(!found(vec![graph::attr_int("group", 0)]));
    }

    #[test]
    fn window_means_are_refused_when_the_shapes_disagree_with_the_conv() {
        let attrs = vec![graph::attr_ints("strides", &[2, 2]), graph::attr_ints("pads", &[1, 1, 1, 1])];
        let proto = network([24, 3, 3, 3], attrs).0;
        // ONNX's output for a 6 x 5 input, 3x3 kernel, stride 2, padding 1: 3 x 3.
        let shapes = |out: &'static [usize]| {
            move |t: &str| match t {
                "image" => Some(vec![C, H, W]),
                "c" => Some(out.to_vec()),
                _ => None,
            }
        };
        assert!(from_input_convs(&proto, shapes(&[24, 3, 3])).contains_key("c"));
        assert!(!from_input_convs(&proto, shapes(&[24, 4, 3])).contains_key("c"), "a grid ONNX would not compute");
        assert!(!from_input_convs(&proto, shapes(&[12, 3, 3])).contains_key("c"), "channels unlike the weight's");
        assert!(!from_input_convs(&proto, shapes(&[24, 3])).contains_key("c"), "not a map");
    }
}
