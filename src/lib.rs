//! freqtag: frequency tagging (SSVEP) analysis of neural network filters.
pub mod analysis;
pub mod data;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod importance;
pub mod lines;
pub mod model;
pub mod report;
pub mod snr;
pub mod spectrum;
pub mod stimulus;

pub use error::{Error, Result};
