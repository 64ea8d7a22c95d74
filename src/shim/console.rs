//! The console socket: the runtime makes the container's pty and sends us
//! its master over this unix socket (`--console-socket`), as it does for
//! containerd's runc shim.

use crate::error::{Context, Result};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A listening console socket in a private temporary directory, removed
/// when dropped.
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "skiff-pty-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))?;
        let path = dir.join("pty.sock");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("listen on {}", path.display()));
            }
        };
        Ok(ConsoleSocket {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent (it has connected and sent it by
    /// the time its create/exec returned; `timeout` covers slower ones).
    pub fn receive(&self, timeout: Duration) -> Result<OwnedFd> {
        let ready = crate::sys::fs::wait_readable(&self.listener, Some(timeout))
            .context("wait on the console socket")?;
        if !ready {
            return Err(crate::err!(
                "console socket {}: the runtime sent no terminal",
                self.path.display()
            ));
        }
        let (conn, _) = self
            .listener
            .accept()
            .context("accept on the console socket")?;
        let mut buf = [0u8; 256];
        let (_, fd) = crate::sys::sock::recv_fd(&conn, &mut buf)?;
        fd.ok_or_else(|| crate::err!("console socket: a message came without the pty master"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
