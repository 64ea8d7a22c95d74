//! The daemon applet: `containerd [--root DIR] [--state DIR] [--address
//! SOCK] [--config FILE] [--log-level L]` serves until SIGTERM/SIGINT
//! (containers and shims keep running); `containerd config default`
//! prints the effective configuration. Without `--config`,
//! /etc/skiff/config.toml is read when it exists.

use skiff::daemon::{Config, Daemon};
use skiff::log::{self, Format, Level};
use skiff::sys::signal;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/skiff/config.toml";

const USAGE: &str = "Usage: containerd [--root DIR] [--state DIR] [--address SOCKET] [--config FILE] [--log-level LEVEL]\n       containerd config default";

pub fn main(name: &str, args: Vec<String>) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut cfg = Config::default();
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        if a == "-v" || a == "--version" {
            println!("containerd skiff v{}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            positional.push(a);
            continue;
        };
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("flag --{body} needs a value\n{USAGE}"))?;
                (body.to_string(), v)
            }
        };
        flags.push((key, value));
    }
    // The config file first (the default one only when it exists, as
    // containerd does), the command line over it.
    let config = match flags.iter().find(|(k, _)| k == "config" || k == "c") {
        Some((_, path)) => Some(std::path::PathBuf::from(path)),
        None => Some(std::path::PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    if let Some(path) = config {
        for w in cfg.load(&path).map_err(|e| e.to_string())? {
            eprintln!("containerd: warning: {w}");
        }
    }
    for (k, v) in flags {
        match k.as_str() {
            "config" | "c" => {}
            "root" => cfg.root = v.into(),
            "state" => cfg.state = v.into(),
            "address" | "a" => cfg.address = v,
            "log-level" | "l" => cfg.log_level = v,
            _ => return Err(format!("unknown flag --{k}\n{USAGE}")),
        }
    }
    match positional.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => serve(&cfg),
        ["config", "default"] | ["config", "dump"] => {
            print!("{}", cfg.to_toml());
            Ok(())
        }
        _ => Err(format!(
            "unknown command {:?}\n{USAGE}",
            positional.join(" ")
        )),
    }
}

fn serve(cfg: &Config) -> Result<(), String> {
    let level = match cfg.log_level.as_str() {
        "trace" | "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" | "fatal" | "panic" => Level::Error,
        other => {
            return Err(format!(
                "--log-level {other:?}: unknown (debug, info, warn, error)"
            ))
        }
    };
    log::init(None, Format::Text, level);
    // Empty is unset (`VAR= cmd` clears it for one command).
    if let Some(point) = std::env::var(skiff::daemon::faults::ENV)
        .ok()
        .filter(|p| !p.is_empty())
    {
        skiff::daemon::faults::arm(&point).map_err(|e| e.to_string())?;
    }
    // Signals are taken by this thread alone (sigwait): block them before
    // any thread starts, so every thread inherits the mask. Shims get a
    // clean mask from std's spawn.
    signal::block_all().map_err(|e| e.to_string())?;
    let daemon = Daemon::open(cfg).map_err(|e| e.to_string())?;
    let stop = daemon.shutdown_handle();
    let server = std::thread::Builder::new()
        .name("serve".into())
        .stack_size(256 << 10)
        .spawn(move || daemon.serve())
        .map_err(|e| format!("start server thread: {e}"))?;
    loop {
        let sig = signal::wait_any();
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            break;
        }
        if server.is_finished() {
            break;
        }
    }
    stop.shutdown();
    match server.join() {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("server thread panicked".into()),
    }
}
