//! The signal layer: what the network is shown and what its responses' spectra say.
//!
//! Data flows one way through it: [`stimulus`] (tag plans and frames, what they modulate
//! in [`colour`]) → the model and
//! engine (outside this layer) → [`spectrum`] (FFT conventions, period folding) →
//! [`lines`] (the tagged, harmonic and intermodulation catalogue) → [`snr`]
//! (signal-to-noise ratios of the lines). How frames are stored before the network sees
//! them (8-bit pixels, JPEG) is [`quantize`]. Nothing here reads files or runs a network.

pub mod colour;
pub mod lines;
pub mod oddball;
pub mod quantize;
pub mod snr;
pub mod spectrum;
pub mod stimulus;
