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
mod events;
mod pull;
pub mod services;
mod shim;
mod shim_log;
pub mod spec;
mod store;
mod tasks;

use crate::error::{Context, Result};
use crate::proto::services as ps;
use crate::ttrpc::Server;
use api::{Handler, TtrpcService};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

pub use config::Config;

/// A daemon ready to serve: its stores, tasks and a bound socket.
pub struct Daemon {
    server: Server,
    listener: std::os::unix::net::UnixListener,
    grpc: crate::grpc::Server,
    grpc_listener: std::os::unix::net::UnixListener,
    address: String,
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

/// Bind `path` (a stale socket goes first), owner-only.
fn bind(path: &str) -> Result<std::os::unix::net::UnixListener> {
    remove_stale_socket(path)?;
    let listener = crate::ttrpc::listen(path).with_context(|| format!("listen on {path}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {path}"))?;
    Ok(listener)
}

impl Daemon {
    /// Prepare the directories, bind the socket (0600), recover the tasks
    /// a previous daemon left running.
    pub fn open(cfg: &Config) -> Result<Daemon> {
        for d in [&cfg.root, &cfg.state] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
        let path = cfg.address.strip_prefix("unix://").unwrap_or(&cfg.address);
        if let Some(parent) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let grpc_listener = bind(path)?;
        let ttrpc_path = ttrpc_address(path);
        let listener = bind(&ttrpc_path)?;

        let stores = Arc::new(store::Stores::new(&cfg.root));
        let exchange = Arc::new(events::Exchange::default());
        let tasks = Arc::new(tasks::Tasks::new(
            &cfg.state,
            &format!("unix://{path}"),
            cfg.log_level == "debug" || cfg.log_level == "trace",
            stores.clone(),
            exchange.clone(),
        ));
        tasks.recover()?;

        let uid = rustix::process::geteuid().as_raw();
        let mut server = Server::new();
        server.allow_uid(Some(uid));
        let mut grpc = crate::grpc::Server::new();
        grpc.allow_uid(Some(uid));
        let mut add = |name: &str, h: Arc<dyn Handler>| {
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
            Arc::new(services::Content(stores.clone())),
        );
        add(
            ps::snapshots::SERVICE,
            Arc::new(services::Snapshots(stores.clone())),
        );
        add(
            ps::introspection::SERVICE,
            Arc::new(services::Introspection),
        );
        add(ps::tasks::SERVICE, Arc::new(tasks::TaskService(tasks)));
        add(ps::pull::SERVICE, Arc::new(pull::Pull(stores)));
        let ev: Arc<dyn Handler> = Arc::new(events::Events(exchange));
        add(ps::events::SERVICE, ev.clone());
        add(crate::proto::events::EVENTS_SERVICE, ev);
        Ok(Daemon {
            server,
            listener,
            grpc,
            grpc_listener,
            address: path.to_string(),
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
        r.and(t)
    }
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
