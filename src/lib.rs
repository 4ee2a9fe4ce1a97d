//! freqtag: frequency tagging (SSVEP) analysis of neural network filters.
pub mod data;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod model;

pub use error::{Error, Result};
