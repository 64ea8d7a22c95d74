//! The shim's three lives: `start` (run by containerd; finds or forks the
//! long-running shim and answers with its address), the long-running shim
//! itself (serves the task API until the last task is gone), and `delete`
//! (run by containerd after a shim is gone, to clean up what it held).

use super::address;
use super::events::{Publisher, Sink};
use super::log::Log;
use super::reaper::Reaper;
use super::service::{Shim, TaskService};
use crate::error::{Context, Error, Kind, Result};
use crate::proto::task::{DeleteResponse, SERVICE_V2, SERVICE_V3};
use crate::proto::types::Timestamp;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The flags containerd passes to every invocation.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub namespace: String,
    /// containerd's (gRPC) socket: part of our socket's name, and where
    /// the publish binary sends events.
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: Option<String>,
    pub debug: bool,
}

/// The first line the long-running shim writes to `start` when it is
/// listening; anything else is its error.
pub const READY: &str = "ready";

/// `start`: the address of the shim that will serve `flags.id` (in the
/// bundle, our cwd): a running shim of the same group, or a new one made by
/// running this binary as `argv0 SERVE_ARGS -bundle B -socket ADDRESS serve` (the
/// applet knows its own flags). Writes `<bundle>/address`.
pub fn start(flags: &Flags, argv0: &str, serve_args: &[String]) -> Result<String> {
    let bundle = std::env::current_dir().context("the bundle (our working directory)")?;
    let group = address::group_id(&bundle, &flags.id)?;
    let addr = address::socket_address(&flags.address, &flags.namespace, &group);
    if !address::is_serving(&addr) {
        match spawn_shim(argv0, serve_args, &bundle, &addr) {
            Ok(()) => {}
            // Another `start` of the same group won the race: share its shim.
            Err(e) if e.kind() == Kind::AlreadyExists && address::is_serving(&addr) => {}
            Err(e) => return Err(e),
        }
    }
    address::write_address_file(&bundle, &addr)?;
    Ok(addr)
}

/// Run the long-running shim and wait until it listens on `addr`. It is
/// left in a new session with stdio on /dev/null (the applet sees to it),
/// so it keeps none of containerd's pipes (containerd reads `start`'s
/// output to the end).
fn spawn_shim(argv0: &str, serve_args: &[String], bundle: &Path, addr: &str) -> Result<()> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(argv0)
        .args(serve_args)
        .arg("-bundle")
        .arg(bundle)
        .args(["-socket", addr, "serve"])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().context("start the shim")?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| crate::err!("shim: no stdout pipe"))?;
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    let line = line.trim();
    if line == READY {
        // Not waited for: it outlives us, and is reparented when we exit.
        drop(child);
        return Ok(());
    }
    let _ = child.wait();
    let (kind, msg) = match line.split_once(": ") {
        Some(("already exists", m)) => (Kind::AlreadyExists, m.to_string()),
        Some((_, m)) => (Kind::Other, m.to_string()),
        None if line.is_empty() => (Kind::Other, "the shim exited without a word".to_string()),
        None => (Kind::Other, line.to_string()),
    };
    Err(Error::of(kind, msg))
}

/// The long-running shim's socket (bound before it reports ready).
pub fn bind(addr: &str) -> Result<UnixListener> {
    address::listen(addr)
}

/// The line the long-running shim writes to `start` for a bind error.
pub fn bind_error_line(e: &Error) -> String {
    let kind = if e.kind() == Kind::AlreadyExists {
        "already exists"
    } else {
        "error"
    };
    format!("{kind}: {e}")
}

/// Serve the task API on `listener` until Shutdown. The caller (applet)
/// has made us a subreaper in a session of our own.
/// `log` is where background failures (and with -debug, each request) go.
pub fn serve(flags: &Flags, addr: &str, listener: UnixListener, log: Log) -> Result<()> {
    let reaper = Reaper::start().context("start the reaper")?;
    let sink = match std::env::var("TTRPC_ADDRESS") {
        Ok(a) if !a.is_empty() => Sink::Ttrpc(a),
        _ => Sink::Binary {
            binary: flags.publish_binary.clone(),
            address: flags.address.clone(),
        },
    };
    let events = Publisher::new(sink, &flags.namespace, reaper.clone(), log.clone());
    let socket = Arc::new(address::SocketFile::bound(addr));
    let shim = Shim::new(&flags.namespace, socket.clone(), reaper, events, log);
    let mut server = crate::ttrpc::Server::new();
    let service = Arc::new(TaskService(shim.clone()));
    server.register(SERVICE_V2, service.clone());
    server.register(SERVICE_V3, service);
    // Only containerd's user (ours: containerd runs us) may talk to us.
    server.allow_uid(Some(rustix::process::geteuid().as_raw()));
    server.set_handler_stack_size(super::SMALL_STACK * 2);
    shim.set_shutdown(server.shutdown_handle());
    let served = server.serve(listener).context("serve the task API");
    socket.remove();
    served
}

/// `delete`: clean up after a shim that is gone: force-delete the container
/// with the runtime if it still knows it, unmount the rootfs. Idempotent:
/// containerd runs it also after every normal shutdown. Always answers (as
/// containerd's runc shim does): what went wrong on the way comes back
/// beside the answer, for the caller to report, and never keeps the rootfs
/// mounted.
pub fn delete(flags: &Flags, bundle: &Path) -> (DeleteResponse, Vec<Error>) {
    let mut problems = Vec::new();
    if let Err(e) = delete_with_runtime(flags, bundle) {
        problems.push(e.wrap(format!("delete container {}", flags.id)));
    }
    super::rootfs::unmount_rootfs(bundle);
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let resp = DeleteResponse {
        pid,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(Timestamp::now()),
    };
    (resp, problems)
}

fn delete_with_runtime(flags: &Flags, bundle: &Path) -> Result<()> {
    let reaper = Reaper::start().context("start the reaper")?;
    let runtime = super::container::runtime_of_bundle(bundle, &flags.namespace, &reaper)?;
    // Ask the runtime only when its state is there (runc, crun and skiff
    // all keep ROOT/ID): the common case, after a clean shutdown, costs
    // no process.
    if Path::new(&runtime.root).join(&flags.id).exists() {
        match runtime.delete(&flags.id, true, &bundle.join("log.json")) {
            Err(e) if e.kind() != Kind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `-info`: containerd.types.RuntimeInfo, with skiff's runtime features
/// when skiff's runtime is the one used.
pub fn info(
    options: Option<&crate::proto::types::Any>,
) -> Result<crate::proto::options::RuntimeInfo> {
    use crate::proto::options::{RuntimeInfo, RuntimeVersion};
    let opts = super::options::from_any(options)?;
    let features = opts
        .binary_name
        .is_empty()
        .then(|| crate::proto::types::Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into(),
            value: crate::runtime::features::json().into_bytes(),
        });
    Ok(RuntimeInfo {
        name: "io.containerd.skiff.v2".into(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: String::new(),
        }),
        options: options.cloned(),
        features,
        annotations: Default::default(),
    })
}
