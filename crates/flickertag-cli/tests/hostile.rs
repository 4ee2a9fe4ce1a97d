//! Hostile and broken inputs, one regression test per class of the attack report: each
//! input is built here, run through the `flickertag` binary under an address-space limit
//! (so an attempt to allocate gigabytes aborts the process and fails the test), and
//! must end in a clean error (exit 1) naming the problem, never a signal, a panic or a
//! hang.

mod common;
use common::{flickertag, legacy, node, one_view, onnx, run, PROTOCOL_1001};

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Address space the binary may use on a rejected input: 768 MiB of virtual memory
/// (resident memory stays far below; this catches any multi-gigabyte allocation).
const AS_LIMIT: u64 = 768 << 20;

/// Runs `cmd` with [`AS_LIMIT`] and a 60 s CPU limit; returns (exit code, stderr).
/// A signal (crash, abort on allocation failure, CPU limit) is code -1.
fn limited(cmd: &mut Command) -> (i32, String) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let as_lim = libc::rlimit { rlim_cur: AS_LIMIT, rlim_max: AS_LIMIT };
            let cpu = libc::rlimit { rlim_cur: 60, rlim_max: 60 };
            libc::setrlimit(libc::RLIMIT_AS, &as_lim);
            libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
    let out = cmd.stdin(Stdio::null()).output().expect("spawn flickertag");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn clean_error(code: i32, err: &str, needles: &[&str]) {
    assert_eq!(code, 1, "expected a clean error (exit 1), got {code}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// `flickertag export` of a checkpoint: reads and builds it, no ONNX Runtime involved.
fn export(p: &Path) -> (i32, String) {
    let out = p.with_extension("onnx");
    limited(flickertag().args(["export", "--model", p.to_str().unwrap(), "-o", out.to_str().unwrap()]))
}

/// Writes a hostile input; with `FLICKERTAG_KEEP_HOSTILE=DIR` also keeps a copy there
/// (`scripts/reliability.sh` measures each one's peak memory).
fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    if let Some(keep) = std::env::var_os("FLICKERTAG_KEEP_HOSTILE") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(Path::new(&keep).join(name), bytes).unwrap();
    }
    p
}

#[test]
fn regression_self_referential_list_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    // A list that contains itself, where the protocol number belongs and as the object.
    let selfref = b"\x80\x02]q\x00h\x00a.";
    let p = write(dir.path(), "selfref_proto.th", &legacy(selfref, b""));
    let (code, err) = export(&p);
    clean_error(code, &err, &["selfref_proto.th", "protocol version is a container"]);
    let p = write(dir.path(), "selfref_obj.th", &legacy(PROTOCOL_1001, selfref));
    let (code, err) = export(&p);
    clean_error(code, &err, &["selfref_obj.th"]);
}

#[test]
fn regression_a_million_nested_tuples_do_not_overflow_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut obj = b"\x80\x02)".to_vec();
    obj.extend(std::iter::repeat_n(0x85u8, 1_000_000)); // TUPLE1, a million times
    obj.extend_from_slice(b".\x80\x02].");
    let p = write(dir.path(), "nested.th", &legacy(PROTOCOL_1001, &obj));
    let (code, err) = export(&p);
    clean_error(code, &err, &["nested.th", "no state_dict"]);
}

#[test]
fn regression_memo_refetch_pairs_cost_linear_memory() {
    let dir = tempfile::tempdir().unwrap();
    // memo[0] = (); then 40 times memo[0] = (memo[0], memo[0]): 2^40 leaves if copied.
    let mut obj = b"\x80\x02)q\x00".to_vec();
    for _ in 0..40 {
        obj.extend_from_slice(b"h\x00h\x00\x86q\x00");
    }
    obj.extend_from_slice(b".\x80\x02].");
    let p = write(dir.path(), "pairs.th", &legacy(PROTOCOL_1001, &obj));
    let (code, err) = export(&p);
    clean_error(code, &err, &["pairs.th", "no state_dict"]);
    // A memo index of 2^31 (LONG_BINPUT) costs one entry, not 2^31.
    let p = write(dir.path(), "memo.th", &legacy(PROTOCOL_1001, b"\x80\x02]r\xff\xff\xff\x7f."));
    let (code, err) = export(&p);
    clean_error(code, &err, &["memo.th"]);
}

#[test]
fn regression_stride_zero_view_larger_than_its_storage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // shape (60000, 60000), stride (0, 0) over 4 elements: 3.6e9 values if materialised.
    let p = write(dir.path(), "stride0.th", &one_view(b"M\x60\xeaM\x60\xea\x86", b"K\x00K\x00\x86", [0.0; 4]));
    let (code, err) = export(&p);
    clean_error(code, &err, &["stride0.th", "3600000000 elements over a 4-element storage"]);
    // A view past the storage's end.
    let p = write(dir.path(), "past.th", &one_view(b"K\x02K\x02\x86", b"K\x03K\x01\x86", [0.0; 4]));
    let (code, err) = export(&p);
    clean_error(code, &err, &["past.th", "view reaches element"]);
}

#[test]
fn regression_zip_entry_over_its_budget_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.pth");
    // 300 MB of zeros deflate to a few hundred KB; the budget for that file is 64 MiB + 8x.
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(false);
        z.start_file("archive/data.pkl", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            z.write_all(&zeros).unwrap();
        }
        z.finish().unwrap();
    }
    assert!(std::fs::metadata(&p).unwrap().len() < 2 << 20);
    write(dir.path(), "bomb.pth", &std::fs::read(&p).unwrap());
    let (code, err) = export(&p);
    clean_error(code, &err, &["bomb.pth", "archive/data.pkl: declares 314572800 bytes"]);
}

#[test]
fn regression_renamed_key_is_an_error_naming_it_not_a_smaller_network() {
    // A ResNet-20 whose layer1.1.conv1.weight was renamed: before, it loaded as ResNet-8.
    let mut sd = flickertag::model::resnet::random_weights(3, 1);
    let t = sd.tensors.remove("layer1.1.conv1.weight").unwrap();
    sd.tensors.insert("layer1.1.conv1.weigth".into(), t);
    let e = flickertag::model::Model::from_checkpoint(&sd, Path::new("renamed.th"), "r20").unwrap_err().to_string();
    assert!(e.contains("renamed.th") && e.contains("layer1.1.conv1.weight"), "{e}");
    // A stage with another block count.
    let mut sd = flickertag::model::resnet::random_weights(3, 1);
    sd.tensors.retain(|k, _| !k.starts_with("layer3.2."));
    let e = flickertag::model::Model::from_checkpoint(&sd, Path::new("short.th"), "r20").unwrap_err().to_string();
    assert!(e.contains("[3, 3, 2]"), "{e}");
    // An extra tensor nobody uses.
    let mut sd = flickertag::model::resnet::random_weights(3, 1);
    sd.tensors.insert("head.weight".into(), flickertag::model::Tensor { shape: vec![1], data: vec![0.0] });
    let e = flickertag::model::Model::from_checkpoint(&sd, Path::new("extra.th"), "r20").unwrap_err().to_string();
    assert!(e.contains("does not use: head.weight"), "{e}");
}

#[test]
fn regression_fifo_in_place_of_a_data_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cifar10")).unwrap();
    let fifo = dir.path().join("cifar10/test_batch.bin");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, err) =
        limited(flickertag().args(["eval", "--model", "resnet32", "--data", dir.path().to_str().unwrap()]));
    clean_error(code, &err, &["test_batch.bin", "not a regular file"]);
}

#[test]
fn regression_short_or_altered_test_batch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cifar10")).unwrap();
    let p = dir.path().join("cifar10/test_batch.bin");
    std::fs::write(&p, vec![0u8; 9_999 * 3073]).unwrap();
    let (code, err) =
        limited(flickertag().args(["eval", "--model", "resnet32", "--data", dir.path().to_str().unwrap()]));
    clean_error(code, &err, &["test_batch.bin", "not a CIFAR-10 batch of 10,000"]);
    std::fs::write(&p, vec![0u8; 10_000 * 3073]).unwrap();
    let (code, err) =
        limited(flickertag().args(["eval", "--model", "resnet32", "--data", dir.path().to_str().unwrap()]));
    clean_error(code, &err, &["test_batch.bin", "SHA-256", "official"]);
}

#[test]
fn regression_images_bounded_before_decoding_and_truncated_jpeg_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A PNG that declares 40000 x 40000 pixels (its header is valid; the data is not).
    let big = dir.path().join("big.png");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&40_000u32.to_be_bytes());
    ihdr.extend_from_slice(&40_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    for chunk in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(chunk);
        png.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    std::fs::write(&big, &png).unwrap();
    let e = flickertag::data::Image::from_file(&big).unwrap_err().to_string();
    assert!(e.contains("40000x40000") && e.contains("8192"), "{e}");
    // A JPEG cut in its scan data.
    let jpg = dir.path().join("cut.jpg");
    flickertag::data::synthetic_image(3, 64, 64).to_rgb8().save(&jpg).unwrap();
    let bytes = std::fs::read(&jpg).unwrap();
    assert!(flickertag::data::Image::from_file(&jpg).is_ok());
    write(dir.path(), "cut.jpg", &bytes[..bytes.len() * 2 / 3]);
    let e = flickertag::data::Image::from_file(&jpg).unwrap_err().to_string();
    assert!(e.contains("truncated JPEG"), "{e}");
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn regression_huge_parameters_are_errors_before_any_work() {
    for (args, want) in [
        (vec!["lines", "--n-frames", "1000000000"], "invalid --n-frames"),
        (vec!["lines", "--max-order", "4294967295"], "invalid --max-order"),
        (vec!["lines", "--layout", "grid:3x3", "--freqs", "6,7.5,9,10.5,12,13.5,15,16.5,18"], ""),
        (vec!["analyze", "--noise-n-neighbor-freqs", "1000000000000"], "invalid --noise-n-neighbor-freqs"),
        (vec!["analyze", "--noise-skip-neighbor-freqs", "18446744073709551615"], "invalid --noise-skip-neighbor-freqs"),
        (vec!["analyze", "--threshold", "nan"], "invalid --threshold"),
        (vec!["analyze", "--threshold", "inf"], "invalid --threshold"),
        (vec!["analyze", "--lo", "nan"], "invalid lo/hi"),
        (vec!["analyze", "--phases", "inf,0"], "invalid --phases"),
        (vec!["analyze", "--freqs", "6,6"], "distinct frequencies"),
        (vec!["analyze", "--permutations", "1000000"], "invalid --permutations"),
        (vec!["eval", "--limit", "0"], "invalid --limit"),
        (vec!["stimulus", "--image", "10000"], "invalid --image"),
        (vec!["stimulus", "--scale", "5000"], "invalid --scale"),
        (vec!["analyze", "--images", "1", "--image-file", "x.png"], "one of images, n-images, all-images, image-file"),
    ] {
        let (code, err) = limited(flickertag().args(&args).env_remove("FLICKERTAG_DATA").env("HOME", "/nonexistent"));
        if want.is_empty() {
            assert_eq!(code, 0, "{args:?}: {err}");
        } else {
            clean_error(code, &err, &[want]);
        }
    }
}

#[test]
#[ignore = "needs the data folder"]
fn regression_out_of_range_prune_images_are_errors_not_panics() {
    let d = common::data_dir();
    let (code, err) = limited(
        flickertag().args(["prune-eval", "--n-images", "10", "--analysis-images", "99999"]).env("FLICKERTAG_DATA", &d),
    );
    clean_error(code, &err, &["invalid --analysis-images", "99999"]);
    let (code, err) = limited(flickertag().args(["prune-eval", "--n-images", "0"]).env("FLICKERTAG_DATA", &d));
    clean_error(code, &err, &["invalid --n-images"]);
}

#[test]
fn regression_huge_onnx_input_is_refused_before_the_shape_probe() {
    let dir = tempfile::tempdir().unwrap();
    let m = onnx(&[1, 3, 100_000, 100_000], vec![node("Relu", "/relu/Relu", &["input"], "output")], &[]);
    let p = write(dir.path(), "huge_input.onnx", &m);
    let (code, err) = limited(flickertag().args(["taps", p.to_str().unwrap()]));
    clean_error(code, &err, &["huge_input.onnx", "[N, 3, 100000, 100000]", "must be 1..="]);
}

#[test]
fn regression_nested_protobuf_groups_are_an_error_not_a_stack_overflow() {
    // RUSTSEC-2024-0437: a graph holding an unknown field of 500,000 nested groups (2 MB).
    // protobuf 3.4.0 recursed once per group and aborted (exit 134).
    let depth = 500_000;
    let mut graph = Vec::with_capacity(4 * depth);
    graph.extend(std::iter::repeat_n([0x9bu8, 0x06], depth).flatten()); // field 99, start group
    graph.extend(std::iter::repeat_n([0x9cu8, 0x06], depth).flatten()); // field 99, end group
    let mut m = vec![0x3a]; // ModelProto.graph (field 7, length-delimited)
    let mut n = graph.len();
    while n >= 0x80 {
        m.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    m.push(n as u8);
    m.extend(graph);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "nested_groups.onnx", &m);
    let (code, err) = limited(flickertag().args(["taps", p.to_str().unwrap()]));
    clean_error(code, &err, &["nested_groups.onnx", "not an ONNX protobuf", "recursion"]);
}

#[test]
fn regression_output_not_batch_first_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Conv to 2 channels, then the batch moved to the second axis: [2, N, 32, 32].
    let mut t = node("Transpose", "/t/Transpose", &["y"], "output");
    let mut perm = onnx_protobuf::AttributeProto::new();
    perm.name = "perm".into();
    perm.type_ = protobuf::EnumOrUnknown::new(onnx_protobuf::attribute_proto::AttributeType::INTS);
    perm.ints = vec![1, 0, 2, 3];
    t.attribute.push(perm);
    let m =
        onnx(&[0, 3, 32, 32], vec![node("Conv", "/conv/Conv", &["input", "w"], "y"), t], &[("w", &[2, 3, 1, 1], 0.5)]);
    let p = write(dir.path(), "transposed.onnx", &m);
    let img = dir.path().join("img.png");
    flickertag::data::synthetic_image(1, 32, 32).to_rgb8().save(&img).unwrap();
    let (code, err) = run_analysis(&p, &img, dir.path());
    clean_error(code, &err, &["output", "batch-first"]);
}

fn run_analysis(model: &Path, img: &Path, dir: &Path) -> (i32, String) {
    let out = dir.join("run");
    let args = ["analyze", "--model", model.to_str().unwrap(), "--image-file", img.to_str().unwrap(), "--out"];
    let mut c = flickertag();
    c.args(args).arg(&out).env_remove("FLICKERTAG_DATA");
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
#[ignore = "needs the data folder"]
fn regression_nan_logits_are_an_error_not_class_zero() {
    let d = common::data_dir();
    let dir = tempfile::tempdir().unwrap();
    // A 32x32 convolution with NaN weights to 10 channels, flattened: [N, 10] of NaN.
    let nodes = vec![node("Conv", "/conv/Conv", &["input", "w"], "y"), node("Flatten", "/f/Flatten", &["y"], "output")];
    let m = onnx(&[0, 3, 32, 32], nodes, &[("w", &[10, 3, 32, 32], f32::NAN)]);
    let p = write(dir.path(), "nan.onnx", &m);
    let (code, _, err) = common::run(
        flickertag().args(["eval", "--model", p.to_str().unwrap(), "--limit", "100"]).env("FLICKERTAG_DATA", &d),
    );
    clean_error(code, &err, &["nan: logit 0 of test image 0 is NaN"]);
}

#[test]
fn regression_full_disk_leaves_no_run_folder_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut c = flickertag();
    c.args(["demo", "--random", "--quiet", "--out", out.to_str().unwrap()]).env("HOME", dir.path());
    // Files may not grow past 200 KB: writes fail with EFBIG, as on a full disk.
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let l = libc::rlimit { rlim_cur: 200_000, rlim_max: 200_000 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &l);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    clean_error(o.status.code().unwrap_or(-1), &err, &["File too large"]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!out.exists(), "a half-written run folder: {names:?}");
    assert!(names.iter().all(|n| !n.to_string_lossy().contains("flickertag-tmp")), "{names:?}");
}

#[test]
fn regression_report_escapes_tampered_summary_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, err) = common::run(
        flickertag().args(["demo", "--random", "--quiet", "--out", out.to_str().unwrap()]).env("HOME", dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    let p = out.join("summary.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let evil = "<script>alert(1)</script>";
    v["model"]["name"] = evil.into();
    v["model"]["source"] = evil.into();
    v["images"][0]["name"] = evil.into();
    v["stimulus"]["region_names"][0] = evil.into();
    v["taps"][0]["name"] = format!("conv1{evil}").into();
    v["layers"][0]["tap"] = format!("conv1{evil}").into();
    std::fs::write(&p, v.to_string()).unwrap();
    let (code, err) = limited(flickertag().args(["report", out.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("<script"), "unescaped markup in the report");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn regression_tampered_run_folders_are_errors_in_report_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let (code, _, err) = common::run(
        flickertag().args(["demo", "--random", "--quiet", "--out", good.to_str().unwrap()]).env("HOME", dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    let summary = std::fs::read_to_string(good.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    type Tamper = Box<dyn Fn(&Path)>;
    let mut cases: Vec<(&str, Tamper)> = vec![
        ("no summary", Box::new(|d: &Path| std::fs::remove_file(d.join("summary.json")).unwrap())),
        ("empty summary", Box::new(|d: &Path| std::fs::write(d.join("summary.json"), "").unwrap())),
        (
            "cut summary",
            Box::new(move |d: &Path| std::fs::write(d.join("summary.json"), &summary[..summary.len() / 2]).unwrap()),
        ),
        ("no spectra", Box::new(|d: &Path| std::fs::remove_file(d.join("spectra_mean.npy")).unwrap())),
        (
            "garbage spectra",
            Box::new(|d: &Path| std::fs::write(d.join("spectra_mean.npy"), b"\x93NUMPY garbage").unwrap()),
        ),
        (
            "float32 spectra",
            Box::new(|d: &Path| std::fs::copy(d.join("spectra.npy"), d.join("spectra_mean.npy")).map(|_| ()).unwrap()),
        ),
    ];
    for (key, value) in [
        ("layers", serde_json::json!([])),
        ("taps", serde_json::json!([])),
        ("lines", serde_json::json!("x")),
        ("threshold", serde_json::json!("high")),
        ("stimulus", serde_json::json!({"config": {}})),
        ("snr", serde_json::json!({"n_neighbors": -1})),
    ] {
        let mut w = v.clone();
        w[key] = value;
        let text = w.to_string();
        cases.push((key, Box::new(move |d: &Path| std::fs::write(d.join("summary.json"), &text).unwrap())));
    }
    let mut w = v.clone();
    w["layers"][0]["filters"][0]["channel"] = 99.into();
    let text = w.to_string();
    cases.push(("channel", Box::new(move |d: &Path| std::fs::write(d.join("summary.json"), &text).unwrap())));
    let mut w = v.clone();
    w["stimulus"]["config"]["n_frames"] = 100000.into();
    let text = w.to_string();
    cases.push(("n_frames", Box::new(move |d: &Path| std::fs::write(d.join("summary.json"), &text).unwrap())));
    for (i, (what, tamper)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("t{i}"));
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&good).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
            }
        }
        tamper(&d);
        let (code, err) = limited(flickertag().args(["report", d.to_str().unwrap()]));
        clean_error(code, &err, &[]);
        assert!(err.lines().count() == 1, "{what}: {err}");
    }
}

/// Without a data folder (the embedded default), with `home` as the user's home.
fn no_data<'a>(c: &'a mut Command, home: &Path) -> &'a mut Command {
    c.env_remove("FLICKERTAG_DATA").env("HOME", home).env("XDG_CACHE_HOME", home)
}

// In this binary, not beside the timed kill tests of shards.rs: its runs would load
// the machine while those measure how long a run takes.
#[test]
fn regression_tampered_shard_contexts_are_errors_naming_the_file_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..2 {
        let out = d.join(format!("p{i}"));
        let (code, _, err) =
            run(no_data(flickertag().args(["analyze", "--quiet", "--shard", &format!("{i}/2"), "--out"]).arg(&out), d));
        assert_eq!(code, 0, "{err}");
    }
    // Each edit made to both shards alike (consistent, so only the check can refuse it).
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit, &str); 5] = [
        ("tap shape []", |c| c["taps"][0]["shape"] = serde_json::json!([]), "shape []"),
        ("tap dims []", |c| c["taps"][0]["dims"] = serde_json::json!([]), "dims []"),
        ("zero-sized tap", |c| c["taps"][0]["shape"] = serde_json::json!([16, 0, 32]), "positive sides"),
        ("no taps", |c| c["taps"] = serde_json::json!([]), "at least one tap"),
        ("frames per image 0", |c| c["frames_per_image"] = serde_json::json!(0), "frames_per_image"),
    ];
    for (what, edit, needle) in edits {
        for i in 0..2 {
            let (src, dst) = (d.join(format!("p{i}")), d.join(format!("t{i}")));
            let _ = std::fs::remove_dir_all(&dst);
            copy_dir(&src, &dst);
            let p = dst.join("partial.json");
            let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            edit(&mut j["context"]);
            std::fs::write(&p, serde_json::to_vec(&j).unwrap()).unwrap();
            // The checksum made to match, as a careful forger would: the context check
            // must still refuse it.
            fix_checksum(&dst, "partial.json");
        }
        let (code, _, err) = run(no_data(
            flickertag().arg("merge").arg(d.join("t0")).arg(d.join("t1")).arg("--out").arg(d.join("m")),
            d,
        ));
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains("partial.json") && err.contains(needle) && !err.contains("panicked"), "{what}: {err}");
        assert!(!d.join("m").exists(), "{what}: a refused merge writes nothing");
    }
}

/// Recomputes the checksum of `name` in the partial run `dir`'s `checksums.json`.
fn fix_checksum(dir: &Path, name: &str) {
    use sha2::Digest;
    let c = dir.join("checksums.json");
    let mut sums: serde_json::Value = serde_json::from_slice(&std::fs::read(&c).unwrap()).unwrap();
    let hex: String =
        sha2::Sha256::digest(std::fs::read(dir.join(name)).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    sums[name] = hex.into();
    std::fs::write(&c, serde_json::to_vec(&sums).unwrap()).unwrap();
}

/// Two shards of the embedded ResNet-32 exported to `d/m.onnx`, `d/p0` and `d/p1`; with
/// `change_weights`, one weight byte of `m.onnx` is changed between them (another
/// network at the same path, same architecture).
fn two_shards(d: &Path, change_weights: bool) {
    let m = d.join("m.onnx");
    let (code, _, err) = run(no_data(flickertag().args(["export", "--model", "resnet32", "-o"]).arg(&m), d));
    assert_eq!(code, 0, "{err}");
    for i in 0..2 {
        if i == 1 && change_weights {
            let mut b = std::fs::read(&m).unwrap();
            let mid = b.len() / 2; // inside the weights, which are most of the file
            b[mid] ^= 1;
            std::fs::write(&m, b).unwrap();
        }
        let out = d.join(format!("p{i}"));
        let args = ["analyze", "--quiet", "--model", m.to_str().unwrap(), "--shard", &format!("{i}/2"), "--out"];
        let (code, _, err) = run(no_data(flickertag().args(args).arg(&out), d));
        assert_eq!(code, 0, "{err}");
    }
}

fn merge_err(d: &Path, a: &str, b: &str) -> String {
    let (code, _, err) =
        run(no_data(flickertag().arg("merge").arg(d.join(a)).arg(d.join(b)).arg("--out").arg(d.join("m")), d));
    assert_eq!(code, 1, "{err}");
    assert!(!d.join("m").exists() && !err.contains("panicked"), "{err}");
    err
}

#[test]
fn regression_shards_of_another_network_at_the_same_path_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shards(d, true);
    let err = merge_err(d, "p0", "p1");
    assert!(err.contains("differ in the model") && err.matches("sha256").count() == 2, "{err}");
}

#[test]
fn regression_edited_damaged_or_linked_partial_runs_are_refused_by_their_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_shards(d, false);
    type Edit = fn(&Path);
    let edits: [(&str, Edit, &[&str]); 6] = [
        (
            "the stimulus edited alike in both shards",
            |t| {
                let p = t.join("partial.json");
                let s = std::fs::read_to_string(&p).unwrap();
                assert!(s.contains("7.5"));
                std::fs::write(&p, s.replacen("7.5", "8.5", 1)).unwrap();
            },
            &["partial.json", "checksum mismatch"],
        ),
        (
            "one bit of a spectrum flipped",
            |t| {
                let p = t.join("state/sum_amp.npy");
                let mut b = std::fs::read(&p).unwrap();
                let last = b.len() - 3;
                b[last] ^= 0x40;
                std::fs::write(&p, b).unwrap();
            },
            &["sum_amp.npy", "checksum mismatch"],
        ),
        (
            "an array replaced by a link to another shard's",
            |t| {
                let p = t.join("state/scores.npy");
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink(t.parent().unwrap().join("p0/state/scores.npy"), &p).unwrap();
            },
            &["scores.npy", "symbolic link"],
        ),
        (
            "an array marked Fortran-order, its checksum made to match",
            |t| {
                let p = t.join("state/sum_amp.npy");
                let b = std::fs::read(&p).unwrap();
                let at = b.windows(22).position(|w| w == b"'fortran_order': False").expect("npyz's header");
                let mut b2 = b.clone();
                b2[at..at + 22].copy_from_slice(b"'fortran_order': True ");
                std::fs::write(&p, b2).unwrap();
                fix_checksum(t, "state/sum_amp.npy");
            },
            &["sum_amp.npy", "Fortran order"],
        ),
        (
            "the checksum list removed",
            |t| std::fs::remove_file(t.join("checksums.json")).unwrap(),
            &["checksums.json", "missing"],
        ),
        (
            "a file the list does not name",
            |t| {
                let c = t.join("checksums.json");
                let mut sums: serde_json::Value = serde_json::from_slice(&std::fs::read(&c).unwrap()).unwrap();
                sums.as_object_mut().unwrap().remove("state/sum_line_snr.npy");
                std::fs::write(&c, serde_json::to_vec(&sums).unwrap()).unwrap();
            },
            &["sum_line_snr.npy", "not in the checksums"],
        ),
    ];
    for (what, edit, needles) in edits {
        for i in 0..2 {
            let (src, dst) = (d.join(format!("p{i}")), d.join(format!("t{i}")));
            let _ = std::fs::remove_dir_all(&dst);
            copy_dir(&src, &dst);
            edit(&dst);
        }
        let err = merge_err(d, "t0", "t1");
        assert!(needles.iter().all(|n| err.contains(n)), "{what}: {err}");
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn regression_external_weights_through_a_symlink_out_of_the_models_folder_are_refused() {
    use protobuf::Message;
    let dir = tempfile::tempdir().unwrap();
    let (models, elsewhere) = (dir.path().join("models"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&models).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // A 1x1 conv whose 6 weights (24 bytes) are external, in `w.data` beside the model.
    let m =
        onnx(&[0, 3, 8, 8], vec![node("Conv", "/conv/Conv", &["input", "w"], "output")], &[("w", &[2, 3, 1, 1], 0.5)]);
    let mut p = onnx_protobuf::ModelProto::parse_from_bytes(&m).unwrap();
    let t = &mut p.graph.as_mut().unwrap().initializer[0];
    let weights = std::mem::take(&mut t.raw_data);
    t.data_location = onnx_protobuf::tensor_proto::DataLocation::EXTERNAL.into();
    let mut e = onnx_protobuf::StringStringEntryProto::new();
    (e.key, e.value) = ("location".into(), "w.data".into());
    t.external_data.push(e);
    let model = write(&models, "ext.onnx", &p.write_to_bytes().unwrap());
    // The file itself beside the model: it loads.
    std::fs::write(models.join("w.data"), &weights).unwrap();
    let (code, err) = limited(flickertag().args(["taps", model.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    // A link beside the model to a file elsewhere (here a copy of the weights, so that
    // only where it lies differs): refused, naming the weight and the file.
    std::fs::remove_file(models.join("w.data")).unwrap();
    std::fs::write(elsewhere.join("secret"), &weights).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("secret"), models.join("w.data")).unwrap();
    let (code, err) = limited(flickertag().args(["taps", model.to_str().unwrap()]));
    clean_error(code, &err, &["ext.onnx", "`w`", "w.data", "outside the model's folder"]);
}

#[test]
fn regression_an_integer_first_output_is_an_error_naming_the_model_and_the_output() {
    use protobuf::Message;
    // conv -> pool -> flatten -> ArgMax: the first output is int64 class indices.
    let bytes = onnx(
        &[0, 3, 8, 8],
        vec![
            node("Conv", "/conv/Conv", &["input", "w"], "c"),
            node("GlobalAveragePool", "/pool", &["c"], "g"),
            node("Flatten", "/flatten", &["g"], "f"),
            node("ArgMax", "/argmax", &["f"], "output"),
        ],
        &[("w", &[4, 3, 1, 1], 0.3)],
    );
    let mut m = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
    m.graph.as_mut().unwrap().output[0].type_.mut_or_insert_default().mut_tensor_type().elem_type = 7; // int64
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("argmax.onnx");
    std::fs::write(&p, m.write_to_bytes().unwrap()).unwrap();
    // It failed inside ONNX Runtime: "Cannot extract Tensor<f32> from Tensor<i64>".
    let (code, err) = limited(
        flickertag()
            .args(["analyze", "--quiet", "--mean", "0.5", "--std", "0.25", "--out"])
            .arg(dir.path().join("r"))
            .arg("--model")
            .arg(&p)
            .env("HOME", dir.path()),
    );
    clean_error(code, &err, &["argmax.onnx", "first output `output` is not float32", "logits"]);
}
