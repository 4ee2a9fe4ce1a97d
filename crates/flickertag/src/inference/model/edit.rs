//! Graph edits that expose taps: a tap's per-channel means `[N, C]` (or `[N, C, 1, 1]`)
//! or its maps `[N, C, H, W]`, laid out per its [`Layout`], added as graph outputs.

use onnx_protobuf::{GraphProto, ModelProto};

use super::graph;
use super::layout::Layout;

/// Graph edits that expose taps: built against one opset (ReduceMean takes its axes
/// as an attribute before 18, as an input from 18).
pub(crate) struct Editor<'a> {
    proto: &'a mut ModelProto,
    opset: i64,
}

impl<'a> Editor<'a> {
    /// An editor of `proto`.
    pub fn new(proto: &'a mut ModelProto) -> Self {
        let opset = graph::default_opset(proto);
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

    /// Adds a Cast of the float16 tensor `x` to float32; returns the cast's name.
    pub fn cast_to_float(&mut self, x: &str) -> String {
        let out = format!("flickertag.float32.{x}");
        self.push("Cast", &out, &[x], vec![graph::attr_int("to", graph::FLOAT as i64)]);
        out
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
            Layout::Clip { time } => {
                let at = self.at_time(out, x, time);
                self.reduce_mean(out, &at, &[2, 3, 4], false)
            }
            // The mean over the frame's whole block, as a hook on the module sees it.
            Layout::Arranged { channel_axis, .. } => {
                let rows = self.rows(out, x, s, channel_axis);
                self.reduce_mean(out, &rows, &[1], false)
            }
        }
        self.g().output.push(graph::value_info(out, None));
    }

    /// `x` of an arranged layout (per-frame shape `s`, channels on `channel_axis`) as
    /// `[N, rows, C]`: the channel axis moved last, each frame's block one batch row.
    fn rows(&mut self, out: &str, x: &str, s: &[usize], channel_axis: usize) -> String {
        // (`s` keeps the full tensor's rank: its first axis is the frame's share.)
        let r = s.len() as i64;
        let c = s[channel_axis];
        let mut x = x.to_string();
        if channel_axis as i64 != r - 1 {
            let perm: Vec<i64> = (0..r).filter(|&a| a != channel_axis as i64).chain([channel_axis as i64]).collect();
            let t = format!("{out}.channels_last");
            self.push("Transpose", &t, &[&x], vec![graph::attr_ints("perm", &perm)]);
            x = t;
        }
        let rows = s.iter().product::<usize>() / c.max(1);
        let shape = self.ints(&format!("{out}.rows_shape"), &[-1, rows as i64, c as i64]);
        let o = format!("{out}.rows");
        self.push("Reshape", &o, &[&x, &shape], vec![]);
        o
    }

    /// Adds nodes laying `x` of [`Layout::Arranged`] (per-frame shape and channel axis
    /// `(s, channel_axis)`) out as maps `[N, C, H, W]` named `out`: grid position `i`
    /// takes row `table[i]` of the frame's block.
    pub fn map_arranged(
        &mut self,
        out: &str,
        x: &str,
        (s, channel_axis): (&[usize], usize),
        table: &[i64],
        chw: [usize; 3],
    ) {
        let [c, h, w] = chw.map(|v| v as i64);
        let rows = self.rows(out, x, s, channel_axis);
        let i = self.ints(&format!("{out}.table"), table);
        let gathered = format!("{out}.gathered");
        self.push("Gather", &gathered, &[&rows, &i], vec![graph::attr_int("axis", 1)]);
        let t = format!("{out}.t");
        self.push("Transpose", &t, &[&gathered], vec![graph::attr_ints("perm", &[0, 2, 1])]);
        let shape = self.ints(&format!("{out}.shape"), &[0, c, h, w]);
        self.push("Reshape", out, &[&t, &shape], vec![]);
        self.g().output.push(graph::value_info(out, None));
    }

    /// `x` `[N, C, T, H, W]` at time position `time`, `[N, C, 1, H, W]`; returns its name.
    fn at_time(&mut self, out: &str, x: &str, time: usize) -> String {
        let i = self.ints(&format!("{out}.time"), &[time as i64]);
        let at = format!("{out}.at_time");
        self.push("Gather", &at, &[x, &i], vec![graph::attr_int("axis", 2)]);
        at
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
            Layout::Clip { time } => {
                let at = self.at_time(out, x, time);
                self.push("Reshape", out, &[&at, &shape], vec![]);
            }
            // Laid out by `map_arranged` with the tensor's table; without one, no map.
            Layout::Arranged { .. } => unreachable!("arranged maps are laid out by map_arranged"),
        }
        self.g().output.push(graph::value_info(out, None));
    }
}
