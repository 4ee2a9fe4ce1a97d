//! The CAM run's figure and `report.html` ([`crate::cam`]): a grid of the first
//! cases' maps per method and channel set, and the comparison table.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{font, DrawResult, Plot};
use crate::cam::localisation::Case;
use crate::cam::{CamResult, KeptMaps, SETS};
use crate::error::{Error, Result};

/// Pixels a canvas pixel takes in the grid.
const SCALE: i32 = 2;

/// The grid: per kept case a row, the canvas then every method × set map over it.
struct CamGrid<'a> {
    kept: &'a [KeptMaps],
    cases: &'a [Case],
    methods: Vec<String>,
    side: usize,
}

/// A map value in [0, 1] as a colour from dark blue through yellow to red (a jet-like
/// ramp; a zero map stays dark).
fn heat(t: f64) -> (f64, f64, f64) {
    let t = t.clamp(0.0, 1.0);
    let ramp = |a: f64| (1.5 - (4.0 * t - a).abs()).clamp(0.0, 1.0);
    (ramp(3.0), ramp(2.0), ramp(1.0))
}

impl Plot for CamGrid<'_> {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let cell = self.side as i32 * SCALE + 8;
        let (left, top) = (8, 40);
        root.draw(&Text::new("canvas", (left, 4), font(13)))?;
        for (mi, m) in self.methods.iter().enumerate() {
            for (si, s) in SETS.iter().enumerate() {
                let x = left + cell * (1 + mi * SETS.len() + si) as i32;
                root.draw(&Text::new(m.to_string(), (x, 4), font(12)))?;
                root.draw(&Text::new(s.to_string(), (x, 20), font(12)))?;
            }
        }
        let n = self.side;
        for (row, k) in self.kept.iter().enumerate() {
            let y0 = top + cell * row as i32;
            let case = &self.cases[k.case];
            let px = |c: usize, p: usize| k.canvas.pixels[c * n * n + p] as f64;
            let draw = |x0: i32, colour: &dyn Fn(usize) -> (f64, f64, f64)| -> DrawResult {
                for p in 0..n * n {
                    let (r, g, b) = colour(p);
                    let (x, y) = (x0 + (p % n) as i32 * SCALE, y0 + (p / n) as i32 * SCALE);
                    let c = RGBColor((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8);
                    root.draw(&Rectangle::new([(x, y), (x + SCALE, y + SCALE)], c.filled()))?;
                }
                let (bx, by) = (x0 + case.x as i32 * SCALE, y0 + case.y as i32 * SCALE);
                root.draw(&Rectangle::new([(bx, by), (bx + 32 * SCALE, by + 32 * SCALE)], WHITE.stroke_width(1)))?;
                Ok(())
            };
            draw(left, &|p| (px(0, p), px(1, p), px(2, p)))?;
            for (mi, maps) in k.maps.iter().enumerate() {
                for (si, map) in maps.iter().enumerate() {
                    let max = map.iter().copied().fold(0.0f32, f32::max).max(f32::MIN_POSITIVE) as f64;
                    let x0 = left + cell * (1 + mi * SETS.len() + si) as i32;
                    draw(x0, &|p| {
                        let grey = (px(0, p) + px(1, p) + px(2, p)) / 3.0;
                        let (r, g, b) = heat(map[p] as f64 / max);
                        (0.4 * grey + 0.6 * r, 0.4 * grey + 0.6 * g, 0.4 * grey + 0.6 * b)
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Writes `plots/cam_grid.png` and `report.html` of a CAM run into `dir`.
pub fn write(r: &CamResult, dir: &Path) -> Result<()> {
    use super::html::{esc, figure, kv_table, STYLE};
    use std::fmt::Write as _;
    let cfg = &r.config;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    if !r.kept.is_empty() {
        let grid = CamGrid { kept: &r.kept, cases: &cfg.cases, methods: cfg.method_names(), side: cfg.canvas };
        let cell = (cfg.canvas as u32 * SCALE as u32) + 8;
        let cols = 1 + cfg.method_names().len() as u32 * SETS.len() as u32;
        super::plots::save_png(&plots, "cam_grid", (16 + cell * cols, 48 + cell * r.kept.len() as u32), &grid)?;
    }
    let mut out = String::new();
    writeln!(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flickertag cam: {}</title><style>{STYLE}</style></head><body>", esc(&r.layer)).unwrap();
    writeln!(out, "<h1>flickertag cam: {}</h1>", esc(&r.layer)).unwrap();
    kv_table(
        &mut out,
        &[
            (
                "layer",
                format!(
                    "{} ({} channels, {} x {} maps on the canvas)",
                    r.layer, r.channels, r.map_size[0], r.map_size[1]
                ),
            ),
            (
                "cases",
                format!(
                    "{} ({} x {} canvases, seed {}); the network names the object on {:.1} %",
                    r.outcomes.len(),
                    cfg.canvas,
                    cfg.canvas,
                    cfg.seed,
                    r.canvas_top1()
                ),
            ),
            (
                "sets",
                format!(
                    "k = {} channels by {} (tagging: {:?}; bottom: {:?})",
                    cfg.k,
                    cfg.criterion.name(),
                    r.tagging,
                    r.bottom
                ),
            ),
            ("insertion/deletion", format!("{} steps, baseline the mean colour", cfg.steps)),
            ("time", format!("{:.1} s", r.seconds)),
        ],
    );
    out.push_str("<h2>Does tagging selection beat the same layer without it?</h2><p>Each set against <code>all</code> (every channel of the layer), and <code>tagging</code> against <code>random</code>, case by case: mean paired difference and its 95 % BCa bootstrap interval over cases. Deletion: lower is better.</p><table><tr><th>method</th><th>set</th><th>against</th><th>metric</th><th>set</th><th>against</th><th>difference</th><th>95 % CI</th><th>verdict</th></tr>");
    for x in &r.comparisons {
        writeln!(out, "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>[{:+.3}, {:+.3}]</td><td>{}</td></tr>",
            esc(&x.method), esc(&x.set), esc(&x.against), esc(&x.metric), x.mean, x.control, x.difference, x.ci_low, x.ci_high, esc(&x.verdict)).unwrap();
    }
    out.push_str("</table>");
    figure(
        &mut out,
        dir,
        &plots,
        "cam_grid",
        "The first cases: the canvas (white: the object's box), then each method's map from each channel set over it",
    )?;
    writeln!(out, "<p style=\"color:#777\">flickertag {}; files of this run: cam.json, cam_cases.csv, cam_metrics.csv, cam_comparison.csv, cam_channels.csv, cam_weights.csv, plots/.</p></body></html>", env!("CARGO_PKG_VERSION")).unwrap();
    let p = dir.join("report.html");
    std::fs::write(&p, out).map_err(|e| Error::io(&p, e))
}
