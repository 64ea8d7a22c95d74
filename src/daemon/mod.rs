//! The skiff daemon (`containerd` applet): containerd's services over
//! gRPC on `--address` and over ttrpc on `ADDRESS.ttrpc` (containerd's
//! layout), backed by the metadata, content and snapshot stores under
//! `--root` and by shims for tasks (state under `--state`).
//!
//! The ttrpc socket also serves the shims' event forwarding (their
//! TTRPC_ADDRESS). Handlers ([`api::Handler`]) know nothing of the
//! transport: both servers serve the same ones. Everything is opened
//! lazily: an idle daemon holds two listeners, a few threads and no store.

pub mod api;
pub mod config;
mod content;
mod content_write;
mod diff;
mod events;
pub mod faults;
mod introspection;
mod pull;
pub mod services;
mod shim;
mod shim_log;
mod snapshots;
pub mod spec;
mod store;
mod tasks;

use crate::error::{Context, Result};
use crate::proto::services as ps;
use crate::ttrpc::Server;
use api::{Handler, TtrpcService};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

pub use config::Config;

/// A daemon ready to serve: its stores, tasks and a bound socket.
pub struct Daemon {
    server: Server,
    listener: std::os::unix::net::UnixListener,
    grpc: crate::grpc::Server,
    grpc_listener: std::os::unix::net::UnixListener,
    address: String,
    tasks: Arc<tasks::Tasks>,
    /// `<root>/daemon.lock`, held exclusively while this daemon lives.
    _root_lock: std::fs::File,
}

/// Stops a serving [`Daemon`] (both of its servers).
#[derive(Clone)]
pub struct ShutdownHandle {
    ttrpc: crate::ttrpc::ShutdownHandle,
    grpc: crate::grpc::ShutdownHandle,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.grpc.shutdown();
        self.ttrpc.shutdown();
    }
}

/// The ttrpc address that goes with a gRPC `address` (containerd's layout).
pub fn ttrpc_address(address: &str) -> String {
    format!("{address}.ttrpc")
}

impl Daemon {
    /// Check the registry hosts configuration, prepare the directories,
    /// bind the socket (0600, or 0660 for the configured group), recover
    /// the tasks a previous daemon left running.
    pub fn open(cfg: &Config) -> Result<Daemon> {
        // A broken hosts.toml fails the start, not the first pull.
        crate::registry::hosts::check_root(&cfg.hosts_dir)?;
        for d in [&cfg.root, &cfg.state] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
        let root_lock = lock_root(&cfg.root)?;
        let path = cfg.address.strip_prefix("unix://").unwrap_or(&cfg.address);
        // The ttrpc socket first: clients (and tests) wait for the main
        // address, and when it appears both must answer.
        let ttrpc_path = ttrpc_address(path);
        let listener = listen_restricted(&ttrpc_path, cfg.uid, cfg.gid)?;
        let grpc_listener = listen_restricted(path, cfg.uid, cfg.gid).inspect_err(|_| {
            let _ = std::fs::remove_file(&ttrpc_path);
        })?;

        let stores = Arc::new(store::Stores::new(&cfg.root).with_defaults(cfg.store_defaults()));
        let exchange = Arc::new(events::Exchange::default());
        let tasks = Arc::new(tasks::Tasks::new(
            &cfg.state,
            &format!("unix://{path}"),
            cfg.log_level == "debug" || cfg.log_level == "trace",
            stores.clone(),
            exchange.clone(),
        ));
        tasks.recover()?;
        stores.schedule_collections();
        if stores.exists() {
            if let Err(e) = stores.clear_interrupted() {
                crate::log::warn!("clear interrupted requests: {e}");
            }
            // What they left, and whatever else a dead daemon could not
            // collect, goes now (containerd collects at start too).
            stores.collect_garbage_soon();
        }

        let uid = rustix::process::geteuid().as_raw();
        let mut server = Server::new();
        let mut grpc = crate::grpc::Server::new();
        // With a group configured, the sockets' mode is the gate (its
        // members are not root); else only root's peers are served.
        if cfg.gid == 0 && cfg.uid == 0 {
            server.allow_uid(Some(uid));
            grpc.allow_uid(Some(uid));
        }
        let mut add = |name: &'static str, h: Arc<dyn Handler>| {
            let h = api::Timed::wrap(name, h);
            grpc.register(name, h.clone());
            server.register(name, Arc::new(TtrpcService(h)));
        };
        add(ps::version::SERVICE, Arc::new(services::Version));
        add(
            ps::namespaces::SERVICE,
            Arc::new(services::Namespaces(stores.clone())),
        );
        add(
            ps::images::SERVICE,
            Arc::new(services::Images(stores.clone())),
        );
        add(
            ps::containers::SERVICE,
            Arc::new(services::Containers(stores.clone(), cfg.state.clone())),
        );
        add(
            ps::leases::SERVICE,
            Arc::new(services::Leases(stores.clone())),
        );
        add(
            ps::content::SERVICE,
            Arc::new(content::Content(stores.clone())),
        );
        add(
            ps::snapshots::SERVICE,
            Arc::new(snapshots::Snapshots(stores.clone())),
        );
        add(ps::diff::SERVICE, Arc::new(diff::Diff(stores.clone())));
        add(
            ps::introspection::SERVICE,
            Arc::new(introspection::Introspection::new(&cfg.root)),
        );
        add(
            ps::tasks::SERVICE,
            Arc::new(tasks::TaskService(tasks.clone())),
        );
        let registry = pull::Registry {
            hosts_dir: Some(cfg.hosts_dir.clone()).filter(|d| !d.as_os_str().is_empty()),
            auth_file: crate::registry::auth::docker_config_path(),
            non_root_peers: cfg.uid != 0 || cfg.gid != 0,
        };
        add(ps::pull::SERVICE, Arc::new(pull::Pull { stores, registry }));
        let ev: Arc<dyn Handler> = Arc::new(events::Events(exchange.clone()));
        add(ps::events::SERVICE, ev.clone());
        add(crate::proto::events::EVENTS_SERVICE, ev);
        // Recovery is done and serving follows: the replay of the
        // restart's events runs from here.
        exchange.serving();
        Ok(Daemon {
            server,
            listener,
            grpc,
            grpc_listener,
            address: path.to_string(),
            tasks,
            _root_lock: root_lock,
        })
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            ttrpc: self.server.shutdown_handle(),
            grpc: self.grpc.shutdown_handle(),
        }
    }

    /// Serve until the shutdown handle fires; the sockets are removed
    /// then. Shims and containers keep running.
    pub fn serve(self) -> Result<()> {
        let Daemon {
            server,
            listener,
            grpc,
            grpc_listener,
            address,
            tasks,
            // Held (not dropped) until serving ends.
            _root_lock: _root_lock_held,
        } = self;
        let stop = ShutdownHandle {
            ttrpc: server.shutdown_handle(),
            grpc: grpc.shutdown_handle(),
        };
        let ttrpc_path = ttrpc_address(&address);
        let ttrpc = std::thread::Builder::new()
            .name("serve-ttrpc".into())
            .stack_size(256 << 10)
            .spawn(move || server.serve(listener))
            .context("start the ttrpc server thread")?;
        let r = grpc
            .serve(grpc_listener)
            .with_context(|| format!("serve {address}"));
        // One server ending (an error) ends the other.
        stop.shutdown();
        let t = match ttrpc.join() {
            Ok(t) => t.with_context(|| format!("serve {ttrpc_path}")),
            Err(_) => Err(crate::err!("ttrpc server thread panicked")),
        };
        let _ = std::fs::remove_file(&address);
        let _ = std::fs::remove_file(&ttrpc_path);
        // Deleted tasks' shims told to leave and bundles removed (the next
        // daemon's recovery finishes what is left after this).
        if !tasks.finish_background(BACKGROUND_LIMIT) {
            crate::log::warn!(
                "deleted tasks' cleanup still running after {}s: left to the next start",
                BACKGROUND_LIMIT.as_secs()
            );
        }
        r.and(t)
    }
}

/// How long an exiting daemon waits for deleted tasks' cleanup.
const BACKGROUND_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Listen on the unix socket file `path` (its directory made, a stale
/// socket there removed) owned by `uid`:`gid` with mode 0600, or 0660 with
/// a group, from the first moment anyone can reach it: it is bound in a
/// private (0700) directory beside `path`, restricted there, then renamed
/// into place. (Setting the umask around bind would do too, but the umask
/// is process-wide and the daemon has threads.)
pub(crate) fn listen_restricted(
    path: &str,
    uid: u32,
    gid: u32,
) -> Result<std::os::unix::net::UnixListener> {
    use std::path::Path;
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    remove_stale_socket(path)?;
    // Short (a socket path has at most 107 bytes), per process and socket.
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let private = parent.join(format!(".skiff-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("create {}", private.display()))?;
    let staged = private.join("s");
    let staged_str = staged.to_str().expect("made from a str");
    let bound = crate::ttrpc::listen(staged_str)
        .with_context(|| format!("listen on {path}"))
        .and_then(|l| restrict_socket(staged_str, uid, gid).map(|()| l))
        .and_then(|l| {
            std::fs::rename(&staged, path)
                .with_context(|| format!("move socket into place at {path}"))
                .map(|()| l)
        });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound
}

/// One daemon per `--root`: two would recover (and collect) under each
/// other's feet. The lock goes with the process (flock), so a daemon that
/// was killed leaves none behind.
fn lock_root(root: &std::path::Path) -> Result<std::fs::File> {
    let path = root.join("daemon.lock");
    crate::sys::fs::lock_file(&path, crate::sys::fs::LockMode::Exclusive, false)?.ok_or_else(|| {
        crate::err_kind!(
            AlreadyExists,
            "root {}: another daemon is using it ({} is locked)",
            root.display(),
            path.display()
        )
    })
}

/// The socket's owner and mode: root's alone (0600), or 0660 for the
/// configured group (containerd's `[grpc] uid`, `gid`).
fn restrict_socket(path: &str, uid: u32, gid: u32) -> Result<()> {
    if uid != 0 || gid != 0 {
        rustix::fs::chown(
            path,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("chown {path} to {uid}:{gid}"))?;
    }
    let mode = if gid != 0 { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {path}"))
}

/// A socket left by a daemon that died (nothing answers on it) goes; what
/// is not a socket is never removed.
fn remove_stale_socket(path: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::from(e).wrap(format!("address {path}"))),
    };
    if !meta.file_type().is_socket() {
        return Err(crate::err_kind!(
            AlreadyExists,
            "address {path}: exists and is not a socket"
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(crate::err_kind!(
            AlreadyExists,
            "address {path}: another daemon is serving there"
        )),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            std::fs::remove_file(path).with_context(|| format!("remove stale socket {path}"))
        }
        Err(e) => Err(crate::Error::from(e).wrap(format!("address {path}"))),
    }
}
