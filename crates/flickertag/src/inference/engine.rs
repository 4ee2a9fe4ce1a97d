//! Inference with ONNX Runtime (through `ort`, loaded dynamically).
//!
//! The shared library is found, in order, at the path given to [`set_library_path`]
//! (the Python package gives its `onnxruntime` wheel's), at `ORT_DYLIB_PATH`, in the project's cache
//! `.cache/onnxruntime/<version>/libonnxruntime.so` (written by `scripts/fetch-ort.sh`,
//! which `make` runs), or in the user cache `~/.cache/flickertag/onnxruntime/<version>/`.
//! [`Session`] runs batches of `[N, C, H, W]` float32 frames and returns every graph
//! output as a flat row-major buffer with its shape.

use ort::value::TensorRef;

use crate::error::{runtime, Error, Result};
use crate::inference::model::time::Time;
use crate::inference::model::{Model, TapPoint};

use crate::inference::runtime::session_builder;

mod temporal;

/// Asked between inference batches: `true` stops the run with [`Error::Interrupted`]
/// (Python checks its signals here, so Ctrl-C stops a run within one batch).
pub type StopFn = dyn Fn() -> bool + Send + Sync;
pub use crate::inference::runtime::{
    available_providers, ort_library_candidates, provider_report, set_library_path, Device, ProviderReport, ORT_VERSION,
};

/// Execution settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Intra-op threads (0 = ONNX Runtime's default: one per core).
    pub threads: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Where the network runs ([`Device::Cpu`] or [`Device::Cuda`]), chosen at run time
    /// from the execution providers of the ONNX Runtime library that is loaded.
    pub device: Device,
    /// Let ONNX Runtime optimize the graph (all levels: constant folding, operator
    /// fusion, blocked layouts). Off only for one-off runs such as the shape probe,
    /// where optimizing costs more than it saves.
    pub optimize: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { threads: 0, batch: 80, device: Device::Cpu, optimize: true }
    }
}

/// One output of a run: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Shape, batch first.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// An ONNX Runtime session over one graph.
pub struct Session {
    inner: ort::session::Session,
    input: String,
    input_shape: [usize; 3],
    outputs: Vec<String>,
    /// Extra inputs fed with every run (e.g. ablation masks): name, shape, values.
    extra: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Frames per call used by [`Session::run_all`] (at least 1, checked when built).
    batch: usize,
    /// The only batch size the graph runs at (smaller batches are padded).
    fixed: Option<usize>,
    /// How the model relates frames ([`Model::time`]): [`Session::run_all`] runs a
    /// window of frames in time.
    time: Option<Time>,
    /// Frames a recurrent model runs before the recorded window (`None`: windows
    /// until its state settles).
    warmup: Option<usize>,
}

impl Session {
    /// Builds a session from serialized ONNX.
    pub fn new(onnx: &[u8], input: &str, input_shape: [usize; 3], cfg: &EngineConfig) -> Result<Session> {
        Session::from_onnx(&crate::inference::model::serialize::Onnx::Bytes(onnx.into()), input, input_shape, cfg)
    }

    fn from_onnx(
        onnx: &crate::inference::model::serialize::Onnx<'_>,
        input: &str,
        input_shape: [usize; 3],
        cfg: &EngineConfig,
    ) -> Result<Session> {
        if cfg.batch == 0 {
            return Err(Error::param("batch", "at least 1", 0));
        }
        let mut b = session_builder(cfg.threads, cfg.optimize)?;
        if cfg.device == Device::Cuda {
            b = crate::inference::runtime::with_cuda(b)?;
        }
        let inner = onnx.commit(b)?;
        let outputs = inner.outputs().iter().map(|o| o.name().to_string()).collect();
        Ok(Session {
            inner,
            input: input.to_string(),
            input_shape,
            outputs,
            extra: Vec::new(),
            batch: cfg.batch,
            fixed: None,
            time: None,
            warmup: None,
        })
    }

    /// A session over `model` whose outputs are its logits then, per tap, the
    /// per-channel mean `[N, C, 1, 1]` or (with `full`) the map `[N, C, H, W]`.
    pub fn for_model(model: &Model, taps: &[&TapPoint], full: bool, cfg: &EngineConfig) -> Result<Session> {
        if full {
            Session::for_outputs(model, &[], taps, cfg)
        } else {
            Session::for_outputs(model, taps, &[], cfg)
        }
    }

    /// A session whose outputs are the logits, the per-channel means of `means`, then
    /// the full maps of `full`.
    pub fn for_outputs(model: &Model, means: &[&TapPoint], full: &[&TapPoint], cfg: &EngineConfig) -> Result<Session> {
        let cfg = EngineConfig { batch: model.batch_for(cfg.batch), ..cfg.clone() };
        // The bytes live only while ONNX Runtime reads them (it keeps its own weights).
        let onnx = model.session_onnx(means, full)?;
        let mut s = Session::from_onnx(&onnx, &model.input_name, model.input_shape, &cfg)?;
        drop(onnx);
        s.fixed = model.fixed_batch;
        s.time = model.time.clone();
        Ok(s)
    }

    /// Frames a recurrent model runs before the recorded window, in place of running
    /// windows until its state settles ([`crate::inference::model::time`]); `None` restores that.
    pub fn set_warmup(&mut self, frames: Option<usize>) {
        self.warmup = frames;
    }

    /// This session for a graph that runs only at the fixed batch `fixed` (smaller
    /// batches are padded), as [`Model::fixed_batch`] says.
    pub(crate) fn with_fixed_batch(mut self, fixed: Option<usize>) -> Session {
        self.fixed = fixed;
        self
    }

    /// Sets an extra float input that every later run feeds (replacing one of that name).
    pub fn set_input(&mut self, name: &str, shape: &[usize], data: Vec<f32>) {
        self.extra.retain(|(n, _, _)| n != name);
        self.extra.push((name.to_string(), shape.to_vec(), data));
    }

    /// Output names, in the order [`Session::run`] returns them.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Frames per inference call in [`Session::run_all`] (at least 1).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs one batch: `frames` holds `n` images of `[C, H, W]`. Returns every output.
    /// A model with time ([`Model::time`]) has no response to a frame alone: refused
    /// (its windows run through [`Session::run_all`]).
    pub fn run(&mut self, frames: &[f32], n: usize) -> Result<Vec<Output>> {
        if let Some(t) = &self.time {
            return Err(Error::Model(format!(
                "a model with time runs windows of frames, not single frames ({})",
                t.describe()
            )));
        }
        self.run_padded(frames, n)
    }

    /// One call with `n` inputs (frames, or clips), padded to a fixed batch.
    fn run_padded(&mut self, frames: &[f32], n: usize) -> Result<Vec<Output>> {
        if let Some(b) = self.fixed.filter(|&b| b != n) {
            // A graph with a fixed batch: pad to it, keep the first n rows.
            if n > b {
                return Err(Error::param("batch", format!("at most {b} frames (the graph's fixed batch)"), n));
            }
            let mut padded = frames.to_vec();
            padded.resize(frames.len() / n.max(1) * b, 0.0);
            let mut outs = self.run_exact(&padded, b)?;
            for o in &mut outs {
                o.data.truncate(o.data.len() / b * n);
                o.shape[0] = n;
            }
            return Ok(outs);
        }
        self.run_exact(frames, n)
    }

    fn run_exact(&mut self, frames: &[f32], n: usize) -> Result<Vec<Output>> {
        let [c, h, w] = self.input_shape;
        let dims = match self.time {
            Some(Time::Clip { length }) => vec![n, c, length, h, w],
            _ => vec![n, c, h, w],
        };
        let want: usize = dims.iter().product();
        if frames.len() != want {
            return Err(Error::Model(format!("input holds {} values, expected {dims:?} = {want}", frames.len())));
        }
        let mut inputs: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> =
            vec![(self.input.as_str().into(), TensorRef::from_array_view((dims, frames)).map_err(runtime)?.into())];
        for (name, shape, data) in &self.extra {
            inputs.push((
                name.as_str().into(),
                TensorRef::from_array_view((shape.clone(), data.as_slice())).map_err(runtime)?.into(),
            ));
        }
        let outs = self.inner.run(inputs).map_err(runtime)?;
        let mut v = Vec::with_capacity(outs.len());
        for name in &self.outputs {
            let val = &outs[name.as_str()];
            let (shape, data) = val.try_extract_tensor::<f32>().map_err(runtime)?;
            let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            // Everything downstream splits outputs by frame: the batch must come first.
            if shape.first() != Some(&n) {
                return Err(Error::Model(format!(
                    "output `{name}` has shape {shape:?} for a batch of {n} frames; flickertag needs every \
                     output (logits first) batch-first, [N, ...]"
                )));
            }
            v.push(Output { shape, data: data.to_vec() });
        }
        Ok(v)
    }

    /// Runs `n` frames in batches of [`Session::batch()`], concatenating outputs along
    /// the batch axis. `stop` is asked before each batch ([`Error::Interrupted`]).
    /// For a model with time the `n` frames are one periodic window in time, and row
    /// `i` of each output is the response at frame `i` ([`crate::inference::model::time`]): of the clip ending
    /// there, or of the recurrent network in its steady state.
    pub fn run_all(&mut self, frames: &[f32], n: usize, stop: Option<&StopFn>) -> Result<Vec<Output>> {
        match self.time.clone() {
            None => self.run_frames(frames, n, stop),
            Some(Time::Clip { length }) => self.run_clips(frames, n, length, stop),
            Some(Time::Recurrent { states }) => self.run_recurrent(frames, n, &states, stop),
        }
    }

    fn run_frames(&mut self, frames: &[f32], n: usize, stop: Option<&StopFn>) -> Result<Vec<Output>> {
        let per = frames.len() / n.max(1);
        self.run_batches(n, stop, |start, k| std::borrow::Cow::Borrowed(&frames[start * per..(start + k) * per]))
    }

    /// Runs `n` rows in batches of [`Session::batch()`], `input(start, k)` giving the
    /// input of rows `start..start + k`; `stop` is asked before each batch.
    fn run_batches<'f>(
        &mut self,
        n: usize,
        stop: Option<&StopFn>,
        input: impl Fn(usize, usize) -> std::borrow::Cow<'f, [f32]>,
    ) -> Result<Vec<Output>> {
        let mut acc: Vec<Output> = Vec::new();
        let mut start = 0;
        while start < n {
            if stop.is_some_and(|s| s()) {
                return Err(Error::Interrupted);
            }
            let k = self.batch.min(n - start);
            concat(&mut acc, self.run_padded(&input(start, k), k)?);
            start += k;
        }
        Ok(acc)
    }
}

/// Appends `outs` to `acc` along the batch axis (`acc` empty: becomes `outs`).
fn concat(acc: &mut Vec<Output>, outs: Vec<Output>) {
    if acc.is_empty() {
        *acc = outs;
    } else {
        for (a, o) in acc.iter_mut().zip(outs) {
            a.shape[0] += o.shape[0];
            a.data.extend(o.data);
        }
    }
}

/// A tap with the shape of its output for one image: `[C, H, W]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TapInfo {
    /// The tap.
    #[serde(flatten)]
    pub tap: TapPoint,
    /// Output shape per image, `[C, H, W]` (or whatever rank the node has).
    pub shape: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demonstration ResNet-8 with its conv means recorded, and 7 frames.
    fn session(batch: usize) -> (Session, Vec<f32>) {
        let m = crate::inference::model::demo_model(3).unwrap();
        let taps: Vec<&TapPoint> = m.taps.iter().filter(|t| t.kind == crate::inference::model::TapKind::Conv).collect();
        let cfg = EngineConfig { threads: 1, batch, ..EngineConfig::default() };
        let s = Session::for_model(&m, &taps, false, &cfg).unwrap();
        let [c, h, w] = m.input_shape;
        let frames = (0..7 * c * h * w).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        (s, frames)
    }

    #[test]
    fn batches_concatenate_to_the_outputs_of_one_call() {
        let (mut one, frames) = session(7);
        let (mut three, _) = session(3);
        let a = one.run_all(&frames, 7, None).unwrap();
        let b = three.run_all(&frames, 7, None).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.shape, y.shape);
            assert_eq!(x.shape[0], 7);
            let worst = x.data.iter().zip(&y.data).map(|(u, v)| (u - v).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "batch 3 against batch 7: {worst}");
        }
    }

    #[test]
    fn a_stop_request_ends_the_run_before_the_next_batch() {
        let (mut s, frames) = session(3);
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        // Stop before the second of three batches.
        let stop = || CALLS.fetch_add(1, Ordering::SeqCst) >= 1;
        assert!(matches!(s.run_all(&frames, 7, Some(&stop)), Err(Error::Interrupted)));
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }
}
