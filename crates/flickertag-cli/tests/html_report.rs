//! The HTML report opens in headless Chromium: a non-blank screenshot and no errors
//! logged by the page. Skips, saying so, where Chromium is not installed
//! (`.ci/run` installs Debian's `chromium`).

mod common;

/// The browser; None (saying so) where none is installed, except in CI, which
/// installs Chromium and sets FLICKERTAG_REQUIRE_ALL: there the check must run.
fn chromium() -> Option<std::path::PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("FLICKERTAG_REQUIRE_ALL").is_none(),
            "Chromium is not installed (apt-get install chromium): the browser check cannot run"
        );
        eprintln!("skipping the browser check: Chromium is not installed (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on `html` and returns what it logged (console included).
fn chromium_log(browser: &std::path::Path, html: &std::path::Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn regression_hostile_tap_names_run_no_script_in_a_report_that_links_its_figures() {
    // 70 convs (1x1, so no padding is needed), every other one named to break out of
    // an attribute, and a ReLU after each: 140 figures, past the report's 5 MB
    // embedding budget, so later figures are linked by path, not embedded.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut nodes = Vec::new();
    let mut inits: Vec<(String, Vec<i64>, f32)> = Vec::new();
    let mut prev = "input".to_string();
    for i in 0..70 {
        let name =
            if i % 2 == 0 { format!("c{i}\" onerror=\"console.log('PWNED{i}')\" x=\"") } else { format!("conv{i}") };
        let w = format!("w{i}");
        inits.push((w.clone(), vec![8, if i == 0 { 3 } else { 8 }, 1, 1], if i == 0 { 0.3 } else { 0.125 }));
        nodes.push(common::node("Conv", &name, &[&prev, &w], &format!("t{i}")));
        nodes.push(common::node("Relu", &format!("relu{i}"), &[&format!("t{i}")], &format!("r{i}")));
        prev = format!("r{i}");
    }
    nodes.push(common::node("GlobalAveragePool", "gap", &[&prev], "g"));
    nodes.push(common::node("Flatten", "flat", &["g"], "output"));
    let inits: Vec<(&str, &[i64], f32)> = inits.iter().map(|(n, s, v)| (n.as_str(), s.as_slice(), *v)).collect();
    let model = d.join("hostile.onnx");
    std::fs::write(&model, common::onnx(&[0, 3, 32, 32], nodes, &inits)).unwrap();
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zoo/image.png");
    let out = d.join("r");
    let (code, _, err) = common::run(
        common::flickertag()
            .args(["analyze", "--quiet", "--mean", "0.5", "--std", "0.25", "--image-file", image, "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&out)
            .env("HOME", d),
    );
    assert_eq!(code, 0, "{err}");
    let html = out.join("report.html");
    let text = std::fs::read_to_string(&html).unwrap();
    // The first hostile figure that is linked (percent-encoded), not embedded.
    let k = (0..70)
        .step_by(2)
        .find(|k| {
            text.contains(&format!("src=\"plots/spectrum_c{k}%22%20onerror%3D%22console.log%28%27PWNED{k}%27%29"))
        })
        .unwrap_or_else(|| panic!("no hostile figure is linked: the report is {} bytes", text.len()));
    let linked = format!("src=\"plots/spectrum_c{k}%22%20onerror%3D%22console.log%28%27PWNED{k}%27%29%22%20x%3D%22_");
    // The positive control: the same report with that link as it was written before.
    let raw = format!("src=\"plots/spectrum_c{k}\" onerror=\"console.log('PWNED{k}')\" x=\"_");
    let control = out.join("control.html");
    std::fs::write(&control, text.replace(&linked, &raw)).unwrap();

    let Some(browser) = chromium() else { return };
    let log = chromium_log(&browser, &control);
    assert!(log.contains(&format!("PWNED{k}")), "the control's injected handler ran (the check can see script): {log}");
    let log = chromium_log(&browser, &html);
    assert!(!log.contains("PWNED"), "script from a tap name ran in the report: {log}");
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = common::demo_without_data(dir.path(), &["--random"]);
    let html = out.join("report.html");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("<h1>flickertag report") && text.contains("data:image/png;base64,"));
    assert!(!text.contains("http://") && !text.contains("https://"), "the report must not need the network");
    assert!(
        text.contains("href=\"#spec-layer1-0-conv1\"") && text.contains("id=\"spec-layer1-0-conv1\""),
        "layer rows link to spectra"
    );

    let Some(browser) = chromium() else { return };
    let shot = dir.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(shot.is_file(), "no screenshot; chromium said: {log}");
    let console_errors: Vec<&str> =
        log.lines().filter(|l| l.contains("CONSOLE") && (l.contains("rror") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "page logged errors: {console_errors:?}");
    let img = image::open(&shot).unwrap().to_rgb8();
    let mut colours = std::collections::HashSet::new();
    let dark = img.pixels().filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
    for p in img.pixels().step_by(7) {
        colours.insert(p.0);
    }
    assert!(colours.len() > 50, "screenshot looks blank ({} colours)", colours.len());
    assert!(dark > 1000, "no text or plots visible in the screenshot");
}
