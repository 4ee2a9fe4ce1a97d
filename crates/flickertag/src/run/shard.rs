//! Runs that outgrow one sitting or one machine: shards, partial runs, checkpoints and
//! their merge.
//!
//! A **partial run** is a folder (`.flickertag-run` kind `partial`) holding `partial.json`
//! ([`PartialInfo`]: the run's context, which shard, which images), `state/` (the
//! [`AnalysisState`] of its images as NPY files) and `first_image.npy` (the whole run's
//! first image, for the stimulus figure). `flickertag analyze --shard i/n` writes one for
//! the `i`-th of `n` consecutive blocks of the image list ([`Shard::range`]);
//! [`merge`] checks that the parts are the shards `0..n` of one run (same model,
//! options and image list) and adds their states in order, and [`crate::analysis::finish`]
//! turns the result into the same run folder one process writes.
//!
//! Every file of a partial run is listed with its SHA-256 in `checksums.json`, written
//! last; reading checks each file against it before use, so a damaged or edited array,
//! a symbolic link in place of one, or a `partial.json` edited by hand is an error
//! naming the file.
//!
//! A **checkpoint** is a partial run of the images done so far, kept beside the run
//! folder (`.NAME.flickertag-checkpoint`) and replaced atomically; `--resume` continues
//! from it ([`Checkpoint`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::state::Checksums;
use crate::analysis::{AnalysisState, ImageSpec, RunContext};
use crate::error::{Error, Result};
use crate::io::data::Image;

/// Layout version of `partial.json`.
/// 2: `checksums.json` (SHA-256 of every file of the partial run) and the model's
/// content hash in its context.
pub const PARTIAL_SCHEMA: u32 = 2;

/// Shard `index` of `count` (`--shard i/n`, 0-based). Read back from a `partial.json`,
/// it is checked as when parsed (`0 <= index < count <= 1,000,000`), so a tampered file
/// is an error naming it, never an index out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ShardFields")]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    /// Parses `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::param("shard", "i/n with 0 <= i < n (e.g. 0/4)", s);
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count || count > 1_000_000 {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// [`Shard`]'s fields as stored, before they are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardFields {
    index: usize,
    count: usize,
}

impl TryFrom<ShardFields> for Shard {
    type Error = String;
    fn try_from(f: ShardFields) -> std::result::Result<Shard, String> {
        format!("{}/{}", f.index, f.count).parse().map_err(|e: Error| e.to_string())
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard's block of a list of `len` images: `[i·len/n, (i+1)·len/n)`.
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        self.index * len / self.count..(self.index + 1) * len / self.count
    }
}

/// `partial.json`: what a partial run is part of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialInfo {
    /// Layout version ([`PARTIAL_SCHEMA`]).
    pub schema: u32,
    /// The flickertag that wrote it.
    pub flickertag_version: String,
    /// Which shard (`0/1` for a checkpoint of a whole run).
    pub shard: Shard,
    /// Images in the whole run.
    pub total_images: usize,
    /// SHA-256 of the whole run's image list (names, indices, labels).
    pub images_digest: String,
    /// Position of this part's first image in the whole list.
    pub first_index: usize,
    /// The run's context: model, effective options, taps, lines.
    pub context: RunContext,
    /// The pieces of work that made this part, with their wall times (a shard: one; a
    /// checkpoint: each start so far, the current one up to the save).
    #[serde(default)]
    pub segments: Vec<crate::analysis::Segment>,
}

/// SHA-256 of an image list, as [`PartialInfo::images_digest`].
pub fn images_digest(images: &[ImageSpec]) -> String {
    crate::io::data::sha256_hex(&serde_json::to_vec(images).expect("serializable"))
}

/// Writes a partial run into `dir` (an empty or new folder): `partial.json`, `state/`,
/// `first_image.npy`, then `checksums.json` listing each with its SHA-256.
pub fn write_partial(dir: &Path, info: &PartialInfo, state: &AnalysisState, first: &Image) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut sums = Checksums::new();
    let p = dir.join("partial.json");
    let bytes = serde_json::to_vec_pretty(info).expect("serializable");
    std::fs::write(&p, &bytes).map_err(|e| Error::io(&p, e))?;
    sums.insert("partial.json".into(), crate::io::data::sha256_hex(&bytes));
    for (k, v) in state.write(&dir.join("state"), &info.context)? {
        sums.insert(format!("state/{k}"), v);
    }
    let shape = [3, first.height as u64, first.width as u64];
    sums.insert("first_image.npy".into(), crate::io::npy::npy(&dir.join("first_image.npy"), &shape, &first.pixels)?);
    let p = dir.join(CHECKSUMS);
    std::fs::write(&p, serde_json::to_vec_pretty(&sums).expect("serializable")).map_err(|e| Error::io(&p, e))
}

/// The file of a partial run that lists every other with its SHA-256.
const CHECKSUMS: &str = "checksums.json";

/// Reads a partial run: its info, state and first image, every file checked against
/// its checksum and every array against the info.
pub fn read_partial(dir: &Path) -> Result<(PartialInfo, AnalysisState, Image)> {
    let (info, sums) = read_info(dir)?;
    let state_sums: Checksums =
        sums.iter().filter_map(|(k, v)| Some((k.strip_prefix("state/")?.to_string(), v.clone()))).collect();
    let state = AnalysisState::read(&dir.join("state"), &info.context, &state_sums)?;
    let [_, h, w] = info.context.model.input_shape;
    let (first, bytes) =
        crate::analysis::state::read_listed(dir, "first_image.npy", &sums, crate::io::npy::MAX_NPY_BYTES)?;
    let pixels: Vec<f32> = crate::io::npy::from_bytes(&bytes, &first, Some(&[3, h, w]))?;
    if pixels.iter().any(|x| !x.is_finite()) {
        return Err(Error::Data { path: first, reason: "holds values that are not finite numbers".into() });
    }
    Ok((info, state, Image { height: h, width: w, pixels, label: None }))
}

/// Merges the partial runs `parts` (in any order) into the state of the whole run.
/// They must be the shards `0..n` of one run, each once, with the same model, options
/// and image list; otherwise the error says which shards are missing, repeated or do
/// not match, and nothing is merged.
pub fn merge(parts: &[PathBuf]) -> Result<(RunContext, AnalysisState, Image, Vec<crate::analysis::Segment>)> {
    if parts.is_empty() {
        return Err(Error::param("parts", "at least one partial run", "none"));
    }
    // First every part's description (small), so that nothing is read in bulk before
    // the parts are known to fit together; then the states one at a time, in order.
    let mut read: Vec<(PathBuf, PartialInfo)> = Vec::new();
    for p in parts {
        read.push((p.clone(), read_info(p)?.0));
    }
    let (p0, i0) = (&read[0].0, read[0].1.clone());
    for (p, info) in &read {
        let what = if info.context.model != i0.context.model {
            Some(format!("the model: {} against {}", info.context.model.describe(), i0.context.model.describe()))
        } else if info.context != i0.context {
            Some("options or taps".to_string())
        } else if info.images_digest != i0.images_digest || info.total_images != i0.total_images {
            Some("the image list".to_string())
        } else if info.shard.count != i0.shard.count {
            Some("the number of shards".to_string())
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::param(
                "parts",
                format!("shards of one run; {} and {} differ in {what}", p.display(), p0.display()),
                p.display(),
            ));
        }
    }
    let n = i0.shard.count;
    let mut seen = vec![0usize; n];
    for (_, info) in &read {
        seen[info.shard.index] += 1;
    }
    let missing: Vec<String> = (0..n).filter(|&i| seen[i] == 0).map(|i| format!("{i}/{n}")).collect();
    let twice: Vec<String> = (0..n).filter(|&i| seen[i] > 1).map(|i| format!("{i}/{n}")).collect();
    if !missing.is_empty() || !twice.is_empty() {
        return Err(Error::param(
            "parts",
            format!(
                "each of the {n} shards once (missing: {}; given more than once: {})",
                if missing.is_empty() { "none".into() } else { missing.join(", ") },
                if twice.is_empty() { "none".into() } else { twice.join(", ") }
            ),
            format!("{} parts", parts.len()),
        ));
    }
    read.sort_by_key(|r| r.1.shard.index);
    let mut merged: Option<(AnalysisState, Image)> = None;
    let mut segments = Vec::new();
    for (p, info) in read {
        segments.extend(info.segments.iter().cloned());
        let (_, state, first) = read_partial(&p)?;
        if state.images.len() != info.shard.range(info.total_images).len() {
            return Err(Error::param(
                "parts",
                format!("complete shards; {} holds {} of its images (a checkpoint?)", p.display(), state.images.len()),
                p.display(),
            ));
        }
        match merged.as_mut() {
            None => merged = Some((state, first)),
            Some((m, _)) => m.merge(state)?,
        }
    }
    let (state, first) = merged.expect("at least one part");
    if images_digest(&state.images) != i0.images_digest {
        return Err(Error::param("parts", "shards whose images make up the run's image list", "a mismatch"));
    }
    Ok((i0.context, state, first, segments))
}

/// Reads `checksums.json` and `partial.json` of a partial run (checked against it).
fn read_info(dir: &Path) -> Result<(PartialInfo, Checksums)> {
    let c = dir.join(CHECKSUMS);
    if !c.exists() && dir.join("partial.json").is_file() {
        return Err(Error::Data {
            path: c,
            reason: format!(
                "missing: a partial run of flickertag {} lists its files with their checksums here \
                 (earlier versions wrote none: run that part again)",
                env!("CARGO_PKG_VERSION")
            ),
        });
    }
    let sums: Checksums = serde_json::from_slice(&crate::io::data::read_regular_file(&c, 1 << 20)?)
        .map_err(|e| Error::Data { path: c.clone(), reason: format!("not a checksum list: {e}") })?;
    let (p, text) = crate::analysis::state::read_listed(dir, "partial.json", &sums, 256 << 20)?;
    let info = parse_info(&text, &p)?;
    Ok((info, sums))
}

/// `partial.json`'s bytes (`p` names it in errors) as a checked [`PartialInfo`]: the
/// schema, then the run context before any array is sized or indexed by it.
pub(crate) fn parse_info(text: &[u8], p: &Path) -> Result<PartialInfo> {
    let p = p.to_path_buf();
    let info: PartialInfo = serde_json::from_slice(text)
        .map_err(|e| Error::Data { path: p.clone(), reason: format!("not a flickertag partial run: {e}") })?;
    if info.schema != PARTIAL_SCHEMA {
        return Err(Error::Data {
            path: p,
            reason: format!("schema {}, this flickertag reads {PARTIAL_SCHEMA}", info.schema),
        });
    }
    // Before any array is sized or indexed by it.
    info.context
        .check()
        .map_err(|reason| Error::Data { path: p, reason: format!("not a consistent partial run: {reason}") })?;
    Ok(info)
}

/// Runs shard `shard` of the image list `specs` and writes it as a partial run into
/// `out` (atomically, [`crate::report::folder::RunFolder`]). `cfg` must be resolved for
/// the whole list (so that every shard runs the same options). `stop` is asked between
/// inference batches. Returns the folder.
#[allow(clippy::too_many_arguments)]
pub fn run_shard(
    model: &crate::inference::model::Model,
    cfg: &crate::analysis::AnalysisConfig,
    specs: &[ImageSpec],
    load: &dyn Fn(&ImageSpec) -> Result<Image>,
    out: &Path,
    force: bool,
    shard: Shard,
    progress: &mut dyn FnMut(usize, usize),
    stop: Option<&crate::inference::engine::StopFn>,
) -> Result<PathBuf> {
    let range = shard.range(specs.len());
    if range.is_empty() {
        return Err(Error::param(
            "shard",
            format!("a shard with images: {} images make at most {} shards", specs.len(), specs.len()),
            shard,
        ));
    }
    let folder = crate::report::folder::RunFolder::create(out, force, "partial")?;
    // The first image as the model sees it (resized and cropped): what the stimulus
    // figure shows and `first_image.npy` holds ([3, H, W] of the model's input); the
    // file's own size is not kept (an 8192 x 8192 image held 805 MB through the run).
    let first = model.fit_image(load(&specs[0])?, &specs[0].name)?;
    let control = crate::analysis::RunControl { first_index: range.start, stop, ..Default::default() };
    let start = std::time::Instant::now();
    let (ctx, state) = crate::analysis::run_state(model, cfg, &specs[range.clone()], load, progress, control)?;
    let segment = crate::analysis::Segment::new(format!("shard {shard}"), range.len(), start.elapsed().as_secs_f64());
    let info = PartialInfo {
        schema: PARTIAL_SCHEMA,
        flickertag_version: env!("CARGO_PKG_VERSION").into(),
        shard,
        total_images: specs.len(),
        images_digest: images_digest(specs),
        first_index: range.start,
        context: ctx,
        segments: vec![segment],
    };
    write_partial(folder.path(), &info, &state, &first)?;
    folder.commit()
}

/// Merges partial runs ([`merge`]) and writes the whole run folder into `out`
/// (atomically; an earlier run there is replaced only with `force`). Returns the
/// analysis and the folder.
#[cfg(feature = "report")]
pub fn merge_into(parts: &[PathBuf], out: &Path, force: bool) -> Result<(crate::analysis::Analysis, PathBuf)> {
    let start = std::time::Instant::now();
    let folder = crate::report::folder::RunFolder::create(out, force, "analyze")?;
    let (ctx, state, first, mut segments) = merge(parts)?;
    let mut result = crate::analysis::finish(&ctx, state, Vec::new())?;
    // The merge's own time: reading, combining and finishing (not writing the folder, as
    // for a run made in one go).
    segments.push(crate::analysis::Segment::new("merge", 0, start.elapsed().as_secs_f64()));
    result.seconds = segments.iter().map(|s| s.seconds).sum();
    result.segments = segments;
    crate::report::run_folder::write_run_folder(&result, &first, folder.path())?;
    Ok((result, folder.commit()?))
}

/// The checkpoint of a run folder: a partial run kept beside it
/// (`.NAME.flickertag-checkpoint`), replaced atomically each time.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The checkpoint of the run folder `out`.
    pub fn of(out: &Path) -> Result<Checkpoint> {
        Ok(Checkpoint { dir: crate::report::folder::sibling(out, "checkpoint")? })
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut s = self.dir.as_os_str().to_owned();
        s.push(format!("-{suffix}"));
        PathBuf::from(s)
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Replaces the checkpoint with `state` (written beside it, then renamed over it).
    pub fn save(&self, info: &PartialInfo, state: &AnalysisState, first: &Image) -> Result<()> {
        let (new, old) = (self.sibling("new"), self.sibling("old"));
        let _ = std::fs::remove_dir_all(&new);
        write_partial(&new, info, state, first)?;
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&self.dir, &old).map_err(|e| Error::io(&self.dir, e))?;
        }
        std::fs::rename(&new, &self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The checkpoint's contents, if there is one (a checkpoint replaced while being
    /// killed is found in its `.old` copy).
    pub fn load(&self) -> Result<Option<(PartialInfo, AnalysisState, Image)>> {
        let old = self.sibling("old");
        if self.dir.is_dir() {
            return read_partial(&self.dir).map(Some);
        }
        if old.is_dir() {
            return read_partial(&old).map(Some);
        }
        Ok(None)
    }

    /// Removes the checkpoint (after the run is complete). Each folder is first renamed
    /// to `-gone` (atomic), then deleted, the current checkpoint last: a kill in the
    /// middle leaves either a whole checkpoint or none, never a half-deleted one that
    /// [`Checkpoint::load`] would then refuse on every later `--resume`.
    pub fn remove(&self) -> Result<()> {
        let gone = self.sibling("gone");
        let remove_gone = || match std::fs::remove_dir_all(&gone) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&gone, e)),
            _ => Ok(()),
        };
        remove_gone()?; // a leftover of an earlier kill
        for d in [self.sibling("new"), self.sibling("old"), self.dir.clone()] {
            if d.exists() {
                std::fs::rename(&d, &gone).map_err(|e| Error::io(&d, e))?;
                remove_gone()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_list_once_in_order() {
        for len in [0, 1, 7, 10, 100] {
            for n in 1..=9 {
                let mut all = Vec::new();
                for i in 0..n {
                    all.extend(Shard { index: i, count: n }.range(len));
                }
                assert_eq!(all, (0..len).collect::<Vec<_>>());
            }
        }
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().unwrap_err().to_string().contains("invalid shard"), "{bad}");
        }
    }

    #[test]
    fn regression_tampered_shard_in_partial_json_is_an_error_not_a_panic() {
        let ok: Shard = serde_json::from_str(r#"{"index": 1, "count": 3}"#).unwrap();
        assert_eq!(ok, Shard { index: 1, count: 3 });
        for bad in [
            r#"{"index": 3, "count": 3}"#,
            r#"{"index": 0, "count": 0}"#,
            r#"{"index": 0, "count": 18446744073709551615}"#,
        ] {
            let e = serde_json::from_str::<Shard>(bad).unwrap_err().to_string();
            assert!(e.contains("invalid shard"), "{bad}: {e}");
        }
    }
}
