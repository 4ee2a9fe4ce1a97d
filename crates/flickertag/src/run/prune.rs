//! The pruning experiment as a whole run ([`execute_prune`]): its run folder claimed
//! before the work, checkpoints of every ablation measured so far (`--checkpoint-every`,
//! fingerprinted by the settings and the model so that `resume` never mixes two
//! experiments), the result written and the checkpoint removed at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::plan::Hooks;
use crate::error::{Error, Result};
use crate::inference::model::{Model, ModelInfo};
use crate::io::data::Cifar10;
use crate::prune::curves::{CacheFn, Measured};
use crate::prune::experiment::{run_resumable, PruneConfig, PruneResult};
use crate::report::folder::RunFolder;

/// What a checkpoint of `prune-eval` holds beside its run folder: every ablation
/// measured so far, for the settings and model of `fingerprint`, and the wall time of
/// each start so far. Stored as `{"payload": <this>, "checksum": <SHA-256 of the
/// payload's bytes as they stand in the file>}` ([`Envelope`]).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PruneCheckpoint {
    pub(crate) fingerprint: String,
    /// The model measured (named in the message when another one resumes).
    pub(crate) model: ModelInfo,
    pub(crate) measured: Measured,
    pub(crate) segment_seconds: Vec<f64>,
}

/// A checkpoint file: the payload's bytes and their SHA-256 (hex), so that a damaged or
/// edited checkpoint is refused before any of it is used (`tail`-free to check by
/// hand: hash the text of `payload`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
    checksum: String,
}

impl PruneCheckpoint {
    /// The checkpoint file's bytes.
    pub(crate) fn to_file(&self) -> Vec<u8> {
        let payload = serde_json::to_string(self).expect("serializable");
        let sum = crate::io::data::sha256_hex(payload.as_bytes());
        format!("{{\"payload\":{payload},\"checksum\":\"{sum}\"}}").into_bytes()
    }

    /// A checkpoint file read back, its checksum checked (the reason says what failed).
    pub(crate) fn from_file(bytes: &[u8]) -> std::result::Result<PruneCheckpoint, String> {
        let e: Envelope = serde_json::from_slice(bytes).map_err(|e| format!("not a prune-eval checkpoint: {e}"))?;
        if crate::io::data::sha256_hex(e.payload.get().as_bytes()) != e.checksum {
            return Err("checksum mismatch: changed or damaged after flickertag wrote it".into());
        }
        serde_json::from_str(e.payload.get()).map_err(|e| format!("not a prune-eval checkpoint: {e}"))
    }
}

/// The checkpoint file of the run folder `out`: `.NAME.flickertag-checkpoint.json` beside it.
pub fn prune_checkpoint_path(out: &Path) -> Result<PathBuf> {
    crate::report::folder::sibling(out, "checkpoint.json")
}

/// Runs the pruning experiment `cfg` on `model` (test images from `test`, statistics
/// images from `train`) into the run folder `out` (claimed first; an earlier run is
/// replaced only with `force`). With `checkpoint_every` seconds > 0 the ablations
/// measured so far are saved as it goes; `resume` continues from such a checkpoint of
/// the same settings and model (another one is an error). `hooks.progress` gets
/// `("ablations", done, total)`.
#[allow(clippy::too_many_arguments)]
pub fn execute_prune(
    model: &Model,
    test: &Cifar10,
    train: Option<&Cifar10>,
    cfg: &PruneConfig,
    out: &Path,
    force: bool,
    resume: bool,
    checkpoint_every: f64,
    hooks: &mut Hooks,
) -> Result<PruneResult> {
    if !(checkpoint_every >= 0.0 && checkpoint_every.is_finite()) {
        return Err(Error::param("checkpoint-every", "seconds, 0 or more", checkpoint_every));
    }
    model.require_frames_alone("prune-eval")?;
    let folder = RunFolder::create(out, force, "prune-eval")?;
    let ck = prune_checkpoint_path(out)?;
    let fingerprint = { crate::io::data::sha256_hex(&serde_json::to_vec(&(cfg, model.info())).expect("serializable")) };
    let (resumed, earlier) = if resume && ck.is_file() {
        let text = crate::io::data::read_regular_file(&ck, 1 << 30)?;
        let c = PruneCheckpoint::from_file(&text).map_err(|reason| Error::Data { path: ck.clone(), reason })?;
        if c.fingerprint != fingerprint {
            let this = model.info();
            let other = if c.model != this {
                format!("a checkpoint of {}, not of this model {}", c.model.describe(), this.describe())
            } else {
                "a checkpoint of other settings".to_string()
            };
            return Err(Error::param(
                "resume",
                format!("a checkpoint of the same settings and model (remove {} to start afresh)", ck.display()),
                other,
            ));
        }
        let PruneCheckpoint { measured, segment_seconds, .. } = c;
        (hooks.note)(&format!("resuming with {} ablations already measured", measured.len()));
        (Some(measured), segment_seconds)
    } else {
        if resume {
            (hooks.note)("no checkpoint to resume: starting afresh");
        }
        let _ = std::fs::remove_file(&ck);
        (None, Vec::new())
    };
    let start = Instant::now();
    let save = {
        let (ck, fp, earlier, info) = (ck.clone(), fingerprint.clone(), earlier.clone(), model.info());
        move |m: &Measured| -> Result<()> {
            let tmp = ck.with_extension("json.tmp");
            let mut segment_seconds = earlier.clone();
            segment_seconds.push(start.elapsed().as_secs_f64());
            let c =
                PruneCheckpoint { fingerprint: fp.clone(), model: info.clone(), measured: m.clone(), segment_seconds };
            std::fs::write(&tmp, c.to_file()).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &ck).map_err(|e| Error::io(&ck, e))
        }
    };
    let checkpoint =
        (checkpoint_every > 0.0).then(|| (Box::new(save) as CacheFn, Duration::from_secs_f64(checkpoint_every)));
    let progress = &mut *hooks.progress;
    let mut r = run_resumable(model, test, train, cfg, &mut |d, t| progress("ablations", d, t), resumed, checkpoint)?;
    // The whole work: the earlier starts of a resumed run, then this one.
    r.segment_seconds = earlier.into_iter().chain([start.elapsed().as_secs_f64()]).collect();
    r.seconds = r.segment_seconds.iter().sum();
    crate::report::prune::write_prune(&r, folder.path())?;
    folder.commit()?;
    let _ = std::fs::remove_file(&ck);
    Ok(r)
}
