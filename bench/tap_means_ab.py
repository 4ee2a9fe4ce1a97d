"""Ways of recording every conv's per-channel mean, timed against each other in
onnxruntime-python: what `crates/flickertag/src/inference/model/conv_means.rs` chose
between (its module doc and docs/benchmarks.md cite these figures).

    .venv/bin/python bench/tap_means_ab.py MODEL.onnx [--rounds 8] [--batch 5] [--threads 2]
        [--strategies none,output,pointwise,half-windows,windows-all]

Strategies (every `Conv` with an initializer weight is tapped):
- `none`: no taps (plain inference, the reference);
- `output`: a `GlobalAveragePool` of each conv's output;
- `pointwise`: flickertag's rule: the input's pool for an expanding pointwise conv
  (stride 1, no padding), else the output's pool;
- `half-windows`: as `pointwise`, and the input's windows for a conv whose input holds
  at most half as many values as its output (tried in flickertag and reverted);
- `windows-all`: as `pointwise`, and the input's windows for every conv whose windows
  fit, whatever the sizes.

The windows: two depthwise convs with constant kernels sum the input over each kernel
offset's window (`1 x W'` dilated by the stride, then `H' x 1`), and the conv's weights
applied to those means give its mean. Each strategy has its own session (spinning
stopped between runs, as flickertag sets it); rounds are interleaved (A B C, B C A,
...) and each times 6 batches of random frames by CPU time. Printed: median frames per
CPU-second, every round, and the ratio to the first strategy; first, each strategy's
means against `output`'s (largest difference relative to the largest mean)."""

import argparse
import time
from collections import namedtuple

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def ints(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else [a.i]
    return default


# A conv's windows: input channels, output grid [Ho, Wo], pads with the end ones
# trimmed, strides, dilations, and the values per frame of its input and output.
Windows = namedtuple("Windows", "channels grid pads strides dilations input_values output_values")


def windows(node, shapes, weights):
    """The :class:`Windows` of a 2-D conv, or None where they do not fit (auto_pad, or a
    stride that leaves input rows or columns unread)."""
    co, per_group, kh, kw = weights[node.input[1]].dims
    ci = per_group * ints(node, "group", [1])[0]
    if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in node.attribute):
        return None
    (h, w), (ho, wo) = shapes[node.input[0]], shapes[node.output[0]]
    s, d = ints(node, "strides", [1, 1]), ints(node, "dilations", [1, 1])
    pt, pl, pb, pr = ints(node, "pads", [0, 0, 0, 0])
    bottom = (kh - 1) * d[0] + (ho - 1) * s[0] + 1 - h - pt
    right = (kw - 1) * d[1] + (wo - 1) * s[1] + 1 - w - pl
    if not (0 <= bottom <= pb and 0 <= right <= pr):
        return None
    return Windows(ci, [ho, wo], [pt, pl, bottom, right], s, d, ci * h * w, co * ho * wo)


def tapped(src, strategy, shapes):
    m = onnx.ModelProto()
    m.CopyFrom(src)
    g = m.graph
    del g.output[1:]
    weights = {t.name: t for t in src.graph.initializer}
    pooled = set()
    for n in list(src.graph.node):
        if n.op_type != "Conv" or n.input[1] not in weights or len(weights[n.input[1]].dims) != 4 or strategy == "none":
            continue
        co, per_group, kh, kw = weights[n.input[1]].dims
        group = ints(n, "group", [1])[0]
        mean, bias = "mean." + n.output[0], list(n.input[2:3])
        pointwise = [kh, kw] == [1, 1] and ints(n, "strides", [1, 1]) == [1, 1] and ints(n, "pads", [0] * 4) == [0] * 4
        win = windows(n, shapes, weights) if strategy in ("half-windows", "windows-all") and not pointwise else None
        if strategy != "output" and pointwise and per_group * group < co:
            p = "pool." + n.input[0]
            if p not in pooled:
                g.node.append(helper.make_node("GlobalAveragePool", [n.input[0]], [p]))
                pooled.add(p)
            g.node.append(helper.make_node("Conv", [p, n.input[1]] + bias, [mean], kernel_shape=[1, 1], group=group))
        elif win and (strategy == "windows-all" or 2 * win.input_values <= win.output_values):
            ci, (ho, wo), (pt, pl, pb, pr), s, d = win.channels, win.grid, win.pads, win.strides, win.dilations
            rows, cols = "rows." + n.output[0], "windows." + n.output[0]
            for name, shape, length in [(rows, (ci, 1, 1, wo), wo), (cols, (ci, 1, ho, 1), ho)]:
                g.initializer.append(numpy_helper.from_array(np.full(shape, 1.0 / length, np.float32), name + ".k"))
            g.node.append(helper.make_node("Conv", [n.input[0], rows + ".k"], [rows], kernel_shape=[1, wo], group=ci,
                                           pads=[0, pl, 0, pr], dilations=[1, s[1]], strides=[1, d[1]]))
            g.node.append(helper.make_node("Conv", [rows, cols + ".k"], [cols], kernel_shape=[ho, 1], group=ci,
                                           pads=[pt, 0, pb, 0], dilations=[s[0], 1], strides=[d[0], 1]))
            g.node.append(helper.make_node("Conv", [cols, n.input[1]] + bias, [mean], kernel_shape=[kh, kw], group=group))
        else:
            g.node.append(helper.make_node("GlobalAveragePool", [n.output[0]], [mean]))
        g.output.append(helper.make_value_info(mean, onnx.TypeProto()))
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strategies", default="none,output,pointwise,half-windows,windows-all")
    a = ap.parse_args()

    src = onnx.load(a.model)
    inferred = onnx.shape_inference.infer_shapes(src)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][2:]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    names = a.strategies.split(",")
    known = ["none", "output", "pointwise", "half-windows", "windows-all"]
    if any(k not in known for k in names):
        ap.error(f"--strategies: a comma-separated list of {', '.join(known)} (got {a.strategies!r})")
    sessions = {}
    for k in names:
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.add_session_config_entry("session.force_spinning_stop", "1")
        sessions[k] = ort.InferenceSession(tapped(src, k, shapes).SerializeToString(), so,
                                           providers=["CPUExecutionProvider"])
    inp = src.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    x = np.random.default_rng(0).random((a.batch, *dims), dtype=np.float32)
    ref = sessions["output"].run(None, {inp.name: x}) if "output" in sessions else None
    for k in names:
        out = sessions[k].run(None, {inp.name: x})
        if ref is not None and k != "none":
            worst = max(float(np.abs(u - v).max() / (np.abs(v).max() + 1e-12)) for u, v in zip(out[1:], ref[1:]))
            print(f"{k}: {len(out) - 1} means, largest difference from `output`'s: {worst:.2e} of the largest mean")
    rates = {k: [] for k in names}
    for r in range(a.rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.process_time()
            for _ in range(6):
                sessions[k].run(None, {inp.name: x})
            rates[k].append(6 * a.batch / (time.process_time() - t0))
    base = float(np.median(rates[names[0]]))
    print(f"{a.model}: batch {a.batch}, {a.threads} threads, {a.rounds} interleaved rounds of 6 batches")
    for k in names:
        med = float(np.median(rates[k]))
        print(f"  {k:<12} {med:7.3f} frames per CPU-s ({100 * med / base:5.1f} % of {names[0]}); rounds "
              + " ".join(f"{v:.2f}" for v in rates[k]))


if __name__ == "__main__":
    main()
