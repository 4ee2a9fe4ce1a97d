//! The figure of `importance-truth`: how well each criterion ranks the filters by what
//! removing them does (`plots/importance_truth.png/.svg`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{font, DrawResult, Plot};
use crate::error::{Error, Result};
use crate::prune::truth::{Correlation, TruthResult, TRUTHS};

/// A forest plot: per truth a panel, per criterion a row; the pooled ρ (scope `all`, or
/// the one layer) as a black dot with its 95 % interval, every layer's ρ as a small
/// grey dot; a dashed line at 0 and a blue band at the truth's reliability.
pub struct TruthPlot {
    /// Criteria, top to bottom.
    pub criteria: Vec<String>,
    /// Per truth: its name, the pooled rows, the per-layer rows and the split-half ρ.
    pub panels: Vec<(String, Vec<Correlation>, Vec<Correlation>, f64)>,
}

impl TruthPlot {
    /// The plot of a result's correlations.
    pub fn of(r: &TruthResult) -> TruthPlot {
        let pooled = r.pooled_scope();
        let mut criteria: Vec<String> = Vec::new();
        for c in r.correlations.iter().filter(|c| c.criterion != "reliability") {
            if !criteria.contains(&c.criterion) {
                criteria.push(c.criterion.clone());
            }
        }
        let panels = TRUTHS
            .iter()
            .map(|t| {
                let of = |f: &dyn Fn(&Correlation) -> bool| -> Vec<Correlation> {
                    r.correlations.iter().filter(|c| c.truth == *t && f(c)).cloned().collect()
                };
                let split =
                    of(&|c| c.scope == pooled && c.criterion == "reliability").first().map_or(f64::NAN, |c| c.rho);
                (
                    t.to_string(),
                    of(&|c| c.scope == pooled && c.criterion != "reliability"),
                    of(&|c| c.scope != "all" && pooled == "all" && c.criterion != "reliability"),
                    split,
                )
            })
            .collect();
        TruthPlot { criteria, panels }
    }
}

impl Plot for TruthPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        let n = self.criteria.len() as f64;
        let row = |name: &str| n - 1.0 - self.criteria.iter().position(|c| c == name).unwrap_or(0) as f64;
        for ((truth, pooled, layers, split), area) in self.panels.iter().zip(areas) {
            let mut c = ChartBuilder::on(&area)
                .caption(format!("Spearman's rho with {truth}"), font(16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(110)
                .build_cartesian_2d(-1.0..1.0, -0.5..n - 0.5)?;
            let names = self.criteria.clone();
            c.configure_mesh()
                .y_labels(self.criteria.len().max(1))
                .y_label_formatter(&|y| {
                    let i = n - 1.0 - y.round();
                    if i >= 0.0 && (i as usize) < names.len() && (y - y.round()).abs() < 1e-6 {
                        names[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .x_desc("rho (pooled: black, 95 % CI; each layer: grey)")
                .draw()?;
            if split.is_finite() {
                c.draw_series(std::iter::once(Rectangle::new(
                    [(split - 0.01, -0.5), (split + 0.01, n - 0.5)],
                    BLUE.mix(0.3).filled(),
                )))?
                .label(format!("reliability of the truth {split:.2}"))
                .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], BLUE.mix(0.3).filled()));
            }
            c.draw_series(DashedLineSeries::new([(0.0, -0.5), (0.0, n - 0.5)], 4, 4, BLACK.mix(0.5).stroke_width(1)))?;
            c.draw_series(
                layers
                    .iter()
                    .filter(|x| x.rho.is_finite())
                    .map(|x| Circle::new((x.rho, row(&x.criterion) - 0.2), 2, RGBColor(150, 150, 150).filled())),
            )?;
            for x in pooled.iter().filter(|x| x.rho.is_finite()) {
                let y = row(&x.criterion);
                if x.ci_low.is_finite() && x.ci_high.is_finite() {
                    c.draw_series(std::iter::once(PathElement::new(
                        vec![(x.ci_low, y), (x.ci_high, y)],
                        BLACK.stroke_width(2),
                    )))?;
                }
                c.draw_series(std::iter::once(Circle::new((x.rho, y), 4, BLACK.filled())))?;
            }
            if split.is_finite() {
                c.configure_series_labels()
                    .position(SeriesLabelPosition::LowerLeft)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }
        }
        Ok(())
    }
}

/// Draws `plots/importance_truth.png` (and `.svg`) of `r` into the run folder `dir`.
pub fn truth_plot(r: &TruthResult, dir: &Path) -> Result<()> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    super::plots::save(&plots, "importance_truth", (1200, 520), &TruthPlot::of(r))
}
