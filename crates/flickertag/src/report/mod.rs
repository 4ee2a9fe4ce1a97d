//! Outputs of an analysis, all in one run folder:
//!
//! | file | content |
//! |---|---|
//! | `summary.json` | configuration, model, images, lines, per-layer counts, per-filter scores (schema below) |
//! | `filters.csv` | one row per filter: `tap,conv_ordinal,channel,mean_score,sd_score,pass_fraction,important,dead` (`dead`: below the SNR floor in every image, score NaN), with statistics also `phase_p,phase_q,phase_consistent,whiteness_p,bca_tag1,bca_tag2,bca_intermod,selectivity,integration` |
//! | `layers.csv` | one row per tap: `tap,kind,conv_ordinal,n_filters,n_important,mean_score,important` |
//! | `sweep.csv` | with statistics: `criterion,value,tap,count,jaccard_mean,jaccard_sd` (threshold and q sweeps) |
//! | `crossval.csv` | with statistics (4 images or more): the important set chosen on one random half of the images, checked on the other, one row per split: `split,threshold,kappa_within_a,count_a,count_b,jaccard,jaccard_chance,kappa,kappa_operating,spearman` ([`crate::importance::crossval`]) |
//! | `lines.csv` | one row per tap and line: `tap,freq_hz,bin,label,kind,order,mean_amplitude,mean_snr,mean_bca,mean_z` (baseline-corrected amplitude and z-score against the off-grid bins) |
//! | `spectra_mean.npy` | float64 `[row, bin]`, mean amplitude over images; a row is one channel of one tap, in the order of `filters.csv` (each tap's channels in turn, nothing padded) |
//! | `spectra.npy` | float32 `[image, row, bin]` amplitudes (when per-image spectra are kept) |
//! | `coefficients.npy` | complex64 `[image, row, bin]`, `rfft/N` (when kept) |
//! | `maps/<tap>.npy` | float64 `[channel, line, H, W]` per-neuron SNR at f1, f2, (f1+f2), with `--maps` |
//! | `scores.npy` | float64 `[image, row]` per-image scores, rows as in `spectra_mean.npy` |
//!
//! `summary.json` schema (version 1): `{schema, flickertag_version, model{name, source,
//! input_shape, preprocess}, stimulus{..., bins, period, region_names}, inference{path{path:
//! folded|distinct|full, period?, distinct?}, frames_per_image, description}, snr{...}, threshold, images[{name,index,label,class}],
//! lines[{bin,freq,coefs,order,kind,label}], taps[{name,tensor,kind,conv_ordinal,shape}],
//! layers[{tap,conv_ordinal,n_filters,n_important,important,mean_score,filters[{channel,
//! mean_score,sd_score,pass_fraction,important}]}], seconds}`.

#[cfg(feature = "report")]
pub mod cam;
#[cfg(feature = "report")]
pub mod figures;
pub mod folder;

#[cfg(feature = "report")]
pub mod html;
pub mod manifest;
#[cfg(feature = "report")]
pub mod oddball;
#[cfg(feature = "report")]
pub mod paradigms;
#[cfg(feature = "report")]
pub mod plots;
pub mod prune;
pub mod run_folder;
pub mod summary;
#[cfg(feature = "report")]
pub mod truth;

use std::fmt::Write as _;
use std::path::Path;

use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::io::table::{num, opt, Table};

pub(crate) use crate::io::npy::npy;
pub use summary::{Summary, SCHEMA_VERSION};

/// The tables of a run folder rendered in memory, by file name, in the order
/// [`write_run`] writes them: `summary.json`, `filters.csv`, `sweep.csv` (with
/// statistics), `layers.csv`, `lines.csv`. The folder holds exactly these bytes; Python's
/// `Analysis` reads its DataFrames from them without a folder.
pub fn tables(a: &Analysis) -> Vec<(&'static str, Vec<u8>)> {
    let summary = serde_json::to_vec_pretty(&Summary::new(a)).expect("serializable");
    let mut files = vec![("summary.json", summary)];
    let mut head: Vec<String> =
        ["tap", "conv_ordinal", "channel", "mean_score", "sd_score", "pass_fraction", "important", "dead"]
            .map(String::from)
            .into();
    let n_tags = a.plan.config.freqs.len();
    head.extend((1..=n_tags).map(|r| format!("resp_f{r}")));
    head.extend((1..=n_tags).map(|r| format!("resp_harm{r}")));
    head.push("resp_intermod".into());
    if a.stats.is_some() {
        head.extend(
            [
                "phase_p",
                "phase_q",
                "phase_consistent",
                "whiteness_p",
                "bca_tag1",
                "bca_tag2",
                "bca_intermod",
                "selectivity",
                "integration",
            ]
            .map(String::from),
        );
    }
    let mut t = Table::new(&head);
    for (ti, l) in a.layers.iter().enumerate() {
        for f in &l.filters {
            let mut row = vec![
                l.tap.clone(),
                opt(l.conv_ordinal),
                num(f.channel),
                num(f.mean_score),
                num(f.sd_score),
                num(f.pass_fraction),
                num(f.important),
                num(f.dead),
            ];
            let r = &f.response;
            row.extend(r.fundamental.iter().chain(&r.harmonics).chain([&r.intermod]).map(|b| num(*b)));
            if let Some(st) = &a.stats {
                let x = &st.layers[ti].filters[f.channel];
                let tag = |i: usize| x.bca.tags.get(i).copied().unwrap_or(0.0);
                row.extend([
                    num(x.p_value),
                    num(x.q_value),
                    num(x.significant),
                    opt(x.perm_p),
                    num(tag(0)),
                    num(tag(1)),
                    num(x.bca.intermod),
                    num(x.selectivity),
                    num(x.integration),
                ]);
            }
            t.row(row);
        }
    }
    files.push(("filters.csv", t.finish()));
    if let Some(st) = &a.stats {
        let mut t = Table::new(&["criterion", "value", "tap", "count", "jaccard_mean", "jaccard_sd"]);
        for r in &st.sweep {
            t.row([
                r.criterion.to_string(),
                num(r.value),
                r.tap.clone(),
                num(r.count),
                num(r.jaccard_mean),
                num(r.jaccard_sd),
            ]);
        }
        files.push(("sweep.csv", t.finish()));
        if let Some(cv) = st.cross_validation.as_ref().filter(|c| !c.splits.is_empty()) {
            let mut t = Table::new(&[
                "split",
                "threshold",
                "kappa_within_a",
                "count_a",
                "count_b",
                "jaccard",
                "jaccard_chance",
                "kappa",
                "kappa_operating",
                "spearman",
            ]);
            for r in &cv.splits {
                t.row([
                    num(r.split),
                    num(r.threshold),
                    num(r.kappa_within_a),
                    num(r.count_a),
                    num(r.count_b),
                    num(r.jaccard),
                    num(r.jaccard_chance),
                    num(r.kappa),
                    num(r.kappa_operating),
                    num(r.spearman),
                ]);
            }
            files.push(("crossval.csv", t.finish()));
        }
    }

    let mut t = Table::new(&["tap", "kind", "conv_ordinal", "n_filters", "n_important", "mean_score", "important"]);
    for (l, tap) in a.layers.iter().zip(&a.taps) {
        let imp: Vec<String> = l.important.iter().map(|c| c.to_string()).collect();
        t.row([
            l.tap.clone(),
            serde_json::to_value(tap.tap.kind).unwrap().as_str().unwrap_or("").to_string(),
            opt(l.conv_ordinal),
            num(l.n_filters),
            num(l.n_important),
            num(l.mean_score),
            imp.join(" "),
        ]);
    }
    files.push(("layers.csv", t.finish()));

    let mut out = Table::new(&[
        "tap",
        "freq_hz",
        "bin",
        "label",
        "kind",
        "order",
        "mean_amplitude",
        "mean_snr",
        "mean_bca",
        "mean_z",
    ]);
    // Baseline-corrected amplitude and z-score of each channel's mean spectrum, with the
    // baseline from the off-grid bins only (6 each side).
    let g = a.lines.iter().fold(0, |g, l| crate::signal::lines::gcd(g, l.bin));
    let grid = crate::signal::snr::SnrConfig::grid_baseline(g, crate::signal::spectrum::n_bins(a.plan.config.n_frames));
    for (t, tap) in a.taps.iter().enumerate() {
        let c = tap.shape[0] as f64;
        let bca: Vec<Vec<f64>> = a.mean_amplitude[t].iter().map(|ch| grid.baseline_corrected(ch)).collect();
        let z: Vec<Vec<f64>> = a.mean_amplitude[t].iter().map(|ch| grid.zscore(ch)).collect();
        for (li, line) in a.lines.iter().enumerate() {
            let amp = a.mean_amplitude[t].iter().map(|ch| ch[line.bin]).sum::<f64>() / c;
            let snr = a.line_snr[t].iter().map(|ch| ch[li]).sum::<f64>() / c;
            let b = bca.iter().map(|ch| ch[line.bin]).sum::<f64>() / c;
            // The mean of the finite z-scores (a channel whose noise bins are all equal has none).
            let finite: Vec<f64> = z.iter().map(|ch| ch[line.bin]).filter(|v| v.is_finite()).collect();
            let zz = if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 };
            let kind = serde_json::to_value(line.kind).unwrap();
            out.row([
                tap.tap.name.clone(),
                num(line.freq),
                num(line.bin),
                line.label.clone(),
                kind.as_str().unwrap_or("").to_string(),
                num(line.order),
                num(amp),
                num(snr),
                num(b),
                num(zz),
            ]);
        }
    }
    files.push(("lines.csv", out.finish()));
    files
}

/// The mean amplitude spectra, float64 `[row, bin]` (`spectra_mean.npy`), flat and
/// row-major with its shape.
pub fn mean_spectra(a: &Analysis) -> (Vec<f64>, [usize; 2]) {
    let (_, rows) = crate::analysis::state::row_offsets(&a.taps);
    let nb = crate::signal::spectrum::n_bins(a.config.stimulus.n_frames);
    (a.mean_amplitude.iter().flatten().flatten().copied().collect(), [rows, nb])
}

/// The per-image scores, float64 `[image, row]` (`scores.npy`), flat and row-major with
/// its shape.
pub fn score_rows(a: &Analysis) -> (Vec<f64>, [usize; 2]) {
    let (_, rows) = crate::analysis::state::row_offsets(&a.taps);
    let ni = a.images.len();
    let flat = (0..ni).flat_map(|i| a.scores.iter().flat_map(move |tap| tap.scores[i].iter().copied())).collect();
    (flat, [ni, rows])
}

/// Writes every output file into `dir` (created if needed): [`tables`], then the arrays.
pub fn write_run(a: &Analysis, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, bytes) in tables(a) {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let (mean, [rows, nb]) = mean_spectra(a);
    npy(&dir.join("spectra_mean.npy"), &[rows as u64, nb as u64], &mean)?;
    let ni = a.images.len();
    let scores: Vec<&[Vec<f64>]> = a.scores.iter().map(|l| l.scores.as_slice()).collect();
    crate::io::npy::write_scores(&dir.join("scores.npy"), &scores, ni, rows)?;
    for m in &a.maps {
        let d = dir.join("maps");
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let [c, h, w] = m.shape;
        let flat: Vec<f64> = m.snr.iter().flatten().flatten().copied().collect();
        npy(&d.join(format!("{}.npy", m.tap)), &[c as u64, m.lines.len() as u64, h as u64, w as u64], &flat)?;
    }
    if let Some(per) = &a.per_image {
        let shape = [ni as u64, per.rows as u64, nb as u64];
        npy(&dir.join("spectra.npy"), &shape, &per.amplitude)?;
        npy(&dir.join("coefficients.npy"), &shape, &per.coefficients)?;
    }
    Ok(())
}

/// The human summary printed at the end of `analyze`.
pub fn terminal_summary(a: &Analysis) -> String {
    let mut s = String::new();
    let c = &a.plan.config;
    let freqs: Vec<String> = a.plan.region_names.iter().zip(&c.freqs).map(|(r, f)| format!("{r} {f} Hz")).collect();
    writeln!(
        s,
        "flickertag analyze: {} on {} image(s), {} frames at {} fps ({})",
        a.model.name,
        a.images.len(),
        c.n_frames,
        c.fps,
        freqs.join(", ")
    )
    .unwrap();
    if c.modulation != crate::signal::stimulus::Modulation::All || c.depth != 1.0 {
        writeln!(s, "modulating {} at depth {} ({} domain)", c.modulation, c.depth, c.domain).unwrap();
    }
    let path = a.path.describe(c.n_frames);
    writeln!(
        s,
        "inference {path}; SNR preset `{}`; threshold {} ; {:.2} s",
        a.config.snr.preset, a.config.threshold, a.seconds
    )
    .unwrap();
    let sig = a.stats.as_ref().map(|st| format!("phase q<{}", st.q)).unwrap_or_default();
    writeln!(
        s,
        "{:<18} {:>5} {:>8} {:>10} {:>11} {:>13}  top filters",
        "tap", "conv#", "filters", "important", "mean score", sig
    )
    .unwrap();
    for (t, l) in a.layers.iter().enumerate() {
        let ord = l.conv_ordinal.map(|o| format!("#{o}")).unwrap_or_default();
        let top: Vec<String> = l.important.iter().take(6).map(|c| c.to_string()).collect();
        let n_sig = a.stats.as_ref().map(|st| st.layers[t].n_significant.to_string()).unwrap_or_default();
        writeln!(
            s,
            "{:<18} {:>5} {:>8} {:>10} {:>11.3} {:>13}  {}",
            l.tap,
            ord,
            l.n_filters,
            l.n_important,
            l.mean_score,
            n_sig,
            top.join(",")
        )
        .unwrap();
    }
    if let Some(st) = a.stats.as_ref().filter(|st| st.operating_jaccard.is_finite()) {
        writeln!(
            s,
            "stability of the important set: split-half Jaccard {:.3} ± {:.3} (pooled over the network, {} images)",
            st.operating_jaccard, st.operating_jaccard_sd, st.n_images
        )
        .unwrap();
    }
    let dead: usize = a.layers.iter().map(|l| l.filters.iter().filter(|f| f.dead).count()).sum();
    if dead > 0 {
        writeln!(
            s,
            "{dead} filter(s) dead: every amplitude below the SNR floor ({}) in every image, so not scored \
             (`dead` in filters.csv; <floor 0> measures them)",
            a.config.snr.floor
        )
        .unwrap();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_block_writer_round_trips_through_npyz() {
        let dir = tempfile::tempdir().unwrap();
        // Over one 65,536-element block, so that block boundaries are crossed.
        let f: Vec<f32> = (0..70_000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let d: Vec<f64> = vec![f64::NAN, -0.0, 1e-300, 2.5, 7.0, -1.0];
        let c: Vec<num_complex::Complex<f32>> =
            (0..6).map(|i| num_complex::Complex::new(i as f32, -(i as f32))).collect();
        npy(&dir.path().join("f.npy"), &[7, 10_000], &f).unwrap();
        npy(&dir.path().join("d.npy"), &[2, 3], &d).unwrap();
        npy(&dir.path().join("c.npy"), &[3, 2], &c).unwrap();
        let read = |name: &str| npyz::NpyFile::new(std::fs::File::open(dir.path().join(name)).unwrap()).unwrap();
        let r = read("f.npy");
        assert_eq!(r.shape(), &[7, 10_000]);
        assert_eq!(r.into_vec::<f32>().unwrap(), f);
        let r = read("d.npy");
        assert_eq!(r.shape(), &[2, 3]);
        let back = r.into_vec::<f64>().unwrap();
        assert!(back[0].is_nan() && back[1].to_bits() == (-0.0f64).to_bits() && back[2..] == d[2..]);
        let r = read("c.npy");
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(r.into_vec::<num_complex::Complex<f32>>().unwrap(), c);
    }
}
