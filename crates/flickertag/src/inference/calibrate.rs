//! Control networks at the trained network's operating point.
//!
//! A control ([`crate::inference::model::control`]) changes the weights and keeps everything else,
//! including normalization statistics estimated for the trained weights. Under them
//! the shuffled or redrawn convolutions feed their ReLUs values far from where the
//! trained network's are: on ResNet-32, about 70 % of the ReLU units never switched
//! (always on or always off over the images), and the "control" was a nearly linear
//! network. It then differed from the trained one in two things, not one.
//!
//! [`Model::calibrated`] puts every convolution of the control back at the trained
//! network's operating point, the way re-estimating BatchNorm statistics (or a
//! data-dependent initialisation) does: in graph order, each conv output channel `c`
//! is given the trained network's mean `μ_t` and standard deviation `σ_t` over the
//! calibration frames (all positions), by an affine change of its own weights and bias,
//! `W_c ← W_c · σ_t/σ_k`, `b_c ← (b_c − μ_k) · σ_t/σ_k + μ_t`, where `μ_k`, `σ_k` are the
//! control's, measured after the convs before it were calibrated. A conv followed by
//! its (trained) BatchNorm then feeds that BatchNorm what the trained conv fed it, up to
//! the second moment; a conv with its BatchNorm folded in is matched directly. Only
//! convolutions are calibrated: Linear layers (transformers) are followed by
//! LayerNorms that set their own operating point.
//!
//! [`Model::frozen_units`] measures what this repairs: per ReLU, the share of its units
//! (channel × position) whose input keeps one sign on every calibration frame.

use std::collections::HashMap;

use onnx_protobuf::ModelProto;

use crate::error::{Error, Result};
use crate::inference::engine::{EngineConfig, Session};
use crate::inference::model::{graph, serialize, Model};

/// Most frames a calibration pass runs (calibration frames beyond it are not used).
pub const MAX_CALIBRATION_FRAMES: usize = 512;

/// What calibration did to one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibratedConv {
    /// The conv's output tensor.
    pub tensor: String,
    /// Mean over channels of |μ_control − μ_trained| / σ_trained before calibration.
    pub mean_shift: f64,
    /// Mean over channels of σ_control / σ_trained before calibration.
    pub scale_ratio: f64,
}

/// Per ReLU: the share of units that never switched on the calibration frames.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenUnits {
    /// The ReLU's output tensor.
    pub tensor: String,
    /// Units (channel × position) of the ReLU.
    pub units: usize,
    /// Share of them whose input kept one sign (> 0 on every frame, or ≤ 0 on every frame).
    pub frozen: f64,
}

/// The convolutions that can be calibrated: standard Conv nodes with a float32
/// initializer weight used by no other node, and an initializer bias or none. Returns
/// (node index, output tensor, weight name, bias name).
fn convs(p: &ModelProto) -> Vec<(usize, String, String, Option<String>)> {
    let g = p.graph.as_ref().expect("checked at load");
    let inits: HashMap<&str, &onnx_protobuf::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &g.node {
        for x in &n.input {
            *uses.entry(x.as_str()).or_default() += 1;
        }
    }
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv" && (n.domain.is_empty() || n.domain == "ai.onnx") && n.output.len() == 1)
        .filter_map(|(i, n)| {
            let w = n.input.get(1)?;
            let wt = inits.get(w.as_str()).filter(|t| t.data_type == graph::FLOAT && t.dims.len() >= 3)?;
            let b = n.input.get(2).filter(|b| !b.is_empty());
            if uses.get(w.as_str()) != Some(&1) || b.is_some_and(|b| !inits.contains_key(b.as_str())) {
                return None;
            }
            if b.is_some_and(|b| uses.get(b.as_str()) != Some(&1)) || wt.dims[0] <= 0 {
                return None;
            }
            Some((i, n.output[0].clone(), w.clone(), b.cloned()))
        })
        .collect()
}

/// Per-channel mean and standard deviation over frames and positions of each tensor
/// of `tensors` (conv outputs `[N, C, ...]`), from one run of `proto` on `frames`.
fn channel_stats(
    model: &Model,
    proto: &ModelProto,
    tensors: &[&str],
    frames: &[f32],
    n: usize,
) -> Result<Vec<Vec<(f64, f64)>>> {
    let bytes = serialize::edited_bytes(proto, |p| {
        let g = p.graph.as_mut().expect("checked at load");
        g.output.clear();
        for (k, t) in tensors.iter().enumerate() {
            let sq = format!("flickertag.calibrate.sq{k}");
            g.node.push(graph::node("Mul", &sq, &[t, t], &[&sq], vec![]));
            for (x, out) in [
                (t.to_string(), format!("flickertag.calibrate.mean{k}")),
                (sq, format!("flickertag.calibrate.meansq{k}")),
            ] {
                g.node.push(graph::node("GlobalAveragePool", &out, &[&x], &[&out], vec![]));
                g.output.push(graph::value_info(&out, None));
            }
        }
    })?;
    let cfg = EngineConfig { threads: 0, batch: model.batch_for(64), ..EngineConfig::default() };
    let mut s = Session::new(&bytes, &model.input_name, model.input_shape, &cfg)?.with_fixed_batch(model.fixed_batch);
    let outs = s.run_all(frames, n, None)?;
    Ok(tensors
        .iter()
        .enumerate()
        .map(|(k, _)| {
            let (m, q) = (&outs[2 * k], &outs[2 * k + 1]);
            let c = m.shape.get(1).copied().unwrap_or(0);
            (0..c)
                .map(|ch| {
                    let mean = (0..n).map(|i| m.data[i * c + ch] as f64).sum::<f64>() / n as f64;
                    let sq = (0..n).map(|i| q.data[i * c + ch] as f64).sum::<f64>() / n as f64;
                    (mean, (sq - mean * mean).max(0.0).sqrt())
                })
                .collect()
        })
        .collect())
}

/// A trained network's operating point: per calibratable conv, in graph order, the
/// per-channel mean and standard deviation over the calibration frames. Measured once
/// ([`Model::operating_point`]) for any number of controls of that network.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatingPoint {
    target: Vec<Vec<(f64, f64)>>,
}

/// The first `n` (at most [`MAX_CALIBRATION_FRAMES`]) frames of `frames`, checked.
fn calibration_frames<'f>(m: &Model, frames: &'f [f32], n: usize) -> Result<(&'f [f32], usize)> {
    let n = n.min(MAX_CALIBRATION_FRAMES);
    let per = m.input_shape.iter().product::<usize>();
    if n < 2 || frames.len() < n * per {
        return Err(Error::param("calibration", "at least 2 frames", n));
    }
    Ok((&frames[..n * per], n))
}

impl Model {
    /// This (trained) network's [`OperatingPoint`] on the calibration `frames` (`n`
    /// frames `[C, H, W]`, preprocessed as the model expects).
    pub fn operating_point(&self, frames: &[f32], n: usize) -> Result<OperatingPoint> {
        let (frames, n) = calibration_frames(self, frames, n)?;
        let list = convs(&self.proto);
        if list.is_empty() {
            return Ok(OperatingPoint { target: Vec::new() });
        }
        let names: Vec<&str> = list.iter().map(|(_, t, _, _)| t.as_str()).collect();
        Ok(OperatingPoint { target: channel_stats(self, &self.proto, &names, frames, n)? })
    }

    /// This control network with every convolution put at `trained`'s operating point
    /// on the calibration `frames` (see [`Model::calibrated_at`]).
    pub fn calibrated(&self, trained: &Model, frames: &[f32], n: usize) -> Result<(Model, Vec<CalibratedConv>)> {
        self.calibrated_at(&trained.operating_point(frames, n)?, frames, n)
    }

    /// This control network with every convolution put at the operating `point` of the
    /// trained network it was made from, on the same calibration `frames` (see the
    /// module docs), and what calibration changed per conv (none, and the model
    /// unchanged, without convolutions). `self` must be a control of that network (the
    /// same graph, other weights).
    pub fn calibrated_at(
        &self,
        point: &OperatingPoint,
        frames: &[f32],
        n: usize,
    ) -> Result<(Model, Vec<CalibratedConv>)> {
        let (frames, n) = calibration_frames(self, frames, n)?;
        let list = convs(&self.proto);
        if list.is_empty() {
            // Nothing to calibrate (a transformer: its LayerNorms set the operating point).
            return Ok((self.clone(), Vec::new()));
        }
        if point.target.len() != list.len() {
            return Err(Error::param("control", "a control of the network whose operating point is given", &self.name));
        }
        let target = &point.target;
        let mut m = self.clone();
        let mut report = Vec::with_capacity(list.len());
        for (k, (node, tensor, w, b)) in list.iter().enumerate() {
            let now = channel_stats(&m, &m.proto, &[tensor.as_str()], frames, n)?.remove(0);
            let want = &target[k];
            let c = now.len().min(want.len());
            let scale: Vec<f64> = (0..c)
                .map(|ch| if now[ch].1 > 0.0 && want[ch].1 > 0.0 { want[ch].1 / now[ch].1 } else { 1.0 })
                .collect();
            let g = m.proto.graph.as_mut().expect("checked at load");
            let wt = g.initializer.iter_mut().find(|t| t.name == *w).expect("listed");
            let mut wv = graph::read_f32(wt).expect("float32 weight");
            let per_out = wv.len() / c.max(1);
            for ch in 0..c {
                wv[ch * per_out..(ch + 1) * per_out].iter_mut().for_each(|x| *x = (*x as f64 * scale[ch]) as f32);
            }
            wt.raw_data = wv.iter().flat_map(|x| x.to_le_bytes()).collect();
            wt.float_data.clear();
            let old_b = match b {
                Some(b) => {
                    graph::read_f32(g.initializer.iter().find(|t| t.name == *b).expect("listed")).expect("float bias")
                }
                None => vec![0.0; c],
            };
            let new_b: Vec<f32> =
                (0..c).map(|ch| ((old_b[ch] as f64 - now[ch].0) * scale[ch] + want[ch].0) as f32).collect();
            let bias_name = b.clone().unwrap_or_else(|| format!("flickertag.calibrate.bias{k}"));
            g.initializer.retain(|t| t.name != bias_name);
            g.initializer.push(graph::tensor_f32(&bias_name, &[c], &new_b));
            if b.is_none() {
                g.node[*node].input.truncate(2);
                g.node[*node].input.push(bias_name);
            }
            let shift =
                (0..c).map(|ch| (now[ch].0 - want[ch].0).abs() / want[ch].1.max(1e-12)).sum::<f64>() / c.max(1) as f64;
            let ratio = (0..c).map(|ch| now[ch].1 / want[ch].1.max(1e-12)).sum::<f64>() / c.max(1) as f64;
            report.push(CalibratedConv { tensor: tensor.clone(), mean_shift: shift, scale_ratio: ratio });
        }
        m.name = format!("{}.calibrated", self.name);
        m.sha256 = serialize::content_sha256(&m.proto);
        Ok((m, report))
    }

    /// Per ReLU of the graph (in graph order): the share of its units whose input kept
    /// one sign on all `n` calibration `frames`.
    pub fn frozen_units(&self, frames: &[f32], n: usize) -> Result<Vec<FrozenUnits>> {
        let (frames, n) = calibration_frames(self, frames, n)?;
        let g = self.proto.graph.as_ref().expect("checked at load");
        let relus: Vec<(String, String)> = g
            .node
            .iter()
            .filter(|x| x.op_type == "Relu" && x.input.len() == 1 && x.output.len() == 1)
            .map(|x| (x.input[0].clone(), x.output[0].clone()))
            .collect();
        if relus.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = serialize::edited_bytes(&self.proto, |p| {
            let g = p.graph.as_mut().expect("checked at load");
            g.output.clear();
            for (x, _) in &relus {
                g.output.push(graph::value_info(x, None));
            }
        })?;
        let cfg = EngineConfig { threads: 0, batch: self.batch_for(16), ..EngineConfig::default() };
        let mut s = Session::new(&bytes, &self.input_name, self.input_shape, &cfg)?.with_fixed_batch(self.fixed_batch);
        let outs = s.run_all(frames, n, None)?;
        Ok(relus
            .iter()
            .zip(outs)
            .map(|((_, y), o)| {
                let units = o.data.len() / n;
                let (mut on, mut off) = (vec![true; units], vec![true; units]);
                for f in o.data.chunks_exact(units) {
                    for (u, &v) in f.iter().enumerate() {
                        on[u] &= v > 0.0;
                        off[u] &= v <= 0.0;
                    }
                }
                let frozen = (0..units).filter(|&u| on[u] || off[u]).count();
                FrozenUnits { tensor: y.clone(), units, frozen: frozen as f64 / units.max(1) as f64 }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::model::control::Control;
    use crate::signal::stimulus::StimulusConfig;

    /// The embedded ten images, four frames each of the paper's stimulus (t = 0, 1/4,
    /// 1/2, 3/4 of the 6 Hz period), preprocessed for ResNet-32.
    fn frames(m: &Model) -> (Vec<f32>, usize) {
        let pre = m.input_preprocess().unwrap();
        let plan = StimulusConfig::default().plan(32, 32).unwrap();
        let mut v = Vec::new();
        let imgs = crate::io::embedded::paper_images();
        for img in &imgs {
            v.extend(plan.frames_at(img, pre, &[0, 5, 10, 15]).unwrap());
        }
        (v, imgs.len() * 4)
    }

    fn mean_frozen(f: &[FrozenUnits]) -> f64 {
        f.iter().map(|x| x.frozen).sum::<f64>() / f.len() as f64
    }

    #[test]
    fn stale_statistics_freeze_the_controls_relus_and_calibration_restores_the_operating_point() {
        // Known answer: shuffled weights under the trained BatchNorm statistics leave
        // most ReLU units never switching; put back at the trained operating point,
        // the control's ReLUs switch about as often as the trained network's.
        let trained = Model::embedded_resnet32().unwrap();
        let (f, n) = frames(&trained);
        let t = mean_frozen(&trained.frozen_units(&f, n).unwrap());
        for kind in [Control::Permuted, Control::RandomWeights] {
            let stale = trained.control(kind, 0).unwrap();
            let s = mean_frozen(&stale.frozen_units(&f, n).unwrap());
            let (cal, report) = stale.calibrated(&trained, &f, n).unwrap();
            let c = mean_frozen(&cal.frozen_units(&f, n).unwrap());
            eprintln!("{kind}: frozen ReLU units, trained {t:.3}, stale control {s:.3}, calibrated {c:.3}");
            assert_eq!(report.len(), 31, "every conv of ResNet-32");
            assert!(s > t + 0.25, "{kind}: stale control {s:.3} frozen vs trained {t:.3}");
            assert!((c - t).abs() < 0.1, "{kind}: calibrated control {c:.3} frozen vs trained {t:.3}");
        }
    }

    #[test]
    fn calibrated_convs_have_the_trained_channel_means_and_deviations() {
        let trained = Model::embedded_resnet32().unwrap();
        let (f, n) = frames(&trained);
        let (cal, _) = trained.control(Control::Permuted, 1).unwrap().calibrated(&trained, &f, n).unwrap();
        let list = convs(&trained.proto);
        let names: Vec<&str> = list.iter().map(|(_, t, _, _)| t.as_str()).collect();
        let want = channel_stats(&trained, &trained.proto, &names, &f, n).unwrap();
        let got = channel_stats(&cal, &cal.proto, &names, &f, n).unwrap();
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            for ((wm, ws), (gm, gs)) in w.iter().zip(g) {
                assert!((wm - gm).abs() <= 1e-3 * ws.max(1e-3), "conv {k}: mean {gm} vs {wm}");
                assert!((ws - gs).abs() <= 1e-3 * ws.max(1e-3), "conv {k}: sd {gs} vs {ws}");
            }
        }
    }
}
