//! The oddball run's figures and `report.html` ([`crate::run::oddball`]): the share of
//! selective filters per layer and class, each class's mean spectrum of the most
//! selective layer, and the validation table.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{font, DrawResult, Plot};
use crate::analysis::oddball::OddballResult;
use crate::error::{Error, Result};
use crate::prune::oddball::ValidationRow;

/// Writes the oddball run's figures (`plots/oddball_map.png`: the share of selective
/// filters per layer and class; `plots/oddball_spectra.png`: each class's mean
/// spectrum of the layer with the most selective filters, harmonics marked) and
/// `report.html` into `dir`.
pub fn oddball_report(r: &OddballResult, validation: Option<&[ValidationRow]>, dir: &Path) -> Result<()> {
    use super::html::{esc, figure, kv_table, STYLE};
    use std::fmt::Write as _;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    let taps: Vec<String> = r.taps.iter().map(|t| t.tap.name.clone()).collect();
    let share = |tap: &str, class: &str| {
        r.layers
            .iter()
            .find(|l| l.tap == tap && l.class == class)
            .filter(|l| l.harmonics > 0)
            .map_or(f64::NAN, |l| l.selective as f64 / l.filters.max(1) as f64)
    };
    let values: Vec<Vec<f64>> = taps.iter().map(|t| r.classes.iter().map(|c| share(t, c)).collect()).collect();
    let h = (140 + 16 * taps.len()).clamp(320, 4000) as u32;
    let map = super::figures::HeatmapPlot {
        rows: taps.clone(),
        values,
        // White at the share that z > 2.32 gives by chance (one-tailed 1 %).
        threshold: 0.01,
        title: format!(
            "share of filters selective for each class (oddball z > {})",
            crate::analysis::oddball::SELECTIVE_Z
        ),
        x_desc: "oddball class".into(),
        columns: r.classes.clone(),
    };
    super::plots::save_png(&plots, "oddball_map", (1100, h), &map)?;
    // The layer with the most selective filters over all classes.
    let best = (0..taps.len())
        .max_by_key(|&t| r.layers.iter().filter(|l| l.tap == taps[t]).map(|l| l.selective).sum::<usize>())
        .unwrap_or(0);
    let spectra = OddballSpectra {
        title: format!("{}: mean amplitude spectrum over its filters, per oddball class", taps[best]),
        freqs: (0..r.layer_spectra[0][best].len())
            .map(|k| k as f64 * r.config.stimulus.fps / r.config.stimulus.n_frames as f64)
            .collect(),
        classes: r.classes.iter().zip(&r.layer_spectra).map(|(c, s)| (c.clone(), s[best].clone())).collect(),
        // The harmonics as significant for any class.
        harmonics: {
            let mut h: Vec<(f64, bool)> = Vec::new();
            for x in r.harmonics.iter().filter(|x| x.tap == taps[best]) {
                match h.iter_mut().find(|(f, _)| *f == x.freq) {
                    Some(e) => e.1 |= x.significant,
                    None => h.push((x.freq, x.significant)),
                }
            }
            h
        },
        base: r.config.stimulus.base_freq,
    };
    super::plots::save(&plots, "oddball_spectra", (1100, 480), &spectra)?;
    let mut out = String::new();
    let st = &r.config.stimulus;
    writeln!(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flickertag oddball: {}</title><style>{STYLE}</style></head><body>", esc(&r.model.name)).unwrap();
    writeln!(out, "<h1>flickertag oddball: {}</h1>", esc(&r.model.name)).unwrap();
    kv_table(
        &mut out,
        &[
            ("model", format!("{} ({})", r.model.name, r.model.source.display())),
            ("preprocessing", r.model.preprocess.describe()),
            (
                "streams",
                format!(
                    "{} per class, {} images each at F = {} Hz ({} frames per image at {} fps, contrast (1 − cos)/2), every {}th from the oddball class: F/n = {:.4} Hz on bin {}",
                    r.config.streams, r.timing.images, st.base_freq, r.timing.frames_per_image, st.fps, st.every,
                    st.base_freq / st.every as f64, r.timing.oddball_bin
                ),
            ),
            ("classes", r.classes.join(", ")),
            ("frames run", format!("{} in {:.1} s", r.frames_run, r.seconds)),
        ],
    );
    out.push_str("<h2>Selectivity by layer and class</h2><p>A filter's oddball response is its amplitude summed over the layer's significant oddball harmonics, less the mean of the same sums at noise bins around them; z divides by their standard deviation (oddball.csv). White: the 1 % a z threshold of 2.32 passes by chance.</p>");
    figure(&mut out, dir, &plots, "oddball_map", "Share of each layer's filters selective for each class (grey: no oddball harmonic of the layer is significant for the class)")?;
    figure(
        &mut out,
        dir,
        &plots,
        "oddball_spectra",
        "Mean spectrum per oddball class; dashed: oddball harmonics (red: significant for at least one class), grey: base harmonics",
    )?;
    if let Some(v) = validation {
        out.push_str("<h2>Validation by ablation</h2><p>Per class, the top filters by oddball z ablated together (mean ablation), against random filter sets of the same size in the same layers: the drop in the class's recall (percentage points) on test images the streams did not use, its 95 % bootstrap interval, the random sets' mean and SD, and the Monte Carlo p (oddball_validation.csv).</p><table><tr><th>class</th><th>filters</th><th>recall</th><th>drop</th><th>95 % CI</th><th>random drop</th><th>p</th><th>other classes' drop</th></tr>");
        for x in v {
            writeln!(out, "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>[{:.1}, {:.1}]</td><td>{:.1} ± {:.1}</td><td>{:.3}</td><td>{:.1}</td></tr>",
                esc(&x.class), x.filters, x.recall_intact, x.drop, x.drop_low, x.drop_high, x.random_mean, x.random_sd, x.p_value, x.other_drop).unwrap();
        }
        out.push_str("</table>");
    }
    writeln!(out, "<p style=\"color:#777\">flickertag {}; files of this run: oddball.json, oddball.csv, oddball_layers.csv, oddball_harmonics.csv{}, plots/.</p></body></html>", env!("CARGO_PKG_VERSION"), if validation.is_some() { ", oddball_validation.csv" } else { "" }).unwrap();
    let p = dir.join("report.html");
    std::fs::write(&p, out).map_err(|e| Error::io(&p, e))
}

/// One layer's mean spectrum per oddball class, the candidate harmonics marked.
struct OddballSpectra {
    title: String,
    freqs: Vec<f64>,
    classes: Vec<(String, Vec<f64>)>,
    /// `(freq, significant)`.
    harmonics: Vec<(f64, bool)>,
    base: f64,
}

impl Plot for OddballSpectra {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        // Up to just past the last candidate harmonic (DC left out of the scale).
        let fmax = self.harmonics.iter().map(|h| h.0).fold(self.base, f64::max) * 1.1;
        let shown = |k: usize| k > 0 && self.freqs[k] <= fmax;
        let ymax = self
            .classes
            .iter()
            .flat_map(|(_, s)| s.iter().enumerate().filter(|(k, _)| shown(*k)).map(|(_, v)| *v))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(1e-30)
            * 1.05;
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, font(16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..fmax, 0.0..ymax)?;
        c.configure_mesh().x_desc("Hz").y_desc("amplitude").draw()?;
        let mut f = self.base;
        while f <= fmax {
            c.draw_series(DashedLineSeries::new([(f, 0.0), (f, ymax)], 3, 3, BLACK.mix(0.3).stroke_width(1)))?;
            f += self.base;
        }
        for &(f, sig) in &self.harmonics {
            let colour = if sig { RED.mix(0.6) } else { BLACK.mix(0.15) };
            c.draw_series(DashedLineSeries::new([(f, 0.0), (f, ymax)], 3, 3, colour.stroke_width(1)))?;
        }
        let n = self.classes.len().max(2) as f64;
        for (i, (name, s)) in self.classes.iter().enumerate() {
            let colour = HSLColor(i as f64 / n, 0.7, 0.45);
            c.draw_series(LineSeries::new(
                s.iter().enumerate().filter(|(k, v)| shown(*k) && v.is_finite()).map(|(k, v)| (self.freqs[k], *v)),
                colour.stroke_width(1),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    }
}
