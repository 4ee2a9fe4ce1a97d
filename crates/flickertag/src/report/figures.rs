//! The figure types: each draws itself on any plotters backend ([`Plot`]); the
//! drivers in [`super::plots`] feed them from a run and save them as PNG and SVG.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::signal::lines::{Line, LineKind};

/// Result of drawing (plotters errors are backend-specific, so boxed).
pub type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Something drawable on any plotters backend.
pub trait Plot {
    /// Draws onto `root` (already filled white).
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Colour of a line kind (fundamentals red, harmonics blue, intermodulation green,
/// shared harmonics purple).
pub fn kind_color(k: LineKind) -> RGBColor {
    match k {
        LineKind::Fundamental => RGBColor(214, 39, 40),
        LineKind::Harmonic => RGBColor(31, 119, 180),
        LineKind::Intermod => RGBColor(44, 160, 44),
        LineKind::Shared => RGBColor(148, 103, 189),
        LineKind::Unmatched => RGBColor(150, 150, 150),
    }
}

/// The plot font: DejaVu Sans, embedded, registered once as "sans-serif".
pub(crate) fn font(size: u32) -> TextStyle<'static> {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // The embedded file is a valid TrueType font: registration cannot fail.
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| unreachable!("the embedded DejaVu Sans is a valid font"));
    });
    TextStyle::from(("sans-serif", size).into_font()).color(&BLACK)
}

/// Amplitude and SNR spectra of one filter with the catalogued lines marked.
pub struct SpectrumPlot<'a> {
    /// Title.
    pub title: String,
    /// Bin frequencies, Hz (`[bin]`).
    pub freqs: Vec<f64>,
    /// Amplitude per bin.
    pub amp: Vec<f64>,
    /// SNR per bin (NaN where undefined).
    pub snr: Vec<f64>,
    /// SNR axis label.
    pub snr_label: String,
    /// The line catalogue.
    pub lines: &'a [Line],
}

impl Plot for SpectrumPlot<'_> {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(&self.title, font(18))?;
        let (top, bottom) = root.split_vertically((root.dim_in_pixel().1 as f64 * 0.55) as u32);
        let fmax = self.freqs.last().copied().unwrap_or(60.0);
        for (area, values, ylabel) in
            [(&top, &self.amp, "amplitude |X|/N"), (&bottom, &self.snr, self.snr_label.as_str())]
        {
            let ymax = values.iter().skip(1).filter(|v| v.is_finite()).cloned().fold(1e-12, f64::max) * 1.15;
            let ymin = values.iter().skip(1).filter(|v| v.is_finite()).cloned().fold(0.0, f64::min);
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..fmax, ymin..ymax)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("frequency (Hz)")
                .y_desc(ylabel)
                .label_style(font(12))
                .draw()?;
            for l in self.lines {
                let c = kind_color(l.kind);
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(l.freq, ymin), (l.freq, ymax)],
                    c.mix(0.25),
                )))?;
            }
            chart.draw_series(LineSeries::new(
                self.freqs.iter().zip(values.iter()).skip(1).filter(|(_, v)| v.is_finite()).map(|(f, v)| (*f, *v)),
                BLACK.stroke_width(1),
            ))?;
            for l in self.lines.iter().filter(|l| l.order <= 2) {
                let y = values.get(l.bin).copied().filter(|v| v.is_finite()).unwrap_or(0.0);
                let c = kind_color(l.kind);
                chart.draw_series(std::iter::once(Circle::new((l.freq, y), 3, c.filled())))?;
                chart.draw_series(std::iter::once(Text::new(
                    l.label.clone(),
                    (l.freq, y + 0.06 * (ymax - ymin)),
                    font(11).color(&c),
                )))?;
            }
        }
        let legend = [
            ("fundamental", LineKind::Fundamental),
            ("harmonic", LineKind::Harmonic),
            ("intermodulation", LineKind::Intermod),
            ("shared harmonic", LineKind::Shared),
            ("unmatched harmonic", LineKind::Unmatched),
        ];
        for (i, (name, k)) in legend.iter().enumerate() {
            let x = 80 + 150 * i as i32;
            root.draw(&Rectangle::new([(x, 4), (x + 12, 14)], kind_color(*k).filled()))?;
            root.draw(&Text::new(*name, (x + 16, 3), font(12)))?;
        }
        Ok(())
    }
}

/// Important-filter counts per layer (filled) over the layer's filter count (outline).
pub struct CountsPlot {
    /// Layer names.
    pub labels: Vec<String>,
    /// Important filters per layer.
    pub counts: Vec<usize>,
    /// Filters per layer.
    pub totals: Vec<usize>,
    /// Title.
    pub title: String,
}

impl Plot for CountsPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let n = self.labels.len();
        let ymax = self.totals.iter().copied().max().unwrap_or(1) as f64 * 1.05;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18))
            .margin(10)
            .x_label_area_size(90)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n as f64, 0.0..ymax)?;
        let labels = self.labels.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.floor() as usize).cloned().unwrap_or_default())
            .x_label_style(font(10).transform(FontTransform::Rotate90))
            .y_desc("filters")
            .draw()?;
        for i in 0..n {
            let x = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, self.totals[i] as f64)],
                BLUE.mix(0.4).stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, self.counts[i] as f64)],
                RGBColor(214, 39, 40).filled(),
            )))?;
        }
        Ok(())
    }
}

/// Colour scale from dark blue (low) through white (threshold) to dark red (high).
fn diverging(v: f64, lo: f64, mid: f64, hi: f64) -> RGBColor {
    let lerp = |a: (f64, f64, f64), b: (f64, f64, f64), t: f64| {
        let t = t.clamp(0.0, 1.0);
        RGBColor((a.0 + (b.0 - a.0) * t) as u8, (a.1 + (b.1 - a.1) * t) as u8, (a.2 + (b.2 - a.2) * t) as u8)
    };
    let (blue, white, red) = ((33.0, 102.0, 172.0), (247.0, 247.0, 247.0), (178.0, 24.0, 43.0));
    if v < mid {
        lerp(blue, white, (v - lo) / (mid - lo).max(1e-12))
    } else {
        lerp(white, red, (v - mid) / (hi - mid).max(1e-12))
    }
}

/// Layer × filter heatmap of mean scores, centred on the threshold.
pub struct HeatmapPlot {
    /// Layer names (rows).
    pub rows: Vec<String>,
    /// Scores per layer (rows may differ in length); NaN cells are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// The importance threshold (white).
    pub threshold: f64,
    /// Title.
    pub title: String,
    /// What the columns are (the x axis' description).
    pub x_desc: String,
    /// Column names (empty: the column numbers).
    pub columns: Vec<String>,
}

impl Plot for HeatmapPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let cols = self.values.iter().map(Vec::len).max().unwrap_or(1);
        let all: Vec<f64> = self.values.iter().flatten().copied().filter(|v| v.is_finite()).collect();
        let lo = all.iter().cloned().fold(f64::INFINITY, f64::min).min(self.threshold);
        let hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max).max(self.threshold);
        let (main, legend) = root.split_horizontally(root.dim_in_pixel().0 - 90);
        let n = self.rows.len();
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, font(18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..cols as f64, -0.5..n as f64 - 0.5)?;
        let rows = self.rows.clone();
        let columns = self.columns.clone();
        let x_label = move |x: &f64| {
            if columns.is_empty() {
                return format!("{x}");
            }
            let c = (x - 0.5).round();
            if (x - 0.5 - c).abs() > 1e-6 || c < 0.0 {
                return String::new();
            }
            columns.get(c as usize).cloned().unwrap_or_default()
        };
        let x_labels = if self.columns.is_empty() { 10 } else { 2 * self.columns.len() + 1 };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(x_labels)
            .x_label_formatter(&x_label)
            .y_labels(n)
            .y_label_formatter(&|y| {
                let r = y.round();
                if (y - r).abs() > 1e-6 || r < 0.0 {
                    return String::new();
                }
                rows.get(n.saturating_sub(1 + r as usize)).cloned().unwrap_or_default()
            })
            .y_label_style(font(10))
            .x_desc(self.x_desc.as_str())
            .draw()?;
        for (r, row) in self.values.iter().enumerate() {
            let y = (n - 1 - r) as f64;
            chart.draw_series(row.iter().enumerate().map(|(c, &v)| {
                // A value that is not a number (a dead filter, a layer without a
                // significant harmonic) is grey, never a colour of the scale.
                let colour = if v.is_finite() { diverging(v, lo, self.threshold, hi) } else { RGBColor(190, 190, 190) };
                Rectangle::new([(c as f64, y - 0.5), (c as f64 + 1.0, y + 0.5)], colour.filled())
            }))?;
        }
        let (w, h) = legend.dim_in_pixel();
        let steps = 100;
        for i in 0..steps {
            let v = hi - (hi - lo) * i as f64 / steps as f64;
            let y0 = 40 + (h as i32 - 80) * i / steps;
            let y1 = 40 + (h as i32 - 80) * (i + 1) / steps;
            legend.draw(&Rectangle::new([(10, y0), (30, y1)], diverging(v, lo, self.threshold, hi).filled()))?;
        }
        let _ = w;
        legend.draw(&Text::new(format!("{hi:.2}"), (34, 36), font(11)))?;
        legend.draw(&Text::new(
            format!("{:.2} (thr)", self.threshold),
            (34, 40 + ((h as f64 - 80.0) * (hi - self.threshold) / (hi - lo).max(1e-12)) as i32),
            font(11),
        ))?;
        legend.draw(&Text::new(format!("{lo:.2}"), (34, h as i32 - 44), font(11)))?;
        Ok(())
    }
}

/// Per-filter left/right selectivity against layer depth.
pub struct SelectivityPlot {
    /// `(layer index, selectivity index in [-1, 1], important)`.
    pub points: Vec<(f64, f64, bool)>,
    /// Layer names.
    pub labels: Vec<String>,
    /// Region names of the two tags.
    pub regions: (String, String),
}

impl Plot for SelectivityPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let n = self.labels.len();
        let title =
            format!("selectivity (S1 - S2)/(S1 + S2): +1 = {} only, -1 = {} only", self.regions.0, self.regions.1);
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(16))
            .margin(10)
            .x_label_area_size(90)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, -1.05..1.05)?;
        let labels = self.labels.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.round().max(0.0) as usize).cloned().unwrap_or_default())
            .x_label_style(font(10).transform(FontTransform::Rotate90))
            .y_desc("selectivity index")
            .draw()?;
        chart.draw_series(self.points.iter().map(|&(x, y, imp)| {
            let c = if imp { RGBColor(214, 39, 40).filled() } else { RGBColor(120, 120, 120).mix(0.6).filled() };
            Circle::new((x, y), 3, c)
        }))?;
        Ok(())
    }
}

/// The stimulus: a strip of frames of one image, and each region's modulation.
pub struct StimulusPlot {
    /// Frames as RGB images (same size), with their frame numbers.
    pub frames: Vec<(usize, image::RgbImage)>,
    /// `(region name, frequency, factor per frame)`.
    pub waveforms: Vec<(String, f64, Vec<f32>)>,
    /// Frames per second.
    pub fps: f64,
}

impl Plot for StimulusPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (top, bottom) = root.split_vertically(170);
        let scale = 4i32;
        for (k, (i, img)) in self.frames.iter().enumerate() {
            let x0 = 20 + k as i32 * (img.width() as i32 * scale + 12);
            for (x, y, p) in img.enumerate_pixels() {
                let (px, py) = (x0 + x as i32 * scale, 30 + y as i32 * scale);
                top.draw(&Rectangle::new([(px, py), (px + scale, py + scale)], RGBColor(p[0], p[1], p[2]).filled()))?;
            }
            top.draw(&Text::new(format!("frame {i} ({:.0} ms)", *i as f64 * 1000.0 / self.fps), (x0, 10), font(11)))?;
        }
        let n = self.waveforms.first().map_or(0, |w| w.2.len());
        let mut chart = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n as f64 / self.fps, 0.0f64..1.05)?;
        chart.configure_mesh().x_desc("time (s)").y_desc("factor s_r(i)").draw()?;
        let palette = [RGBColor(214, 39, 40), RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(255, 127, 14)];
        for (r, (name, f, w)) in self.waveforms.iter().enumerate() {
            let c = palette[r % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    w.iter().enumerate().map(|(i, &v)| (i as f64 / self.fps, v as f64)),
                    c.stroke_width(2),
                ))?
                .label(format!("{name}: {f} Hz"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    }
}

/// One layer's sweep: its name and rows `(value, count, mean Jaccard)`.
pub type SweepLayer = (String, Vec<(f64, f64, f64)>);

/// Threshold (or q) sweep: important-filter count and split-half stability per layer.
pub struct SweepPlot {
    /// `threshold` or `q`.
    pub criterion: String,
    /// Per layer: name and rows `(value, count, jaccard mean)`.
    pub layers: Vec<SweepLayer>,
}

impl Plot for SweepPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let xs: Vec<f64> = self.layers.iter().flat_map(|l| l.1.iter().map(|r| r.0)).collect();
        let (x0, x1) =
            (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        let log = self.criterion == "q";
        let tx = |x: f64| if log { x.max(1e-12).log10() } else { x };
        let (x0, x1) = (tx(x0), tx(x1).max(tx(x0) + 1e-9));
        let ymax = self.layers.iter().flat_map(|l| l.1.iter().map(|r| r.1)).fold(1.0, f64::max) * 1.05;
        let n = self.layers.len().max(2) as f64;
        let colour = |i: usize| HSLColor(0.66 * (1.0 - i as f64 / (n - 1.0)), 0.75, 0.45);
        let xdesc = if log { "log10 q".to_string() } else { self.criterion.clone() };
        let mut a = ChartBuilder::on(&left)
            .caption(format!("important filters vs {}", self.criterion), font(16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(x0..x1, 0.0..ymax)?;
        a.configure_mesh().x_desc(xdesc.clone()).y_desc("filters").draw()?;
        let mut b = ChartBuilder::on(&right)
            .caption("split-half stability (Jaccard)", font(16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(x0..x1, 0.0..1.02)?;
        b.configure_mesh().x_desc(xdesc).y_desc("mean Jaccard").draw()?;
        for (i, (name, rows)) in self.layers.iter().enumerate() {
            let c = colour(i);
            let s = a.draw_series(LineSeries::new(rows.iter().map(|r| (tx(r.0), r.1)), c.stroke_width(1)))?;
            if i == 0 || i + 1 == self.layers.len() {
                s.label(name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            }
            b.draw_series(LineSeries::new(
                rows.iter().filter(|r| r.2.is_finite()).map(|r| (tx(r.0), r.2)),
                c.stroke_width(1),
            ))?;
        }
        a.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    }
}

/// Accuracy against the fraction of filters removed, one panel per order and ablation
/// (two panels a row); random seeds as thin grey lines.
pub struct PrunePlot {
    /// Title (the scope).
    pub title: String,
    /// Per panel (its caption, e.g. `lowest-first, zero-ablation`): curves
    /// `(criterion, is_random, points)`.
    pub panels: Vec<(String, Vec<PruneCurve>)>,
}

/// One curve of a [`PrunePlot`]: criterion, whether it is a random seed, `(fraction, accuracy)` points.
pub type PruneCurve = (String, bool, Vec<(f64, f64)>);

impl Plot for PrunePlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(&self.title, font(18))?;
        let cols = self.panels.len().clamp(1, 2);
        let areas = root.split_evenly((self.panels.len().div_ceil(cols).max(1), cols));
        let palette = [
            RGBColor(23, 190, 207),
            RGBColor(214, 39, 40),
            RGBColor(255, 127, 14),
            RGBColor(148, 103, 189),
            RGBColor(31, 119, 180),
            RGBColor(44, 160, 44),
            RGBColor(140, 86, 75),
        ];
        for (area, (order, curves)) in areas.iter().zip(&self.panels) {
            let xmax = curves.iter().flat_map(|c| c.2.iter().map(|p| p.0)).fold(0.0, f64::max).max(1e-3);
            // The y axis starts at the lowest accuracy rounded down to a multiple of 10.
            let ymin = curves.iter().flat_map(|c| c.2.iter().map(|p| p.1)).fold(100.0, f64::min);
            let ymin = ((ymin - 1.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("removing {order}"), font(15))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(0.0..xmax, ymin..100.0)?;
            chart
                .configure_mesh()
                .x_desc("fraction of filters removed (per layer)")
                .y_desc("top-1 accuracy (%)")
                .draw()?;
            let mut k = 0;
            for (name, random, pts) in curves {
                if *random {
                    let s = chart
                        .draw_series(LineSeries::new(pts.iter().copied(), RGBColor(150, 150, 150).stroke_width(1)))?;
                    if name == "random#0" {
                        s.label("random (seeds)")
                            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(150, 150, 150)));
                    }
                    continue;
                }
                let c = palette[k % palette.len()];
                k += 1;
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// One row of a [`MapPlot`]: a channel and its maps `(line label, [H*W] values)`.
pub type MapRow = (usize, Vec<(String, Vec<f64>)>);

/// Per-neuron SNR maps of one tap next to the input image.
pub struct MapPlot {
    /// The input image (first analysed image).
    pub image: image::RgbImage,
    /// Rows: channel, then per line `(label, [H*W] values)`.
    pub rows: Vec<MapRow>,
    /// Map height and width.
    pub hw: (usize, usize),
    /// Title.
    pub title: String,
}

impl Plot for MapPlot {
    fn plot<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.draw(&Text::new(self.title.clone(), (10, 6), font(16)))?;
        let cell = 150i32;
        let (h, w) = self.hw;
        let vmax = self.rows.iter().flat_map(|r| r.1.iter().flat_map(|m| m.1.iter().copied())).fold(1e-12, f64::max);
        for (r, (ch, maps)) in self.rows.iter().enumerate() {
            let y0 = 40 + r as i32 * (cell + 30);
            let s = cell / self.image.height().max(1) as i32;
            for (x, y, p) in self.image.enumerate_pixels() {
                let (px, py) = (10 + x as i32 * s, y0 + y as i32 * s);
                root.draw(&Rectangle::new([(px, py), (px + s, py + s)], RGBColor(p[0], p[1], p[2]).filled()))?;
            }
            root.draw(&Text::new(format!("input; channel {ch}"), (10, y0 + cell + 4), font(11)))?;
            for (k, (label, v)) in maps.iter().enumerate() {
                let x0 = 10 + (k as i32 + 1) * (cell + 20);
                let sy = cell as f64 / h as f64;
                let sx = cell as f64 / w as f64;
                for (i, &val) in v.iter().enumerate() {
                    let (yy, xx) = (i / w, i % w);
                    let (px, py) = (x0 + (xx as f64 * sx) as i32, y0 + (yy as f64 * sy) as i32);
                    let (qx, qy) = (x0 + ((xx + 1) as f64 * sx) as i32, y0 + ((yy + 1) as f64 * sy) as i32);
                    root.draw(&Rectangle::new([(px, py), (qx, qy)], diverging(val, 0.0, 0.0, vmax).filled()))?;
                }
                root.draw(&Text::new(format!("SNR at {label}"), (x0, y0 + cell + 4), font(11)))?;
            }
        }
        root.draw(&Text::new(
            format!("colour: 0 (white) to {vmax:.2} (red), shared scale"),
            (10, 40 + self.rows.len() as i32 * (cell + 30)),
            font(11),
        ))?;
        Ok(())
    }
}
