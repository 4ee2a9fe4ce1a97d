//! The contrast-response curves of a contrast sweep (`contrast_response.csv` →
//! `plots/contrast.png`), drawn from the run folder's files so that `flickertag report`
//! redraws them. The oddball run's figures and report are [`super::oddball`]'s.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{font, DrawResult, Plot};
use crate::analysis::contrast::{layer_curves, ContrastRow};
use crate::error::{Error, Result};

/// Largest `contrast_response.csv` read back (a ResNet-50 sweep of ten depths is about
/// 30 MB).
pub const MAX_CONTRAST_CSV_BYTES: u64 = 1 << 29;

/// Reads `contrast_response.csv` of a run folder; None when the run has no sweep.
pub fn read_contrast(dir: &Path) -> Result<Option<Vec<ContrastRow>>> {
    let path = dir.join("contrast_response.csv");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = crate::io::data::read_regular_file(&path, MAX_CONTRAST_CSV_BYTES)?;
    let mut rows = Vec::new();
    for r in csv::Reader::from_reader(&bytes[..]).deserialize() {
        rows.push(r.map_err(|e| Error::Data { path: path.clone(), reason: format!("not a contrast table: {e}") })?);
    }
    Ok(Some(rows))
}

/// The layers' contrast-response curves: one panel per tagged region, the mean
/// amplitude over each layer's filters against depth, relative to the layer's largest
/// (1 at the depth where it is largest: the curve's shape, comparable across layers),
/// first layer blue, last red; the dashed diagonal is a linear response.
pub struct ContrastPlot {
    /// Per region: its name and its layers' curves.
    pub panels: Vec<(String, Vec<LayerCurve>)>,
}

/// One layer's curve: `(tap, [(depth, relative amplitude)])`.
pub type LayerCurve = (String, Vec<(f64, f64)>);

impl ContrastPlot {
    /// The plot of a sweep's rows.
    pub fn of(rows: &[ContrastRow]) -> ContrastPlot {
        let curves = layer_curves(rows);
        let mut panels: Vec<(String, Vec<LayerCurve>)> = Vec::new();
        for p in &curves {
            let panel = match panels.iter().position(|(r, _)| *r == p.region) {
                Some(i) => &mut panels[i].1,
                None => {
                    panels.push((p.region.clone(), Vec::new()));
                    &mut panels.last_mut().expect("just pushed").1
                }
            };
            match panel.iter_mut().find(|(t, _)| *t == p.tap) {
                Some((_, pts)) => pts.push((p.depth as f64, p.amplitude)),
                None => panel.push((p.tap.clone(), vec![(p.depth as f64, p.amplitude)])),
            }
        }
        for (_, layers) in &mut panels {
            for (_, pts) in layers.iter_mut() {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let max = pts.iter().map(|p| p.1).filter(|v| v.is_finite()).fold(0.0, f64::max);
                for p in pts.iter_mut() {
                    p.1 = if max > 0.0 { p.1 / max } else { f64::NAN };
                }
            }
        }
        ContrastPlot { panels }
    }
}

impl Plot for ContrastPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for ((region, layers), area) in self.panels.iter().zip(areas) {
            let mut c = ChartBuilder::on(&area)
                .caption(format!("{region}: response at its tag against depth"), font(16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(0.0..1.0, 0.0..1.05)?;
            c.configure_mesh().x_desc("modulation depth").y_desc("amplitude / layer's largest").draw()?;
            c.draw_series(DashedLineSeries::new([(0.0, 0.0), (1.0, 1.0)], 4, 4, BLACK.mix(0.5).stroke_width(1)))?;
            let n = layers.len().max(2) as f64;
            for (i, (tap, pts)) in layers.iter().enumerate() {
                let colour = HSLColor(0.66 * (1.0 - i as f64 / (n - 1.0)), 0.75, 0.45);
                let s = c.draw_series(LineSeries::new(
                    pts.iter().filter(|p| p.1.is_finite()).copied(),
                    colour.stroke_width(1),
                ))?;
                if i == 0 || i + 1 == layers.len() {
                    s.label(tap.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
                }
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// Draws `plots/contrast.png` (and `.svg`) into `plots` when the run folder `dir` holds
/// a contrast sweep; returns whether it did.
pub fn draw_contrast(dir: &Path, plots: &Path) -> Result<bool> {
    let Some(rows) = read_contrast(dir)? else { return Ok(false) };
    if rows.is_empty() {
        return Ok(false);
    }
    super::plots::save(plots, "contrast", (1200, 480), &ContrastPlot::of(&rows))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_curves_are_relative_to_each_layers_largest_and_sorted_by_depth() {
        let row = |depth, tap: &str, amplitude| ContrastRow {
            depth,
            tap: tap.into(),
            channel: 0,
            region: "left".into(),
            freq: 6.0,
            amplitude,
            snr: 1.0,
        };
        let rows = vec![row(1.0, "a", 4.0), row(0.5, "a", 2.0), row(1.0, "b", 3.0), row(0.5, "b", 3.0)];
        let p = ContrastPlot::of(&rows);
        assert_eq!(p.panels.len(), 1);
        assert_eq!(p.panels[0].1[0], ("a".to_string(), vec![(0.5, 0.5), (1.0, 1.0)]));
        assert_eq!(p.panels[0].1[1].1, vec![(0.5, 1.0), (1.0, 1.0)]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("contrast_response.csv"), crate::analysis::contrast::to_csv(&rows)).unwrap();
        assert_eq!(read_contrast(dir.path()).unwrap().unwrap(), rows);
        assert!(draw_contrast(dir.path(), dir.path()).unwrap());
        assert!(dir.path().join("contrast.png").is_file());
        std::fs::write(dir.path().join("contrast_response.csv"), "depth,tap\nx,y\n").unwrap();
        let e = read_contrast(dir.path()).unwrap_err().to_string();
        assert!(e.contains("contrast_response.csv") && e.contains("not a contrast table"), "{e}");
    }
}
