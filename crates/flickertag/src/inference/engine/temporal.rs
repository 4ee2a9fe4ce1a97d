//! How a [`Session`] runs a model with time ([`crate::inference::model::time`]): the
//! window's clips a batch at a time, or a recurrent model frame by frame with its
//! states fed back until they settle.

use super::{concat, Output, Session, StopFn};
use crate::error::{Error, Result};
use crate::inference::model::time::{self, StateLink};

impl Session {
    /// The window's clips, a batch at a time ([`time::clips`]).
    pub(super) fn run_clips(
        &mut self,
        frames: &[f32],
        n: usize,
        length: usize,
        stop: Option<&StopFn>,
    ) -> Result<Vec<Output>> {
        let chw = self.input_shape;
        self.run_batches(n, stop, |start, k| std::borrow::Cow::Owned(time::clips(frames, n, chw, length, start, k)))
    }

    /// The window run frame by frame with the states fed back: after `warmup` frames
    /// (the window's last ones, periodically) when set, else windows until the state
    /// at a window's end equals the state at its start ([`time::SETTLED`]); the last
    /// window is the one returned.
    pub(super) fn run_recurrent(
        &mut self,
        frames: &[f32],
        n: usize,
        states: &[StateLink],
        stop: Option<&StopFn>,
    ) -> Result<Vec<Output>> {
        let per = frames.len() / n.max(1);
        let mut state: Vec<Vec<f32>> = states.iter().map(|s| vec![0.0; s.shape.iter().product()]).collect();
        let frame = |i: usize| &frames[i * per..(i + 1) * per];
        let stopped = |k: usize| k.is_multiple_of(64) && stop.is_some_and(|s| s());
        if let Some(w) = self.warmup {
            for j in 0..w {
                if stopped(j) {
                    return Err(Error::Interrupted);
                }
                // Frame j - w of the periodic window; its outputs are not kept.
                self.step(frame((j + n - w % n) % n), states, &mut state)?;
            }
        }
        let window = |this: &mut Session, state: &mut Vec<Vec<f32>>| -> Result<Vec<Output>> {
            let mut acc = Vec::new();
            for i in 0..n {
                if stopped(i) {
                    return Err(Error::Interrupted);
                }
                concat(&mut acc, this.step(frame(i), states, state)?);
            }
            Ok(acc)
        };
        if self.warmup.is_some() {
            return window(self, &mut state);
        }
        let mut change = f64::NAN;
        for _ in 0..time::MAX_WINDOWS {
            let before = state.clone();
            let acc = window(self, &mut state)?;
            change = time::relative_change(&before, &state);
            if change <= time::SETTLED {
                return Ok(acc);
            }
        }
        Err(Error::Model(format!(
            "the recurrent state did not settle: after {} windows of {n} frames it still changes by {change:.2e} \
             (relative) over a window, above {:.0e}, so the network's response is not periodic in the window (does \
             it oscillate on its own?); pass a warm-up (`--warmup FRAMES`, Python `warmup=`) to record the window \
             after that many frames instead",
            time::MAX_WINDOWS,
            time::SETTLED
        )))
    }
    /// One frame of a recurrent model: feeds `state`, runs, and replaces `state` by the
    /// next one; returns the other outputs.
    fn step(&mut self, frame: &[f32], states: &[StateLink], state: &mut [Vec<f32>]) -> Result<Vec<Output>> {
        for (link, s) in states.iter().zip(state.iter_mut()) {
            self.set_input(&link.input, &[&[1][..], &link.shape].concat(), std::mem::take(s));
        }
        let mut outs = self.run_padded(frame, 1)?;
        let next = outs.split_off(outs.len() - states.len());
        for (s, o) in state.iter_mut().zip(next) {
            *s = o.data;
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use onnx_protobuf::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

    use super::*;
    use crate::inference::engine::EngineConfig;
    use crate::inference::model::graph::{self, node};
    use crate::inference::model::{Layout, Model, Time};

    /// A model of `nodes` on float inputs `inputs` (name, dims; `None` = batch) with
    /// outputs `outputs`, weights `inits` and metadata `meta`.
    fn model(
        nodes: Vec<NodeProto>,
        inputs: &[(&str, &[Option<i64>])],
        outputs: &[&str],
        inits: Vec<TensorProto>,
        meta: &[(&str, &str)],
    ) -> Result<Model> {
        let proto = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17, ..Default::default() }],
            graph: protobuf::MessageField::some(GraphProto {
                node: nodes,
                input: inputs.iter().map(|(n, d)| graph::value_info(n, Some(d))).collect(),
                output: outputs.iter().map(|o| graph::value_info(o, None)).collect(),
                initializer: inits,
                ..Default::default()
            }),
            metadata_props: meta.iter().map(|(k, v)| graph::meta(k, v)).collect(),
            ..Default::default()
        };
        Model::from_proto(proto, std::path::Path::new("t.onnx"), "t")
    }

    /// `x[t]`, a window of `n` frames with lines at bins 3, 6 and 9 (a fundamental and
    /// its harmonics) and a mean, each frame `[1, 2, 2]` of that value.
    fn signal(n: usize) -> (Vec<f64>, Vec<f32>) {
        let x: Vec<f64> = (0..n)
            .map(|t| {
                let p = 2.0 * PI * t as f64 / n as f64;
                0.3 + (3.0 * p).sin() + 0.5 * (6.0 * p + 0.4).cos() + 0.2 * (9.0 * p).sin()
            })
            .collect();
        let frames = x.iter().flat_map(|&v| [v as f32; 4]).collect();
        (x, frames)
    }

    /// The DFT of `x` at bin `k`, from its definition.
    fn dft(x: &[f64], k: usize) -> (f64, f64) {
        let n = x.len() as f64;
        x.iter().enumerate().fold((0.0, 0.0), |(re, im), (t, &v)| {
            let a = -2.0 * PI * k as f64 * t as f64 / n;
            (re + v * a.cos(), im + v * a.sin())
        })
    }

    fn mul(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }

    /// The per-channel mean of the tap of tensor `tensor` over a window, run by `s`.
    fn tap_series(m: &Model, tensor: &str, frames: &[f32], n: usize, warmup: Option<usize>) -> Result<Vec<f64>> {
        let tap = m.taps.iter().find(|t| t.tensor == tensor).expect("a tap");
        let cfg = EngineConfig { threads: 1, batch: 7, ..EngineConfig::default() };
        let mut s = Session::for_model(m, &[tap], false, &cfg)?;
        s.set_warmup(warmup);
        assert!(s.run(frames, n).unwrap_err().to_string().contains("windows of frames"));
        let outs = s.run_all(frames, n, None)?;
        assert_eq!(outs.len(), 2, "the logits and the tap, no state");
        assert_eq!(outs[1].shape[0], n);
        Ok(outs[1].data.iter().map(|&v| v as f64).collect())
    }

    #[test]
    fn a_three_tap_temporal_convolution_gives_the_lines_and_phases_of_its_transfer_function() {
        // y[t] = w0 x[t-2] + w1 x[t-1] + w2 x[t] (kernel positions are clip time positions,
        // the newest last): Y[k] = H(k) X[k], H(k) = sum_j w_j exp(-2 pi i k (2 - j) / n).
        let w = [0.5f32, -1.25, 2.0];
        let conv = node("Conv", "/tconv/Conv", &["clip", "w"], &["y"], vec![]);
        let m = model(
            vec![conv],
            &[("clip", &[None, Some(1), Some(3), Some(2), Some(2)])],
            &["y"],
            vec![graph::tensor_f32("w", &[1, 1, 3, 1, 1], &w)],
            &[],
        )
        .unwrap();
        assert_eq!(m.time, Some(Time::Clip { length: 3 }));
        assert_eq!(m.input_shape, [1, 2, 2]);
        let tap = m.taps.iter().find(|t| t.tensor == "y").unwrap();
        assert_eq!((tap.layout, tap.chw), (Layout::Clip { time: 0 }, [1, 2, 2]));
        let n = 40;
        let (x, frames) = signal(n);
        let y = tap_series(&m, "y", &frames, n, None).unwrap();
        for k in [0, 3, 6, 9] {
            let h = w.iter().enumerate().fold((0.0, 0.0), |(re, im), (j, &wj)| {
                let a = -2.0 * PI * k as f64 * (2 - j) as f64 / n as f64;
                (re + wj as f64 * a.cos(), im + wj as f64 * a.sin())
            });
            let want = mul(h, dft(&x, k));
            let got = dft(&y, k);
            let err = (got.0 - want.0).hypot(got.1 - want.1);
            assert!(err <= 1e-4 * want.0.hypot(want.1).max(1.0), "bin {k}: {got:?} against {want:?}");
        }
        // Bins without a line in the input have none in the output.
        assert!(dft(&y, 4).0.hypot(dft(&y, 4).1) < 1e-4);
    }

    /// `h' = a h + x` on `[1, 2, 2]` frames, the state named by metadata (both inputs
    /// have an image's shape), the logits its spatial mean.
    fn leaky(a: f32) -> Model {
        let nodes = vec![
            node("Mul", "/cell/Mul", &["h", "a"], &["ah"], vec![]),
            node("Add", "/cell/Add", &["ah", "image"], &["h_next"], vec![]),
            node("GlobalAveragePool", "/pool/GlobalAveragePool", &["h_next"], &["logits"], vec![]),
        ];
        let dims = [None, Some(1), Some(2), Some(2)];
        let inputs: &[(&str, &[Option<i64>])] = &[("image", &dims), ("h", &dims)];
        let a = vec![graph::tensor_f32("a", &[1], &[a])];
        model(nodes, inputs, &["logits", "h_next"], a, &[("flickertag.state", "h:h_next")]).unwrap()
    }

    #[test]
    fn a_leaky_integrator_settles_to_the_steady_state_its_transfer_function_predicts() {
        // Y[k] = X[k] / (1 - a exp(-2 pi i k / n)), in the periodic steady state.
        let a = 0.8;
        let m = leaky(a);
        let Some(Time::Recurrent { states }) = &m.time else { panic!("{:?}", m.time) };
        assert_eq!((states[0].input.as_str(), states[0].output.as_str()), ("h", "h_next"));
        let n = 40;
        let (x, frames) = signal(n);
        let settled = tap_series(&m, "h_next", &frames, n, None).unwrap();
        let warmed = tap_series(&m, "h_next", &frames, n, Some(400)).unwrap();
        for k in [0, 3, 6, 9] {
            let p = -2.0 * PI * k as f64 / n as f64;
            let (dr, di) = (1.0 - a as f64 * p.cos(), -(a as f64) * p.sin());
            let d2 = dr * dr + di * di;
            let want = mul(dft(&x, k), (dr / d2, -di / d2));
            for (what, y) in [("settled", &settled), ("warm-up", &warmed)] {
                let got = dft(y, k);
                let err = (got.0 - want.0).hypot(got.1 - want.1);
                assert!(err <= 1e-4 * want.0.hypot(want.1).max(1.0), "{what}, bin {k}: {got:?} against {want:?}");
            }
        }
    }

    #[test]
    fn a_state_that_never_settles_is_an_error_that_names_the_warmup() {
        // An integrator of a signal with a mean grows without end.
        let (_, frames) = signal(40);
        let e = tap_series(&leaky(1.0), "h_next", &frames, 40, None).unwrap_err().to_string();
        assert!(e.contains("did not settle") && e.contains("--warmup"), "{e}");
        // With a warm-up it runs (the response is then what it is).
        assert!(tap_series(&leaky(1.0), "h_next", &frames, 40, Some(10)).is_ok());
    }

    #[test]
    fn two_image_shaped_inputs_without_state_metadata_are_refused_naming_it() {
        let nodes = vec![node("Add", "/cell/Add", &["h", "image"], &["h_next"], vec![])];
        let dims = [None, Some(1), Some(2), Some(2)];
        let inputs: &[(&str, &[Option<i64>])] = &[("image", &dims), ("h", &dims)];
        let e = model(nodes, inputs, &["h_next"], vec![], &[]).unwrap_err().to_string();
        assert!(e.contains("flickertag.state") && e.contains("\"image\""), "{e}");
    }
}
