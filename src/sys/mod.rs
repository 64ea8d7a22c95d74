//! Thin safe wrappers over the kernel: how each thing is done. All of the
//! crate's `unsafe` lives under this module.
