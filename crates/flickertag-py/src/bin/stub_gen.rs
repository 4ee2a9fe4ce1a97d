//! Writes `python/flickertag/_flickertag.pyi` from the extension's Rust signatures and
//! doc comments (pyo3-stub-gen): `make stubs`. The package's tests compare the
//! committed file with the extension itself.

use std::path::Path;

fn main() -> pyo3_stub_gen::Result<()> {
    _flickertag::stub_info()?.generate()?;
    // pyo3-stub-gen writes a stub package (`_flickertag/__init__.pyi`); the extension is
    // a module file, so its stub is the file beside it.
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/flickertag");
    std::fs::rename(pkg.join("_flickertag/__init__.pyi"), pkg.join("_flickertag.pyi"))?;
    std::fs::remove_dir(pkg.join("_flickertag"))?;
    Ok(())
}
