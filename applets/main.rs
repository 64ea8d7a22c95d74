//! The skiff multi-call binary: `basename(argv[0])` picks the applet, as in
//! busybox; invoked as `skiff`, the first argument names it.

mod args;
mod containerd;
mod ctr;
mod fetch;
mod output;
mod runc;
mod shim;

use std::ffi::OsString;
use std::process::ExitCode;

type Entry = fn(&str, Vec<String>) -> ExitCode;

struct Applet {
    name: &'static str,
    summary: &'static str,
    entry: Entry,
}

const APPLETS: &[Applet] = &[
    Applet {
        name: "runc",
        summary: "OCI runtime, runc-compatible",
        entry: runc::main,
    },
    Applet {
        name: "containerd",
        summary: "container daemon",
        entry: containerd::main,
    },
    Applet {
        name: "ctr",
        summary: "client for the container daemon",
        entry: ctr::main,
    },
    Applet {
        name: "containerd-shim",
        summary: "containerd shim v2",
        entry: shim::main,
    },
    Applet {
        name: "containerd-shim-skiff-v2",
        summary: "containerd shim v2",
        entry: shim::main,
    },
    Applet {
        name: "skiff-fetch",
        summary: "pull images and make bundles",
        entry: fetch::main,
    },
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn lookup(name: &str) -> Option<&'static Applet> {
    APPLETS.iter().find(|a| a.name == name)
}

fn usage() -> String {
    let mut s = format!(
        "skiff {VERSION}: the container stack as one binary\n\n\
         Usage: skiff APPLET [ARGS...]   or   APPLET [ARGS...] through a symlink\n\n\
         Applets:\n"
    );
    for a in APPLETS {
        s.push_str(&format!("  {:<26}{}\n", a.name, a.summary));
    }
    s
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args_os().map(lossy).collect();
    let invoked = argv
        .first()
        .map(|a| basename(a).to_string())
        .unwrap_or_default();
    if let Some(applet) = lookup(&invoked) {
        argv.remove(0);
        return (applet.entry)(applet.name, argv);
    }
    if invoked != "skiff" {
        eprintln!(
            "skiff: unknown applet {invoked:?}; valid applets: {}",
            names()
        );
        return ExitCode::from(2);
    }
    match argv.get(1).map(String::as_str) {
        Some("--list") => {
            for a in APPLETS {
                println!("{}", a.name);
            }
            ExitCode::SUCCESS
        }
        Some("--version" | "-v") => {
            println!("skiff version {VERSION}");
            ExitCode::SUCCESS
        }
        None | Some("--help" | "-h" | "help") => {
            print!("{}", usage());
            if argv.len() > 1 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Some(name) => match lookup(name) {
            Some(applet) => (applet.entry)(applet.name, argv.split_off(2)),
            None => {
                eprintln!("skiff: unknown applet {name:?}; valid applets: {}", names());
                ExitCode::from(2)
            }
        },
    }
}

fn names() -> String {
    APPLETS
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn lossy(s: OsString) -> String {
    s.into_string()
        .unwrap_or_else(|s| s.to_string_lossy().into_owned())
}
