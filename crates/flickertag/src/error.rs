//! The library's error type. Every variant names what went wrong and, where a file or a
//! parameter is involved, which one, so that the message is enough to fix the problem.
//!
//! Messages name options face-neutrally: `<mean>` or `<mean 0.485,0.456,0.406>`. Each
//! face renders them in its own words with [`render`]: `--mean 0.485,0.456,0.406` at
//! the command line, `mean=[0.485, 0.456, 0.406]` in Python.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in flickertag.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed. The message holds the I/O error's text, so it
    /// is not also chained as a `source` (which would print it twice).
    #[error("{path}: {cause}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        cause: std::io::Error,
    },
    /// A PyTorch/safetensors checkpoint could not be read.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An ONNX file could not be read or is not usable.
    #[error("ONNX model {path}: {reason}")]
    Onnx {
        /// The ONNX file (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model's structure does not fit what was asked (unknown tap, bad shape, ...).
    #[error("model: {0}")]
    Model(String),
    /// ONNX Runtime could not be loaded or failed while running.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// A data file (CIFAR-10 batch, image) is missing or malformed.
    #[error("data {path}: {reason}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The run was stopped on request (Ctrl-C, a notebook's "interrupt kernel"), between
    /// two inference batches.
    #[error("interrupted")]
    Interrupted,
    /// A parameter has a value outside what is allowed.
    #[error("invalid {name}: {reason} (got {given})")]
    Param {
        /// The parameter's name, as spelled on the command line / in the config.
        name: &'static str,
        /// What is allowed.
        reason: String,
        /// The value that was given.
        given: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }

    /// A parameter error: `name` is the parameter, `reason` says what is allowed,
    /// `given` echoes the value.
    pub fn param(name: &'static str, reason: impl Into<String>, given: impl ToString) -> Self {
        Error::Param { name, reason: reason.into(), given: given.to_string() }
    }
}

/// The face that shows a message (see [`render`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// The command line: `--name value`.
    Cli,
    /// Python keyword arguments: `name=value`.
    Python,
}

/// Options that are switches: Python shows them as `name=True`.
const SWITCHES: [&str; 7] = ["force", "allow-leakage", "per-image", "region-swap", "resume", "all-images", "no-stats"];

/// An option's name as `face` spells it (`noise-sigma`: `--noise-sigma` or `noise_sigma`;
/// `force` is Python's `overwrite`).
pub fn option_name(name: &str, face: Face) -> String {
    match face {
        Face::Cli => format!("--{name}"),
        Face::Python if name == "force" => "overwrite".into(),
        Face::Python => name.replace('-', "_"),
    }
}

/// Renders the option references of a library message (`<name>`, `<name value>`) for
/// `face`; other text is kept as it is.
pub fn render(text: &str, face: Face) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let reference = after.find('>').map(|close| &after[..close]).filter(|r| {
            let name = r.split(' ').next().unwrap_or("");
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        });
        let Some(r) = reference else {
            out.push('<');
            rest = after;
            continue;
        };
        let (name, value) = r.split_once(' ').map_or((r, None), |(n, v)| (n, Some(v)));
        let shown = option_name(name, face);
        out.push_str(&match (face, value) {
            (Face::Cli, None) => shown,
            (Face::Cli, Some(v)) => format!("{shown} {v}"),
            (Face::Python, None) if SWITCHES.contains(&name) => format!("{shown}=True"),
            (Face::Python, None) => format!("{shown}="),
            (Face::Python, Some(v)) if v.contains(',') => {
                format!("{shown}=[{}]", v.split(',').collect::<Vec<_>>().join(", "))
            }
            (Face::Python, Some(v)) => format!("{shown}={v}"),
        });
        rest = &after[r.len() + 1..];
    }
    out.push_str(rest);
    out
}

/// An ONNX Runtime error as flickertag's (a function rather than a `From` impl, so that
/// `ort`'s types stay out of the public API).
pub(crate) fn runtime(e: ort::Error) -> Error {
    Error::Runtime(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_references_render_as_each_face_spells_them() {
        let msg = "pass <mean> and <std>: <mean 0.485,0.456,0.406>, <resize 224>, or <force> (a < b, <NotAnOption>)";
        assert_eq!(
            render(msg, Face::Cli),
            "pass --mean and --std: --mean 0.485,0.456,0.406, --resize 224, or --force (a < b, <NotAnOption>)"
        );
        assert_eq!(
            render(msg, Face::Python),
            "pass mean= and std=: mean=[0.485, 0.456, 0.406], resize=224, or overwrite=True (a < b, <NotAnOption>)"
        );
        assert_eq!(render("<noise-sigma 0.1>", Face::Python), "noise_sigma=0.1");
    }
}
