//! `flickertag fetch-data`: downloads the official CIFAR-10 binary archive (kept out of
//! the library so that it does not depend on an HTTP client).

use std::io::Read;
use std::path::{Path, PathBuf};

use flickertag::data::{hex, CIFAR10_SHA256, CIFAR10_URL};
use flickertag::error::{Error, Result};
use sha2::{Digest, Sha256};

/// Downloads the official CIFAR-10 binary archive into `dest/cifar10/`, verifying its
/// SHA-256. `progress` is called with (bytes so far, total bytes if known).
pub fn download_cifar10(dest: &Path, mut progress: impl FnMut(u64, Option<u64>)) -> Result<PathBuf> {
    let out = dest.join("cifar10");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let offline = |e: String| Error::Data {
        path: out.clone(),
        reason: format!(
            "could not download {CIFAR10_URL} ({e}). Offline? Put the CIFAR-10 binary files \
             (test_batch.bin, data_batch_1..5.bin) into {} or point FLICKERTAG_DATA at a folder with cifar10/ in it",
            out.display()
        ),
    };
    let resp = ureq::get(CIFAR10_URL).call().map_err(|e| offline(e.to_string()))?;
    let total = resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
    let mut reader = resp.into_body().into_reader();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| offline(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        progress(buf.len() as u64, total);
    }
    let got = hex(&Sha256::digest(&buf));
    if got != CIFAR10_SHA256 {
        return Err(Error::Data {
            path: out,
            reason: format!("download has SHA-256 {got}, expected {CIFAR10_SHA256}"),
        });
    }
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(buf.as_slice()));
    for entry in ar.entries().map_err(|e| Error::io(&out, e))? {
        let mut entry = entry.map_err(|e| Error::io(&out, e))?;
        let name = entry.path().ok().and_then(|p| p.file_name().map(|f| f.to_owned()));
        if let Some(name) =
            name.filter(|n| n.to_string_lossy().ends_with(".bin") || n.to_string_lossy().ends_with(".txt"))
        {
            entry.unpack(out.join(name)).map_err(|e| Error::io(&out, e))?;
        }
    }
    Ok(out)
}
