//! The runc applet: runc-compatible command line over `skiff::runtime`.
use std::process::ExitCode;

pub fn main(_name: &str, _args: Vec<String>) -> ExitCode {
    ExitCode::from(1)
}
