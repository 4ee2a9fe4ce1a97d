//! Figures of a run, each written as PNG and SVG (plotters): the stimulus, per-filter
//! amplitude and SNR spectra with every catalogued line marked, important-filter counts
//! per layer, a layer × filter score heatmap, and per-filter left/right selectivity.
//!
//! Everything except the stimulus is drawn from the run folder's files
//! ([`RunData`]), so `flickertag report RUN_DIR` can redraw a finished run.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

pub use super::figures::*;
use super::summary::Summary;
use crate::error::{Error, Result};
use crate::importance::stats::SweepCriterion;
use crate::importance::{line_sums, LayerImportance};
use crate::io::data::Image;
use crate::signal::lines::Line;
use crate::signal::stimulus::TagPlan;

/// What the figures need from a run folder.
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// The line catalogue from the summary.
    pub lines: Vec<Line>,
    /// `spectra_mean.npy`, `[row][bin]` flattened (rows: each tap's channels in turn).
    pub mean: Vec<f64>,
    /// Its shape `[rows, bins]`.
    pub shape: [usize; 2],
    /// First row of each tap.
    pub offsets: Vec<usize>,
}

impl RunData {
    /// Reads `summary.json` and `spectra_mean.npy` from `dir`, checking that the array's
    /// shape agrees with the summary (taps, widest tap, bins of N frames).
    pub fn load(dir: &Path) -> Result<RunData> {
        let summary = Summary::read(dir)?;
        let lines = summary.lines.clone();
        let rows: usize = summary.taps.iter().map(|t| t.shape.first().copied().unwrap_or(0)).sum();
        let want = [rows, crate::signal::spectrum::n_bins(summary.stimulus.config.n_frames)];
        let p = dir.join("spectra_mean.npy");
        let mean: Vec<f64> = crate::io::npy::read(&p, &want).map_err(|e| match e {
            Error::Data { path, reason } => {
                Error::Data { path, reason: format!("{reason} (channel row, bin), as the summary says") }
            }
            e => e,
        })?;
        let mut offsets = Vec::new();
        let mut at = 0;
        for t in &summary.taps {
            offsets.push(at);
            at += t.shape.first().copied().unwrap_or(0);
        }
        Ok(RunData { dir: dir.to_path_buf(), summary, lines, mean, shape: want, offsets })
    }

    /// Mean amplitude spectrum of `tap`, `channel`.
    pub fn spectrum(&self, tap: usize, channel: usize) -> &[f64] {
        let nb = self.shape[1];
        let o = (self.offsets[tap] + channel) * nb;
        &self.mean[o..o + nb]
    }

    /// Layers from the summary.
    pub fn layers(&self) -> &[LayerImportance] {
        &self.summary.layers
    }
}

/// Draws `p` into `<dir>/<name>.png` and `<dir>/<name>.svg` (line plots, whose SVG
/// stays small whatever the model).
pub fn save<P: Plot>(dir: &Path, name: &str, size: (u32, u32), p: &P) -> Result<()> {
    save_png(dir, name, size, p)?;
    let svg = dir.join(format!("{name}.svg"));
    draw_on(SVGBackend::new(&svg, size).into_drawing_area(), p, &svg)
}

/// Draws `p` into `<dir>/<name>.png` only: figures made of pixels, cells or one mark
/// per filter (stimulus frames, heatmaps, maps, scatter plots), whose SVG grows with
/// the image or the model (35 MB for one 224 x 224 stimulus).
pub fn save_png<P: Plot>(dir: &Path, name: &str, size: (u32, u32), p: &P) -> Result<()> {
    let png = dir.join(format!("{name}.png"));
    draw_on(BitMapBackend::new(&png, size).into_drawing_area(), p, &png)
}

/// Fills `root` white, draws `p` and writes it out (`path` names it in errors).
fn draw_on<DB: DrawingBackend, P: Plot>(root: DrawingArea<DB, Shift>, p: &P, path: &Path) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let fail = |e: Box<dyn std::error::Error>| Error::Data { path: path.into(), reason: format!("plotting: {e}") };
    root.fill(&WHITE).map_err(|e| fail(e.into()))?;
    p.plot(&root).map_err(fail)?;
    root.present().map_err(|e| fail(e.into()))?;
    Ok(())
}

/// Draws the stimulus figure (`stimulus.png`) for `image` into `dir`.
pub fn stimulus(dir: &Path, plan: &TagPlan, image: &Image) -> Result<()> {
    let n = plan.config.n_frames;
    let span = plan.period().unwrap_or(n).min(n);
    let frames = (0..8).map(|k| k * span / 8).map(|i| (i, plan.display_frame(image, i).to_rgb8())).collect();
    let shown = n.min(2 * span);
    let waveforms = plan
        .region_names
        .iter()
        .enumerate()
        .map(|(r, name)| (name.clone(), plan.config.freqs[r], (0..shown).map(|i| plan.factor(r, i)).collect()))
        .collect();
    save_png(dir, "stimulus", (1200, 480), &StimulusPlot { frames, waveforms, fps: plan.config.fps })
}

/// The filters whose spectra are drawn: the top-scoring filter of every layer.
pub fn chosen_filters(run: &RunData) -> Vec<(usize, usize)> {
    run.layers()
        .iter()
        .enumerate()
        .filter_map(|(t, l)| {
            let best = l.filters.iter().max_by(|a, b| a.mean_score.total_cmp(&b.mean_score))?;
            Some((t, best.channel))
        })
        .collect()
}

/// File stem of a filter's spectrum figure.
pub fn spectrum_name(tap: &str, channel: usize) -> String {
    format!("spectrum_{}_{channel}", tap.replace(['/', ':', '#'], "_"))
}

/// Draws every figure of a run folder into `<dir>/plots/`. Returns the folder.
pub fn draw_run(run: &RunData) -> Result<PathBuf> {
    let dir = run.dir.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let layers = run.layers();
    let names: Vec<String> = layers.iter().map(|l| l.tap.clone()).collect();
    let threshold = run.summary.threshold;
    let counts = CountsPlot {
        labels: names.clone(),
        counts: layers.iter().map(|l| l.n_important).collect(),
        totals: layers.iter().map(|l| l.n_filters).collect(),
        title: format!("important filters per layer (mean score > {threshold})"),
    };
    save(&dir, "layers", (1100, 500), &counts)?;
    let values: Vec<Vec<f64>> = layers.iter().map(|l| l.filters.iter().map(|f| f.mean_score).collect()).collect();
    // One row per tap, at most 4000 pixels high.
    let h = (120 + 16 * names.len()).clamp(300, 4000) as u32;
    save_png(
        &dir,
        "heatmap",
        (1100, h),
        &HeatmapPlot {
            rows: names.clone(),
            values,
            threshold,
            title: "mean score per filter".into(),
            x_desc: "filter (channel)".into(),
            columns: vec![],
        },
    )?;
    let region_names = &run.summary.stimulus.region_names;
    if region_names.len() == 2 {
        let mut points = Vec::new();
        for (t, l) in layers.iter().enumerate() {
            for f in &l.filters {
                let s = line_sums(run.spectrum(t, f.channel), &run.lines, 2);
                let si = (s.tags[0] - s.tags[1]) / (s.tags[0] + s.tags[1]).max(1e-30);
                points.push((t as f64, si, f.important));
            }
        }
        save_png(
            &dir,
            "selectivity",
            (1100, 500),
            &SelectivityPlot {
                points,
                labels: names.clone(),
                regions: (region_names[0].clone(), region_names[1].clone()),
            },
        )?;
    }
    draw_sweeps(run, &dir)?;
    let snr = &run.summary.snr;
    let (fps, n) = run.summary.fps_n();
    for (t, ch) in chosen_filters(run) {
        let amp = run.spectrum(t, ch).to_vec();
        let freqs: Vec<f64> = (0..amp.len()).map(|k| k as f64 * fps / n as f64).collect();
        let s = snr.snr(&amp);
        let off = snr.bin_offset();
        let snr_bins: Vec<f64> =
            (0..amp.len()).map(|k| k.checked_sub(off).and_then(|j| s.get(j)).copied().unwrap_or(f64::NAN)).collect();
        let title = format!("{} filter {ch}: mean over images", names[t]);
        let label = format!("SNR ({}{})", snr.preset, if snr.db { ", dB" } else { "" });
        let p = SpectrumPlot { title, freqs, amp, snr: snr_bins, snr_label: label, lines: &run.lines };
        save(&dir, &spectrum_name(&names[t], ch), (1000, 560), &p)?;
    }
    Ok(dir)
}

/// Draws `sweep_threshold` and `sweep_q` from the summary's statistics, if present.
pub fn draw_sweeps(run: &RunData, dir: &Path) -> Result<()> {
    let Some(stats) = &run.summary.stats else { return Ok(()) };
    for crit in [SweepCriterion::Threshold, SweepCriterion::Q] {
        let mut layers: Vec<SweepLayer> = Vec::new();
        // Per layer (the pooled network row has its own scale; it is in sweep.csv).
        let network = crate::importance::stats::NETWORK;
        for r in stats.sweep.iter().filter(|r| r.criterion == crit && r.tap != network) {
            let tap = r.tap.clone();
            let row = (r.value, r.count as f64, r.jaccard_mean);
            match layers.iter_mut().find(|l| l.0 == tap) {
                Some(l) => l.1.push(row),
                None => layers.push((tap, vec![row])),
            }
        }
        if !layers.is_empty() {
            save(dir, &format!("sweep_{crit}"), (1200, 460), &SweepPlot { criterion: crit.to_string(), layers })?;
        }
    }
    Ok(())
}

/// Draws `plots/map_<tap>.png` for every SNR map: the three channels with the
/// highest mean SNR over positions and lines.
pub fn maps(dir: &Path, maps: &[crate::analysis::maps::SnrMap], image: &Image) -> Result<()> {
    let out = dir.join("plots");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    for m in maps {
        let [c, h, w] = m.shape;
        let mut order: Vec<usize> = (0..c).collect();
        let total = |ch: usize| m.snr[ch].iter().flatten().sum::<f64>();
        order.sort_by(|&a, &b| total(b).total_cmp(&total(a)));
        let rows = order
            .iter()
            .take(3)
            .map(|&ch| (ch, m.lines.iter().cloned().zip(m.snr[ch].iter().cloned()).collect()))
            .collect();
        let title = format!("{}: per-neuron SNR over the {}x{} map (mean over images)", m.tap, h, w);
        let p = MapPlot { image: image.to_rgb8(), rows, hw: (h, w), title };
        save_png(
            &out,
            &format!("map_{}", m.tap.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '.', "_")),
            (10 + 4 * 170 + 20, 40 + 3 * 180 + 30),
            &p,
        )?;
    }
    Ok(())
}
