//! Files in and out that every layer shares: images and CIFAR-10 ([`data`]), CSV
//! tables at round-trip precision ([`table`]), numbers JSON cannot hold ([`json`]), and
//! NPY arrays (`npy`, crate-internal), and the embedded default (the pretrained
//! ResNet-32 and the paper's ten images, compiled in: [`embedded`]). The run folder as
//! a whole is [`crate::report`]'s; single files outside one are written whole or not at
//! all ([`atomic`]).

pub mod atomic;
pub mod data;
pub mod embedded;
pub mod json;
pub(crate) mod npy;
pub mod table;
