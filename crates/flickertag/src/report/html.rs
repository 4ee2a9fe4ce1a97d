//! One self-contained HTML file per run (`report.html`): configuration, summary tables,
//! every figure embedded as a data URI (no network access needed to view it), and
//! links from each layer's row to its filters' spectra.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::plots::{chosen_filters, draw_run, spectrum_name, RunData};
use crate::error::{Error, Result};
use crate::importance::line_sums;

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn embed(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mime = if path.extension().is_some_and(|e| e == "svg") { "image/svg+xml" } else { "image/png" };
    Ok(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn anchor(tap: &str) -> String {
    format!("spec-{}", tap.replace(|c: char| !c.is_ascii_alphanumeric(), "-"))
}

/// The most a report may weigh: figures past it are linked (`plots/...`), not embedded.
pub const MAX_REPORT_BYTES: usize = 5_000_000;
/// Room kept for the text after the last figure.
const TEXT_RESERVE: usize = 600_000;
/// Rows of a layer's filter table shown (the top-scoring ones; all are in filters.csv).
const MAX_TABLE_ROWS: usize = 64;

/// An `<img>` source for `path` (relative to the run folder `run`): embedded as a data
/// URI while the report stays under its budget, else a relative link.
fn source(out: &str, run: &Path, path: &Path) -> Result<String> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len() as usize;
    if out.len() + size * 4 / 3 + TEXT_RESERVE < MAX_REPORT_BYTES {
        return embed(path);
    }
    Ok(link(path.strip_prefix(run).unwrap_or(path)))
}

/// What the report writes for `s` as text (escaped) and as a linked file name under
/// `plots/` (a URL): the fuzz target's view of the escaping.
#[doc(hidden)]
pub fn escaped(s: &str) -> (String, String) {
    (esc(s), link(&Path::new("plots").join(s)))
}

/// A relative path as a URL for an attribute: every byte but letters, digits and
/// `/ . _ - ~` percent-encoded, so no quote, bracket, space or `&` of a hostile tap
/// name reaches the HTML (a node named `x" onerror="...` ran script once the report
/// linked its figures instead of embedding them).
fn link(rel: &Path) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'.').remove(b'_').remove(b'-').remove(b'~');
    percent_encoding::percent_encode(rel.as_os_str().as_encoded_bytes(), KEEP).to_string()
}

pub(crate) fn figure(out: &mut String, run: &Path, dir: &Path, name: &str, caption: &str) -> Result<()> {
    let png = dir.join(format!("{name}.png"));
    if png.is_file() {
        let src = source(out, run, &png)?;
        writeln!(
            out,
            "<figure><img alt=\"{}\" src=\"{}\"><figcaption>{}</figcaption></figure>",
            esc(caption),
            src,
            esc(caption)
        )
        .unwrap();
    }
    Ok(())
}

pub(crate) fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">");
    for (k, v) in rows {
        writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)).unwrap();
    }
    out.push_str("</table>");
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}table.kv td,table.kv th{text-align:left}figure{margin:1.5em 0}img{max-width:100%}\
figcaption{color:#555;font-size:90%}details{margin:.3em 0}.imp{color:#b2182b;font-weight:bold}";

/// Draws the run's figures and writes `report.html` into the run folder. Returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let run = RunData::load(run_dir)?;
    let plots = draw_run(&run)?;
    let s = &run.summary;
    let mut h = String::new();
    let model = s.model.name.as_str();
    writeln!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flickertag: {}</title><style>{STYLE}</style></head><body>", esc(model)).unwrap();
    writeln!(h, "<h1>flickertag report: {}</h1>", esc(model)).unwrap();
    let stim = &s.stimulus.config;
    let regions: Vec<String> =
        s.stimulus.region_names.iter().zip(&stim.freqs).map(|(n, f)| format!("{n} {f} Hz")).collect();
    let images: Vec<String> = s
        .images
        .iter()
        .map(|i| format!("{}{}", i.name, i.class.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()))
        .collect();
    h.push_str("<h2>Configuration</h2>");
    kv_table(
        &mut h,
        &[
            ("model", format!("{} ({})", model, s.model.source.display())),
            ("preprocessing", s.model.preprocess.describe()),
            ("regions", regions.join(", ")),
            (
                "frames",
                format!(
                    "{} at {} fps, factor {}..{} at depth {}, modulating {}, domain {}, stored {}",
                    stim.n_frames, stim.fps, stim.lo, stim.hi, stim.depth, stim.modulation, stim.domain, stim.quantize
                ),
            ),
            ("inference", s.inference.description.clone()),
            (
                "frames in time",
                s.model.time.as_ref().map_or("each frame alone (no state, no clip)".to_string(), |t| t.describe()),
            ),
            ("SNR", compact(&serde_json::to_value(&s.snr).unwrap_or_default())),
            ("threshold", s.threshold.to_string()),
            (
                "images",
                format!(
                    "{}: {}",
                    images.len(),
                    images.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
                        + if images.len() > 20 { ", ..." } else { "" }
                ),
            ),
            ("time", format!("{:.2} s", s.seconds)),
        ],
    );
    figure(
        &mut h,
        &run.dir,
        &run.dir,
        "stimulus",
        "Stimulus: frames of the first image over one period, and each region's modulation factor",
    )?;
    h.push_str("<h2>Layers</h2>");
    figure(&mut h, &run.dir, &plots, "layers", "Important filters per layer (red) out of all filters (outline)")?;
    h.push_str("<table><tr><th>tap</th><th>conv #</th><th>filters</th><th>important</th><th>mean score</th><th>important filters (by score)</th><th>spectrum</th></tr>");
    for l in run.layers() {
        let tap = l.tap.as_str();
        let imp: Vec<String> = l.important.iter().map(|x| x.to_string()).collect();
        writeln!(
            h,
            "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td style=\"text-align:left\">{}</td><td><a href=\"#{}\">spectra</a></td></tr>",
            esc(tap),
            l.conv_ordinal.map(|o| format!("#{o}")).unwrap_or_default(),
            l.n_filters,
            l.n_important,
            l.mean_score,
            imp.join(" "),
            anchor(tap)
        )
        .unwrap();
    }
    h.push_str("</table>");
    figure(
        &mut h,
        &run.dir,
        &plots,
        "heatmap",
        "Mean score of every filter; white at the threshold, red above, blue below",
    )?;
    figure(
        &mut h,
        &run.dir,
        &plots,
        "selectivity",
        "Left/right selectivity of every filter from its harmonic amplitudes (red: important)",
    )?;
    if let Some(st) = &s.stats {
        writeln!(h, "<h2>Statistics across images</h2><p>Whether a filter responds at a line is read off its spectrum against the float32 rounding floor (filters.csv: resp_*). Across images: phase consistency, Hotelling's T² on each filter's complex coefficient at the lines {} across the {} images (does the response keep its phase and sign from image to image; the count grows with the number of images), a filter's p-value the Bonferroni-corrected smallest, Benjamini-Hochberg over all filters at q = {}. Split-half stability of the operating set (Jaccard, pooled over the network): {:.3} ± {:.3}.</p>",
            esc(&st.tested_lines.join(", ")), st.n_images, st.q, st.operating_jaccard, st.operating_jaccard_sd).unwrap();
        if let Some(cv) = st.cross_validation.as_ref().filter(|c| !c.splits.is_empty()) {
            let (t, tl, th) = cv.summary(|r| r.threshold);
            let (k, kl, kh) = cv.summary(|r| r.kappa);
            let (o, ol, oh) = cv.summary(|r| r.kappa_operating);
            writeln!(h, "<p>Cross-validated selection (crossval.csv, {} random halves): the threshold chosen on one half as the most stable there, {t:.3} [{tl:.3}, {th:.3}], gives a set that the other half's agrees with at a chance-corrected Jaccard index of {k:.3} [{kl:.3}, {kh:.3}]; at the operating threshold {o:.3} [{ol:.3}, {oh:.3}] (mean [2.5 %, 97.5 %] over the splits; 0 is chance, 1 the same set).</p>",
                cv.splits.len()).unwrap();
        }
        h.push_str("<table><tr><th>tap</th><th>important (threshold)</th><th>phase-consistent (FDR)</th></tr>");
        for (l, x) in run.layers().iter().zip(&st.layers) {
            writeln!(
                h,
                "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&l.tap),
                l.n_important,
                x.n_significant
            )
            .unwrap();
        }
        h.push_str("</table>");
        figure(&mut h, &run.dir, &plots, "sweep_threshold", "Threshold sweep: important filters per layer (left) and the Jaccard index of the sets from random halves of the images (right); blue = first layer, red = last")?;
        figure(
            &mut h,
            &run.dir,
            &plots,
            "sweep_q",
            "FDR sweep: phase-consistent filters per layer and their split-half stability",
        )?;
    }
    if super::paradigms::draw_contrast(&run.dir, &plots)? {
        h.push_str("<h2>Contrast response</h2><p>The analysis repeated at each modulation depth of the sweep (contrast_response.csv: every filter's amplitude and SNR at each tag, per depth).</p>");
        figure(&mut h, &run.dir, &plots, "contrast", "Mean amplitude over each layer's filters at the region's tag against modulation depth, relative to the layer's largest (first layer blue, last red; dashed: a linear response)")?;
    }
    if !s.maps.is_empty() {
        h.push_str("<h2>Per-neuron maps</h2>");
        for m in &s.maps {
            let tap = m.tap.as_str();
            let name = format!("map_{}", tap.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '.', "_"));
            figure(&mut h, &run.dir, &plots, &name, &format!("{tap}: SNR of every neuron (position) at each tag's fundamental and f1+f2, next to the first image"))?;
        }
    }
    h.push_str("<h2>Filters</h2><p>For each layer, the spectrum of its top-scoring filter (amplitude and SNR, mean over images) with every catalogued line marked, and the table of all its filters.</p>");
    let n_tags = stim.freqs.len();
    for (t, ch) in chosen_filters(&run) {
        let l = &run.layers()[t];
        let tap = l.tap.as_str();
        writeln!(h, "<h3 id=\"{}\">{} (filter {ch})</h3>", anchor(tap), esc(tap)).unwrap();
        let png = plots.join(format!("{}.png", spectrum_name(tap, ch)));
        let src = source(&h, &run.dir, &png)?;
        writeln!(h, "<img alt=\"spectrum of {} filter {ch}\" src=\"{}\">", esc(tap), src).unwrap();
        let mut shown: Vec<_> = l.filters.iter().collect();
        if shown.len() > MAX_TABLE_ROWS {
            shown.sort_by(|a, b| b.mean_score.total_cmp(&a.mean_score));
            shown.truncate(MAX_TABLE_ROWS);
            shown.sort_by_key(|f| f.channel);
        }
        let more = l.filters.len() - shown.len();
        let what = if more > 0 {
            format!("the {} top-scoring of {} filters (all in filters.csv)", shown.len(), l.filters.len())
        } else {
            "all filters of this layer".into()
        };
        writeln!(h, "<details><summary>{what}</summary><table><tr><th>filter</th><th>mean score</th><th>sd</th><th>pass fraction</th><th>selectivity</th><th>integration</th></tr>").unwrap();
        for f in shown {
            let c = f.channel;
            let sums = line_sums(run.spectrum(t, c), &run.lines, n_tags);
            let cls = if f.important { " class=\"imp\"" } else { "" };
            writeln!(
                h,
                "<tr{cls}><td>{c}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                f.mean_score,
                f.sd_score,
                f.pass_fraction,
                sums.selectivity(),
                sums.integration()
            )
            .unwrap();
        }
        h.push_str("</table></details>");
    }
    writeln!(h, "<p style=\"color:#777\">flickertag {}; files of this run: summary.json, filters.csv, layers.csv, lines.csv, *.npy, plots/.</p></body></html>", env!("CARGO_PKG_VERSION")).unwrap();
    let out = run.dir.join("report.html");
    std::fs::write(&out, h).map_err(|e| Error::io(&out, e))?;
    Ok(out)
}

fn compact(v: &serde_json::Value) -> String {
    v.as_object().map_or(v.to_string(), |o| o.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_linked_figure_paths_of_hostile_tap_names_are_urls_without_markup() {
        let d = tempfile::tempdir().unwrap();
        let plots = d.path().join("plots");
        std::fs::create_dir(&plots).unwrap();
        let name = "spectrum_x\" onerror=\"alert(1)\" a='<b>&amp;_0.png";
        let png = plots.join(name);
        std::fs::write(&png, b"png").unwrap();
        // A report already at its budget: the figure is linked, not embedded.
        let src = source(&"x".repeat(MAX_REPORT_BYTES), d.path(), &png).unwrap();
        assert!(!src.contains(['"', '\'', '<', '>', ' ', '&']), "{src}");
        let back = percent_encoding::percent_decode_str(&src).decode_utf8().unwrap();
        assert_eq!(back, format!("plots/{name}"), "the link still names the file");
        // Under the budget it is embedded.
        assert!(source("", d.path(), &png).unwrap().starts_with("data:image/png;base64,"));
    }
}
