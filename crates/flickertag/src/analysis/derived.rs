//! Taps computed from other taps instead of by the network: a BatchNormalization is a
//! per-channel affine map `y = γ (x - μ) / sqrt(σ² + ε) + β`, so the spatial mean of its
//! output is that map applied to the spatial mean of its input. When a BatchNorm's input
//! conv is recorded too, its mean is derived in Rust and the graph gets one reduction
//! fewer (each costs a pass over the activations). Likewise the outputs of a frame
//! identical to an earlier one are that frame's outputs ([`repeat_rows`]).

use crate::inference::engine::{Output, TapInfo};
use crate::inference::model::graph::read_f32;
use crate::inference::model::{Model, TapKind};

/// For each tap: `Some((source tap, a, b))` when its per-channel mean is `a·x + b` of
/// the source tap's mean, `None` when the network computes it.
pub type DerivePlan = Vec<Option<(usize, Vec<f64>, Vec<f64>)>>;

/// Finds the BatchNorm taps whose input conv is among `taps`.
pub fn plan(model: &Model, taps: &[TapInfo]) -> DerivePlan {
    let g = model.proto.graph.as_ref().expect("checked at load");
    let init = |name: &str| g.initializer.iter().find(|t| t.name == name).and_then(read_f32);
    taps.iter()
        .map(|t| {
            if t.tap.kind != TapKind::Norm || t.tap.layout != crate::inference::model::Layout::ChannelsFirst {
                return None;
            }
            let bn =
                g.node.iter().find(|n| n.op_type == "BatchNormalization" && n.output.first() == Some(&t.tap.tensor))?;
            let src = taps.iter().position(|s| {
                s.tap.kind == TapKind::Conv && s.tap.layout == t.tap.layout && Some(&s.tap.tensor) == bn.input.first()
            })?;
            let p: Vec<Vec<f32>> = bn.input.get(1..5)?.iter().map(|n| init(n)).collect::<Option<_>>()?;
            let eps = bn.attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
            let c = t.shape[0];
            if p.iter().any(|v| v.len() != c) {
                return None;
            }
            let f = |v: f32| v as f64;
            let a: Vec<f64> = (0..c).map(|k| f(p[0][k]) / (f(p[3][k]) + f(eps)).sqrt()).collect();
            let b: Vec<f64> = (0..c).map(|k| f(p[1][k]) - a[k] * f(p[2][k])).collect();
            Some((src, a, b))
        })
        .collect()
}

/// Expands session outputs `[logits, computed taps..., rest...]` into
/// `[logits, every tap in order..., rest...]`.
pub fn expand(outs: Vec<Output>, plan: &DerivePlan) -> Vec<Output> {
    let mut it = outs.into_iter();
    let mut full = vec![it.next().expect("logits come first")];
    for p in plan {
        match p {
            None => full.push(it.next().expect("one output per computed tap")),
            Some((src, a, b)) => {
                let s = &full[1 + src];
                let c = a.len();
                let data = s.data.iter().enumerate().map(|(i, &x)| (a[i % c] * x as f64 + b[i % c]) as f32).collect();
                full.push(Output { shape: s.shape.clone(), data });
            }
        }
    }
    full.extend(it);
    full
}

/// Rebuilds outputs for every frame from those of the distinct frames: row `i` of
/// each result is row `row_of[i]` of the session output (`[distinct, ...]` →
/// `[row_of.len(), ...]`). Outputs already one row per frame pass through.
pub fn repeat_rows(outs: Vec<Output>, row_of: &[usize]) -> Vec<Output> {
    if row_of.iter().enumerate().all(|(i, &r)| i == r) {
        return outs;
    }
    outs.into_iter()
        .map(|o| {
            let per = o.data.len() / o.shape[0].max(1);
            let data = row_of.iter().flat_map(|&r| &o.data[r * per..(r + 1) * per]).copied().collect();
            let mut shape = o.shape;
            shape[0] = row_of.len();
            Output { shape, data }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_rows_copies_each_frame_from_its_distinct_row() {
        let o = Output { shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] };
        let r = repeat_rows(vec![o.clone()], &[0, 1, 1, 0]);
        assert_eq!(r[0].shape, vec![4, 3]);
        assert_eq!(r[0].data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
        assert_eq!(repeat_rows(vec![o.clone()], &[0, 1]), vec![o]);
    }
}
