//! The shim applet (`containerd-shim-skiff-v2`, `containerd-shim`):
//! containerd's Go-style command line (`-namespace NS -address A
//! -publish-binary B -id ID [-bundle B] [-debug] start|delete`, `-v`,
//! `-info`) over `skiff::shim`. containerd reads `start`'s stdout and
//! stderr together, so `start` prints the address and nothing else.

use skiff::shim::daemon::{self, Flags};
use skiff::Error;
use std::io::{Read, Write};
use std::process::ExitCode;

/// What the command line asks for.
enum Action {
    Version,
    Info,
    Start,
    Delete,
    /// The long-running shim, run by `start` with `-socket ADDR`.
    Serve(String),
}

/// Go's flag package: `-name value`, `--name value`, `-name=value`;
/// switches take no value (`-debug`, `-debug=true`). Parsing stops at the
/// first positional, the action.
fn parse(args: &[String]) -> Result<(Flags, Action), String> {
    let mut f = Flags::default();
    let mut socket = None;
    let mut version = false;
    let mut info = false;
    let mut action = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(body) = arg.strip_prefix('-') else {
            action = Some(arg.as_str());
            break;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let switch = |v: Option<String>| -> Result<bool, String> {
            match v.as_deref() {
                None | Some("true" | "1" | "t") => Ok(true),
                Some("false" | "0" | "f") => Ok(false),
                Some(other) => Err(format!("invalid boolean value {other:?} for -{name}")),
            }
        };
        match name {
            "debug" => f.debug = switch(inline)?,
            "v" | "version" => version = switch(inline)?,
            "info" => info = switch(inline)?,
            "namespace" | "address" | "publish-binary" | "id" | "bundle" | "socket" => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
                };
                match name {
                    "namespace" => f.namespace = value,
                    "address" => f.address = value,
                    "publish-binary" => f.publish_binary = value,
                    "id" => f.id = value,
                    "bundle" => f.bundle = Some(value),
                    _ => socket = Some(value),
                }
            }
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    let action = match (version, info, action) {
        (true, _, _) => Action::Version,
        (_, true, _) => Action::Info,
        (_, _, Some("start")) => Action::Start,
        (_, _, Some("delete")) => Action::Delete,
        (_, _, Some("serve")) => {
            Action::Serve(socket.ok_or("serve needs -socket ADDRESS (it is run by start)")?)
        }
        (_, _, Some(other)) => {
            return Err(format!("unknown action {other:?}: use start or delete"))
        }
        (_, _, None) => return Err("no action: use start or delete (or -v, -info)".into()),
    };
    if matches!(action, Action::Start | Action::Delete | Action::Serve(_)) {
        for (flag, value) in [("namespace", &f.namespace), ("id", &f.id)] {
            if value.is_empty() {
                return Err(format!("-{flag} is required"));
            }
        }
    }
    Ok((f, action))
}

pub fn main(name: &str, args: Vec<String>) -> ExitCode {
    if args.first().map(String::as_str) == Some(skiff::shim::logger::EXEC_LOGGER_FLAG) {
        return exec_logger(name, &args[1..]);
    }
    let (flags, action) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match action {
        Action::Version => {
            println!(
                "{name}:\n  Version:  {}\n  Runtime:  skiff (one binary: shim, runc)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Action::Info => info(),
        Action::Start => start(name, &flags),
        Action::Delete => delete(&flags),
        Action::Serve(socket) => return serve(&flags, &socket),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The options Any containerd writes on stdin (empty: none).
fn read_options() -> Result<Option<skiff::proto::types::Any>, Error> {
    use prost::Message;
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Error::from(e).wrap("read options from stdin"))?;
    if buf.is_empty() {
        return Ok(None);
    }
    skiff::proto::types::Any::decode(&buf[..])
        .map(Some)
        .map_err(|e| Error::new(format!("options on stdin: not a protobuf Any: {e}")))
}

fn write_out(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Error::from(e).wrap("write to stdout"))
}

fn info() -> Result<(), Error> {
    use prost::Message;
    let options = read_options()?;
    let info = daemon::info(options.as_ref())?;
    write_out(&info.encode_to_vec())
}

fn start(name: &str, flags: &Flags) -> Result<(), Error> {
    // Check the options now, so a bad config fails `ctr run` at once.
    skiff::shim::options::from_any(read_options()?.as_ref())?;
    let mut serve_args: Vec<String> = vec![
        "-namespace".into(),
        flags.namespace.clone(),
        "-address".into(),
        flags.address.clone(),
        "-publish-binary".into(),
        flags.publish_binary.clone(),
        "-id".into(),
        flags.id.clone(),
    ];
    if flags.debug {
        serve_args.push("-debug".into());
    }
    let addr = daemon::start(flags, name, &serve_args)?;
    write_out(addr.as_bytes())
}

fn delete(flags: &Flags) -> Result<(), Error> {
    use prost::Message;
    let bundle = match &flags.bundle {
        Some(b) => std::path::PathBuf::from(b),
        None => std::env::current_dir().map_err(|e| Error::from(e).wrap("working directory"))?,
    };
    // containerd logs our stderr as warnings and needs the answer anyway.
    let (resp, problems) = daemon::delete(flags, &bundle);
    for e in problems {
        eprintln!("{}: {e}", flags.id);
    }
    write_out(&resp.encode_to_vec())
}

/// The long-running shim: its own session (containerd's signals to the
/// process group are not ours), subreaper of every container process;
/// tells `start` it listens, then lets go of `start`'s pipe.
fn serve(flags: &Flags, socket: &str) -> ExitCode {
    let _ = skiff::sys::process::setsid();
    let listener = skiff::sys::process::set_child_subreaper().and_then(|()| daemon::bind(socket));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = write_out(format!("{}\n", daemon::bind_error_line(&e)).as_bytes());
            return ExitCode::from(1);
        }
    };
    if write_out(format!("{}\n", daemon::READY).as_bytes()).is_err() {
        return ExitCode::from(1);
    }
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        let _ = skiff::sys::process::dup2(null.as_raw_fd(), 1);
    }
    // containerd reads the fifo `log` of the bundle the shim started for.
    let log_fifo = flags.bundle.as_ref().and_then(|b| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(std::path::Path::new(b).join("log"))
            .ok()
    });
    let log = skiff::shim::log::Log::new(log_fifo, flags.debug);
    match daemon::serve(flags, socket, listener, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Run a `binary://` logger (for the shim, see `skiff::shim::logger`):
/// stdin, stdout and stderr are the stdout pipe, the stderr pipe and the
/// ready pipe; the logger finds them as fds 3, 4 and 5, its own stdio on
/// /dev/null.
fn exec_logger(name: &str, args: &[String]) -> ExitCode {
    use skiff::sys::process::{dup2, execve};
    use std::os::fd::AsRawFd;
    let Some(path) = args.first() else {
        eprintln!("{name}: -exec-logger needs a program");
        return ExitCode::from(2);
    };
    let moved = dup2(0, 3)
        .and_then(|()| dup2(1, 4))
        .and_then(|()| dup2(2, 5));
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    let (Ok(()), Ok(null)) = (moved, null) else {
        return ExitCode::from(1);
    };
    for fd in 0..3 {
        let _ = dup2(null.as_raw_fd(), fd);
    }
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    // Returns only on failure; stderr is /dev/null by now, and the shim
    // sees the ready pipe close with no logger behind it.
    let _ = execve(path, args, &env);
    ExitCode::from(127)
}
