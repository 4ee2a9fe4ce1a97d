//! Models with time: networks in which frames interact, found from the graph's inputs.
//!
//! - A **clip model** takes `[N, C, T, H, W]` (3-D convolutional video networks such
//!   as torchvision's `r3d_18`). The response at frame `t` is the network's output for
//!   the clip of the `T` frames ending at `t` (a sliding window, stride one frame), read
//!   at the clip's centre time position `T'/2` of each tap `[C, T', H', W']`
//!   ([`super::Layout::Clip`]). The window is periodic: the first clips see the
//!   window's last frames before its first, as in the steady state of a stimulus that
//!   has been running (with the tags on bins, a flicker is exactly periodic in the
//!   window).
//! - A **recurrent model** takes the image `[N, C, H, W]` and one or more state inputs,
//!   each fed back from a graph output that carries the next state. Frames run one by
//!   one, the state starting at zeros. Unless a warm-up is given, the window is run
//!   again and again until the state at its end equals the state at its start (to
//!   [`SETTLED`] relative), so that the recorded window is the periodic steady state;
//!   one that does not settle in [`MAX_WINDOWS`] windows is an error that says so.
//!
//! States are paired with outputs by the model's metadata `flickertag.state`
//! (`"h:h_next"`, pairs separated by commas) or, without it, by shape: a state input
//! whose per-frame shape only one later graph output has.

use onnx_protobuf::ModelProto;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest relative change of the state over one window for it to count as settled
/// (float32 arithmetic of a settled state changes it by about 1e-7).
pub const SETTLED: f64 = 1e-4;

/// Most windows a recurrent model is run to settle (the last one is recorded).
pub const MAX_WINDOWS: usize = 16;

/// Most frames of a clip model's clip.
pub const MAX_CLIP: usize = 256;

/// One state of a recurrent model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLink {
    /// The graph input that takes the state.
    pub input: String,
    /// The graph output that gives the next state.
    pub output: String,
    /// Shape per frame (without the batch axis).
    pub shape: Vec<usize>,
}

/// How a model relates the frames it sees (`None` in [`super::Model::time`]: each
/// frame alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Time {
    /// Input `[N, C, T, H, W]`: each response is that of the clip of the last `length` frames.
    Clip {
        /// `T`, frames per clip.
        length: usize,
    },
    /// States fed back from outputs, frame after frame.
    Recurrent {
        /// The states, in input order.
        states: Vec<StateLink>,
    },
}

impl Time {
    /// One line for notes and reports.
    pub fn describe(&self) -> String {
        match self {
            Time::Clip { length } => format!(
                "clip model: each frame's response is the network's output for the clip of the last {length} \
                 frames (sliding by one frame, the window periodic), read at each tap's centre time position"
            ),
            Time::Recurrent { states } => format!(
                "recurrent model: frames run one by one, {} fed back (zeros at the start), the window repeated \
                 until the state settles",
                states
                    .iter()
                    .map(|s| format!("`{}` from `{}` {:?}", s.input, s.output, s.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The pairs named by the metadata `flickertag.state` (`"h:h_next, c:c_next"`), if any.
pub(crate) fn metadata_pairs(proto: &ModelProto) -> Result<Option<Vec<(String, String)>>> {
    let Some(v) = proto.metadata_props.iter().find(|p| p.key == "flickertag.state") else { return Ok(None) };
    let pairs = v
        .value
        .split(',')
        .map(|p| match p.split_once(':') {
            Some((i, o)) if !i.trim().is_empty() && !o.trim().is_empty() => Ok((i.trim().into(), o.trim().into())),
            _ => Err(Error::Model(format!(
                "metadata `flickertag.state` is `{}`: expected `input:output` pairs such as `h:h_next` (state input, \
                 then the output that gives the next state), separated by commas",
                v.value
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(pairs))
}

/// Pairs each state input (name, per-frame shape) with the output that gives its next
/// state: by `named` pairs when given, else by shape among `outputs` (name, per-frame
/// shape, or `None` when unknown) other than the first (the logits).
pub(crate) fn pair_states(
    states: &[(String, Vec<usize>)],
    outputs: &[(String, Option<Vec<usize>>)],
    named: Option<&[(String, String)]>,
) -> Result<Vec<StateLink>> {
    let hint = "name the pairs in the model's metadata `flickertag.state` = `input:output` (in Python: \
                `m.metadata_props.add(key=\"flickertag.state\", value=\"h:h_next\")` with the onnx package)";
    let mut links = Vec::new();
    for (name, shape) in states {
        let output = match named {
            Some(pairs) => pairs.iter().find(|(i, _)| i == name).map(|(_, o)| o.clone()).ok_or_else(|| {
                Error::Model(format!("state input `{name}` is in no pair of the metadata `flickertag.state`"))
            })?,
            None => {
                let same: Vec<&String> =
                    outputs.iter().skip(1).filter(|(_, s)| s.as_ref() == Some(shape)).map(|(o, _)| o).collect();
                match same.as_slice() {
                    [o] => (*o).clone(),
                    [] => {
                        return Err(Error::Model(format!(
                            "the model takes `{name}` {shape:?} besides the image, and no output after the first has \
                             that shape: a recurrent model gives its next state as an output; {hint}"
                        )))
                    }
                    many => {
                        return Err(Error::Model(format!(
                            "state input `{name}` {shape:?}: outputs {many:?} all have its shape; {hint}"
                        )))
                    }
                }
            }
        };
        let Some((_, out_shape)) = outputs.iter().skip(1).find(|(o, _)| *o == output) else {
            return Err(Error::Model(format!(
                "state input `{name}` is paired with `{output}`, which is not an output after the first: outputs are \
                 {:?}",
                outputs.iter().map(|(o, _)| o).collect::<Vec<_>>()
            )));
        };
        if out_shape.as_ref().is_some_and(|s| s != shape) {
            return Err(Error::Model(format!(
                "state input `{name}` {shape:?} is paired with `{output}` of shape {:?}: they must match",
                out_shape.as_ref().expect("checked")
            )));
        }
        if links.iter().any(|l: &StateLink| l.output == output) {
            return Err(Error::Model(format!("output `{output}` is paired with two state inputs")));
        }
        links.push(StateLink { input: name.clone(), output, shape: shape.clone() });
    }
    Ok(links)
}

/// The clips `[k, C, T, H, W]` whose responses are those of frames `start..start + k`
/// of the periodic window `frames` (`n` frames of `[C, H, W]` = `chw` values): clip `i`
/// holds frames `i - T + 1 ..= i`, modulo `n`, on its time axis.
pub(crate) fn clips(frames: &[f32], n: usize, chw: [usize; 3], length: usize, start: usize, k: usize) -> Vec<f32> {
    let [c, h, w] = chw;
    let plane = h * w;
    let frame = c * plane;
    let mut out = vec![0.0f32; k * length * frame];
    for (j, clip) in out.chunks_exact_mut(length * frame).enumerate() {
        let i = start + j;
        for tau in 0..length {
            // The frame at time position tau: i - (length - 1 - tau), periodically.
            let f = (i + n * length - (length - 1 - tau)) % n;
            let src = &frames[f * frame..(f + 1) * frame];
            for ch in 0..c {
                let dst = (ch * length + tau) * plane;
                clip[dst..dst + plane].copy_from_slice(&src[ch * plane..(ch + 1) * plane]);
            }
        }
    }
    out
}

/// Relative change `|b - a| / max(|a|, |b|)` of a state over one window (0 for two zero states).
pub(crate) fn relative_change(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (mut d, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        for (u, v) in x.iter().zip(y) {
            let (u, v) = (*u as f64, *v as f64);
            d += (u - v) * (u - v);
            na += u * u;
            nb += v * v;
        }
    }
    let scale = na.max(nb).sqrt();
    if scale == 0.0 {
        0.0
    } else if !d.is_finite() || !scale.is_finite() {
        f64::INFINITY
    } else {
        d.sqrt() / scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_hold_the_last_frames_in_time_order_wrapping_around_the_window() {
        // 4 frames of [2, 1, 1]: frame f has channel values (10f, 10f + 1).
        let frames: Vec<f32> = (0..4).flat_map(|f| [10.0 * f as f32, 10.0 * f as f32 + 1.0]).collect();
        let c = clips(&frames, 4, [2, 1, 1], 3, 0, 2);
        // Clip of frame 0: frames 2, 3, 0; of frame 1: frames 3, 0, 1; channel-major.
        assert_eq!(c, vec![20.0, 30.0, 0.0, 21.0, 31.0, 1.0, 30.0, 0.0, 10.0, 31.0, 1.0, 11.0]);
    }

    #[test]
    fn states_pair_by_metadata_or_by_a_unique_shape() {
        let outs = vec![
            ("logits".to_string(), Some(vec![10])),
            ("h1".to_string(), Some(vec![4, 8, 8])),
            ("c1".to_string(), Some(vec![2])),
        ];
        let st = vec![("h".to_string(), vec![4, 8, 8])];
        assert_eq!(pair_states(&st, &outs, None).unwrap()[0].output, "h1");
        let named = vec![("h".to_string(), "h1".to_string())];
        assert_eq!(pair_states(&st, &outs, Some(&named)).unwrap()[0].output, "h1");
        // No output of the shape, two of it, a pair that names a wrong output.
        let none = pair_states(&[("s".to_string(), vec![3])], &outs, None).unwrap_err().to_string();
        assert!(none.contains("flickertag.state") && none.contains("`s`"), "{none}");
        let two = vec![outs[0].clone(), outs[1].clone(), ("h2".to_string(), Some(vec![4, 8, 8]))];
        assert!(pair_states(&st, &two, None).unwrap_err().to_string().contains("h2"));
        let wrong = vec![("h".to_string(), "c1".to_string())];
        assert!(pair_states(&st, &outs, Some(&wrong)).unwrap_err().to_string().contains("must match"));
    }

    #[test]
    fn state_metadata_reads_pairs_and_refuses_other_text() {
        let mut p = ModelProto::default();
        assert_eq!(metadata_pairs(&p).unwrap(), None);
        p.metadata_props.push(super::super::graph::meta("flickertag.state", "h:h_next, c : c_next"));
        assert_eq!(
            metadata_pairs(&p).unwrap().unwrap(),
            vec![("h".into(), "h_next".into()), ("c".into(), "c_next".into())]
        );
        p.metadata_props[0].value = "h=h_next".into();
        assert!(metadata_pairs(&p).unwrap_err().to_string().contains("input:output"));
    }

    #[test]
    fn relative_change_is_zero_for_equal_states_and_infinite_for_nan() {
        let a = vec![vec![1.0f32, 2.0]];
        assert_eq!(relative_change(&a, &a), 0.0);
        assert!((relative_change(&a, &[vec![1.0, 2.5]]) - 0.5 / 2.5f64.hypot(1.0)).abs() < 1e-12);
        assert_eq!(relative_change(&[vec![0.0]], &[vec![0.0]]), 0.0);
        assert_eq!(relative_change(&a, &[vec![f32::NAN, 2.0]]), f64::INFINITY);
    }
}
