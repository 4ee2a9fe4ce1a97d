//! Classification accuracy of a model on CIFAR-10 (overall and per class).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inference::engine::{EngineConfig, Session};
use crate::inference::model::Model;
use crate::io::data::{Cifar10, CLASSES};

/// Accuracy figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Accuracy {
    /// Images evaluated.
    pub n: usize,
    /// Correct top-1 predictions.
    pub correct: usize,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Per-class top-1 accuracy in percent (label order).
    pub per_class: Vec<f64>,
}

/// Logits of `indices` images, `[n, classes]` row-major. `progress` is called with
/// the number of images done.
pub fn logits(
    model: &Model,
    session: &mut Session,
    data: &Cifar10,
    indices: &[usize],
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>> {
    model.require_frames_alone("accuracy on CIFAR-10")?;
    if model.input_shape != [3, 32, 32] {
        return Err(Error::Model(format!(
            "{} takes input [C, H, W] = {:?}, but CIFAR-10 images are [3, 32, 32]",
            model.name, model.input_shape
        )));
    }
    if indices.is_empty() {
        return Err(Error::param("images", "at least one image to evaluate", 0));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= data.len()) {
        return Err(Error::param("images", format!("indices 0..{}", data.len()), bad));
    }
    let mut out = Vec::new();
    for chunk in indices.chunks(session.batch()) {
        let frames: Vec<f32> = crate::evaluate::input_frames(model, data, chunk)?;
        let o = session.run(&frames, chunk.len())?;
        check_logits(&model.name, &o[0], chunk)?;
        out.extend_from_slice(&o[0].data);
        progress(chunk.len());
    }
    Ok(out)
}

/// Checks a batch's first output as CIFAR-10 logits: `[N, 10]`, every value finite
/// (`images[i]` is the test index of row `i`, for the error).
pub(crate) fn check_logits(model: &str, out: &crate::inference::engine::Output, images: &[usize]) -> Result<()> {
    let k = CLASSES.len();
    if out.shape.len() != 2 || out.shape[1] != k {
        return Err(Error::Model(format!(
            "{model}: the first output has shape {:?}; CIFAR-10 accuracy needs {k} logits per image, [N, {k}]",
            out.shape
        )));
    }
    if let Some(p) = out.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Model(format!(
            "{model}: logit {} of test image {} is {} (not a number a prediction can use)",
            p % k,
            images[p / k],
            out.data[p]
        )));
    }
    Ok(())
}

/// The predicted class of one row of logits: the first largest.
pub fn top1_class(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b })
}

/// Top-1 accuracy from logits `[n, classes]` and labels.
pub fn accuracy(logits: &[f32], labels: &[u8]) -> Accuracy {
    let k = logits.len() / labels.len().max(1);
    let mut per = [(0usize, 0usize); CLASSES.len()];
    let mut correct = 0;
    for (row, &y) in logits.chunks(k).zip(labels) {
        let hit = top1_class(row) == y as usize;
        correct += hit as usize;
        if let Some(p) = per.get_mut(y as usize) {
            p.0 += hit as usize;
            p.1 += 1;
        }
    }
    let pct = |a: usize, b: usize| if b == 0 { f64::NAN } else { 100.0 * a as f64 / b as f64 };
    Accuracy {
        n: labels.len(),
        correct,
        top1: pct(correct, labels.len()),
        per_class: per.iter().map(|&(a, b)| pct(a, b)).collect(),
    }
}

/// Evaluates `model` on the given images of `data`.
pub fn evaluate(
    model: &Model,
    data: &Cifar10,
    indices: &[usize],
    cfg: &EngineConfig,
    progress: impl FnMut(usize),
) -> Result<Accuracy> {
    let mut s = Session::for_model(model, &[], false, cfg)?;
    let l = logits(model, &mut s, data, indices, progress)?;
    let labels: Vec<u8> = indices.iter().map(|&i| data.label(i)).collect();
    Ok(accuracy(&l, &labels))
}

/// The model inputs `[n, C, H, W]` of CIFAR-10 images `indices`: fitted and normalized
/// per the model's preprocessing ([`Model::input_preprocess`]).
pub fn input_frames(model: &Model, data: &crate::io::data::Cifar10, indices: &[usize]) -> Result<Vec<f32>> {
    let pre = model.input_preprocess()?;
    let mut v = Vec::new();
    for &i in indices {
        v.extend(model.fit_image(data.image(i), "CIFAR-10")?.normalized(pre));
    }
    Ok(v)
}
