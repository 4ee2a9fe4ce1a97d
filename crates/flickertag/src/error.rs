//! The library's error type. Every variant names what went wrong and, where a file or a
//! parameter is involved, which one, so that a message at the command line is enough to
//! fix the problem.

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

/// An ONNX Runtime error as flickertag's (a function rather than a `From` impl, so that
/// `ort`'s types stay out of the public API).
pub(crate) fn runtime(e: ort::Error) -> Error {
    Error::Runtime(e.to_string())
}
