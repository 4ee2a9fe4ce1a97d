//! The network: reading it (ONNX from any exporter, PyTorch checkpoints through a
//! data-only pickle reader), finding its taps and their layouts ([`model`]), and
//! running it on ONNX Runtime ([`engine`], over the library loaded at run time), and
//! putting a control network at the trained one's operating point ([`calibrate`]).
//! Everything read from a model file is untrusted input and is checked here.

pub mod calibrate;
pub mod engine;
pub mod model;
pub(crate) mod runtime;
