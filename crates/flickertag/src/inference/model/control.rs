//! Control networks: the same architecture without what training put in its weights.
//! Comparing a trained network's responses with a control's, layer by layer, answers
//! "does training shape the response?", a question whose answer is not known in advance
//! (a random convolution also flickers at the tag frequencies).
//!
//! - [`Control::Permuted`]: each weight tensor's values shuffled (seeded): the same
//!   values, hence the same distribution per layer, with the learned structure gone.
//! - [`Control::RandomWeights`]: each weight tensor redrawn from a Gaussian with its own
//!   mean and standard deviation.
//!
//! Weights are the constant second inputs of Conv, ConvTranspose, Gemm and MatMul
//! nodes; biases and normalization parameters are kept, so activations keep their scale.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{graph, Model};
use crate::error::{Error, Result};

/// Which control network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Control {
    /// Each weight tensor's values shuffled.
    Permuted,
    /// Each weight tensor redrawn from a Gaussian of its mean and standard deviation.
    RandomWeights,
}

impl std::str::FromStr for Control {
    type Err = Error;
    fn from_str(s: &str) -> Result<Control> {
        match s {
            "permuted" => Ok(Control::Permuted),
            "random-weights" => Ok(Control::RandomWeights),
            _ => Err(Error::param("control", "one of permuted, random-weights", s)),
        }
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Permuted => "permuted",
            Control::RandomWeights => "random-weights",
        })
    }
}

impl Model {
    /// The control network of `kind` (seeded by `seed`), named `<name>.<kind>`. Taps,
    /// layouts and preprocessing are the model's. An error when the graph has no
    /// weight to change.
    pub fn control(&self, kind: Control, seed: u64) -> Result<Model> {
        let mut m = self.clone();
        let g = m.proto.graph.as_mut().expect("checked at load");
        let weights: std::collections::HashSet<String> = g
            .node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm" | "MatMul"))
            .filter_map(|n| n.input.get(1).cloned())
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut changed = 0;
        // A weight this cannot rewrite (float16, int8) would stay trained inside a
        // network reported as a control: refused, naming it.
        if let Some(t) = g.initializer.iter().find(|t| weights.contains(&t.name) && t.data_type != graph::FLOAT) {
            return Err(Error::param(
                "control",
                "a model whose Conv, Gemm and MatMul weights are float32 (controls redraw float32 weights; export \
                 the model in float32)",
                format!("{}, whose weight `{}` has ONNX element type {}", self.name, t.name, t.data_type),
            ));
        }
        for t in g.initializer.iter_mut().filter(|t| weights.contains(&t.name)) {
            let Some(mut v) = graph::read_f32(t) else { continue };
            if v.len() < 2 {
                continue;
            }
            match kind {
                Control::Permuted => v.shuffle(&mut rng),
                Control::RandomWeights => {
                    let n = v.len() as f64;
                    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
                    let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
                    for x in v.iter_mut() {
                        *x = (mean + sd * crate::io::data::standard_normal(&mut rng)) as f32;
                    }
                }
            }
            t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            t.float_data.clear();
            changed += 1;
        }
        if changed == 0 {
            return Err(Error::param("control", "a model with Conv, Gemm or MatMul weights to change", &self.name));
        }
        m.name = format!("{}.{kind}", self.name);
        m.sha256 = super::serialize::content_sha256(&m.proto);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_keep_each_weight_tensors_values_or_moments() {
        let m = Model::embedded_resnet32().unwrap();
        let w = |m: &Model, name: &str| -> Vec<f32> {
            let g = m.proto.graph.as_ref().unwrap();
            graph::read_f32(g.initializer.iter().find(|t| t.name == name).unwrap()).unwrap()
        };
        let name = "layer2.0.conv1.weight";
        let orig = w(&m, name);
        let p = m.control(Control::Permuted, 1).unwrap();
        let mut a = orig.clone();
        let mut b = w(&p, name);
        assert_ne!(a, b, "permuted");
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        assert_eq!(a, b, "the same values");
        let r = w(&m.control(Control::RandomWeights, 1).unwrap(), name);
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let sd = |v: &[f32]| {
            let m = mean(v);
            (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        assert!((mean(&r) - mean(&orig)).abs() < 0.1 * sd(&orig), "{} {}", mean(&r), mean(&orig));
        assert!((sd(&r) / sd(&orig) - 1.0).abs() < 0.05, "{} {}", sd(&r), sd(&orig));
        // Normalization parameters are kept.
        assert_eq!(w(&p, "layer2.0.bn1.weight"), w(&m, "layer2.0.bn1.weight"));
        assert_eq!(p.name, "resnet32.permuted");
    }
}
