//! Contrast sweeps: the analysis repeated at several modulation depths
//! (`--contrast-sweep 0.1,0.25,0.5,1`), giving every filter a response-against-contrast
//! curve at each tag, as the sweep VEP gives one per electrode.
//!
//! At each depth `d` the tag factor is `m + d (hi − lo) sin(...) / 2` around the same
//! mean `m` ([`crate::signal::stimulus`]): the mean input stays the same and only the
//! tag's contrast changes. For a network that sees each frame alone, stepping the depth
//! within one run and running each depth as its own analysis give the same responses,
//! so each depth is one analysis of the same images. Per depth, tap, filter and tagged
//! region the table holds the mean amplitude over images at the region's fundamental
//! (`[tap][channel][bin]` of [`Analysis::mean_amplitude`]) and the mean SNR there
//! ([`Analysis::line_snr`]). A filter that computes a linear function of its input
//! answers in proportion to `d`; saturation and thresholds bend the curve.

use serde::{Deserialize, Serialize};

use super::Analysis;
use crate::error::{Error, Result};
use crate::signal::lines::LineKind;

/// One point of a filter's contrast-response curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContrastRow {
    /// Modulation depth.
    pub depth: f32,
    /// Tap.
    pub tap: String,
    /// Channel (filter).
    pub channel: usize,
    /// Tagged region.
    pub region: String,
    /// The region's tag frequency, Hz.
    pub freq: f64,
    /// Mean amplitude over images at the fundamental.
    pub amplitude: f64,
    /// Mean SNR over images at the fundamental.
    pub snr: f64,
}

/// The checked depths of a sweep: each in [0, 1], at least two, no repeats.
pub fn check_depths(depths: &[f32]) -> Result<()> {
    if let Some(d) = depths.iter().find(|d| !(0.0..=1.0).contains(*d)) {
        return Err(Error::param("contrast-sweep", "modulation depths in [0, 1]", d));
    }
    if depths.len() < 2 {
        return Err(Error::param("contrast-sweep", "at least two depths", format!("{depths:?}")));
    }
    let mut sorted = depths.to_vec();
    sorted.sort_by(f32::total_cmp);
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::param("contrast-sweep", "distinct depths", format!("{depths:?}")));
    }
    Ok(())
}

/// The rows of one depth's analysis `a` (run at `a.config.stimulus.depth`).
pub fn rows(a: &Analysis) -> Vec<ContrastRow> {
    let depth = a.config.stimulus.depth;
    // The fundamental line of each region, in catalogue order.
    let fundamentals: Vec<(usize, usize)> = (0..a.plan.region_names.len())
        .filter_map(|r| {
            a.lines.iter().position(|l| l.kind == LineKind::Fundamental && l.coefs.get(r) == Some(&1)).map(|li| (r, li))
        })
        .collect();
    let mut out = Vec::new();
    for (t, tap) in a.taps.iter().enumerate() {
        for (ch, amp) in a.mean_amplitude[t].iter().enumerate() {
            for &(r, li) in &fundamentals {
                out.push(ContrastRow {
                    depth,
                    tap: tap.tap.name.clone(),
                    channel: ch,
                    region: a.plan.region_names[r].clone(),
                    freq: a.lines[li].freq,
                    amplitude: amp[a.lines[li].bin],
                    snr: a.line_snr[t][ch][li],
                });
            }
        }
    }
    out
}

/// One point of a layer's contrast-response curve: the mean over its filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerPoint {
    /// Modulation depth.
    pub depth: f32,
    /// Tap.
    pub tap: String,
    /// Tagged region.
    pub region: String,
    /// Number of filters averaged.
    pub filters: usize,
    /// Mean over filters of their mean amplitude at the fundamental.
    pub amplitude: f64,
    /// Mean over filters of their mean SNR at the fundamental.
    pub snr: f64,
}

/// Per depth, tap and region: the mean amplitude and mean SNR over the tap's filters
/// (finite values only)
/// (the layer's curve, as the report draws it), in the order of `rows`.
pub fn layer_curves(rows: &[ContrastRow]) -> Vec<LayerPoint> {
    let mut keys: Vec<(f32, &str, &str)> = Vec::new();
    for r in rows {
        let k = (r.depth, r.tap.as_str(), r.region.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(depth, tap, region)| {
            let of: Vec<&ContrastRow> =
                rows.iter().filter(|r| r.depth == depth && r.tap == tap && r.region == region).collect();
            let mean = |f: fn(&ContrastRow) -> f64| finite_mean(of.iter().map(|r| f(r)));
            LayerPoint {
                depth,
                tap: tap.to_string(),
                region: region.to_string(),
                filters: of.len(),
                amplitude: mean(|r| r.amplitude),
                snr: mean(|r| r.snr),
            }
        })
        .collect()
}

/// The mean of the finite values (a dead filter's SNR is NaN); NaN for none.
pub fn finite_mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.filter(|x| x.is_finite()).fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// `contrast_response.csv`: `depth,tap,channel,region,freq,amplitude,snr`.
pub fn to_csv(rows: &[ContrastRow]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&["depth", "tap", "channel", "region", "freq", "amplitude", "snr"]);
    for r in rows {
        t.row([
            num(r.depth),
            r.tap.clone(),
            num(r.channel),
            r.region.clone(),
            num(r.freq),
            num(r.amplitude),
            num(r.snr),
        ]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_depths_outside_the_unit_interval_repeated_or_single_are_refused() {
        assert!(check_depths(&[0.0, 0.5, 1.0]).is_ok());
        let e = check_depths(&[0.5, 1.5]).unwrap_err().to_string();
        assert!(e.contains("contrast-sweep") && e.contains("1.5"), "{e}");
        assert!(check_depths(&[0.5]).unwrap_err().to_string().contains("at least two"));
        assert!(check_depths(&[0.5, 0.5]).unwrap_err().to_string().contains("distinct"));
        assert!(check_depths(&[f32::NAN, 0.5]).is_err());
    }

    #[test]
    fn layer_curves_average_the_filters_of_each_depth_tap_and_region() {
        let row = |depth, channel, amplitude| ContrastRow {
            depth,
            tap: "conv1".into(),
            channel,
            region: "left".into(),
            freq: 6.0,
            amplitude,
            snr: 2.0 * amplitude,
        };
        let rows = vec![row(0.5, 0, 1.0), row(0.5, 1, 3.0), row(1.0, 0, 2.0), row(1.0, 1, 6.0)];
        let c = layer_curves(&rows);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].depth, c[0].amplitude, c[0].snr, c[0].filters), (0.5, 2.0, 4.0, 2));
        assert_eq!((c[1].depth, c[1].amplitude), (1.0, 4.0));
    }
}
