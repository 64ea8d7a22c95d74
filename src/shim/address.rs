//! Where a shim listens, and which shim serves which container: the
//! conventions containerd's own shims follow, so containerd (and tools that
//! look there) find us.

use crate::error::{Context, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// containerd's fixed directory for shim sockets (not under its --state).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// Annotations that put several containers in one shim: the runc shim's
/// own group key, and the pod sandbox id that CRI sets.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// `unix:///run/containerd/s/<hex sha256 of "ADDRESS/NS/ID">`, where ID is
/// the group's id. Always under 108 bytes, whatever the names.
pub fn socket_address(containerd_address: &str, namespace: &str, group: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{containerd_address}/{namespace}/{group}").as_bytes(),
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_DIR}/{hex}")
}

/// The path of a `unix://` address.
pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The id that picks the shim of a container: a group annotation in the
/// bundle's config.json, else the container's own id.
pub fn group_id(bundle: &Path, id: &str) -> Result<String> {
    let path = bundle.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        // `delete` after a failed create may see no config: no group then.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(id.to_string()),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let v = crate::json::parse(&text, &path.display().to_string())?;
    let doc = crate::json::Node::new(&v, "");
    if let Some(annotations) = doc.get("annotations")? {
        let map = annotations.string_map()?;
        for key in GROUP_ANNOTATIONS {
            if let Some((_, g)) = map.iter().find(|(k, v)| k == key && !v.is_empty()) {
                return Ok(g.clone());
            }
        }
    }
    Ok(id.to_string())
}

/// Does a shim answer on this address?
pub fn is_serving(address: &str) -> bool {
    crate::ttrpc::connect_stream(address).is_ok()
}

/// Bind the socket of `address` (mode 0600, directory 0711). A socket file
/// that nobody answers on is stale and replaced; one that answers is an
/// AlreadyExists error.
pub fn listen(address: &str) -> Result<UnixListener> {
    let path = PathBuf::from(socket_path(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711));
    }
    let listener = match crate::ttrpc::listen(address) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if is_serving(address) {
                return Err(crate::err_kind!(
                    AlreadyExists,
                    "shim socket {}: a shim is already serving it",
                    path.display()
                ));
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("remove stale socket {}", path.display()))?;
            crate::ttrpc::listen(address).context("shim socket")?
        }
        Err(e) => return Err(e).context("shim socket"),
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// The socket file we bound, by its identity: removed once, and only while
/// it is still ours (after we stopped answering, a successor shim of the
/// same group may have bound a new one at the same path).
pub struct SocketFile {
    path: PathBuf,
    /// (dev, ino) of the file we bound.
    identity: Option<(u64, u64)>,
    removed: AtomicBool,
}

impl SocketFile {
    /// The socket file of `address`, just bound by us.
    pub fn bound(address: &str) -> SocketFile {
        let path = PathBuf::from(socket_path(address));
        let identity = std::fs::symlink_metadata(&path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        SocketFile {
            path,
            identity,
            removed: AtomicBool::new(false),
        }
    }

    /// Remove the file, the first time only, if it is still the one we bound.
    pub fn remove(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        let now = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now.is_some() && now == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write `<bundle>/address`, which containerd reads to find us again after
/// it restarts (write-temp then rename: never half a file).
pub fn write_address_file(bundle: &Path, address: &str) -> Result<()> {
    let tmp = bundle.join(".address.tmp");
    let dst = bundle.join("address");
    std::fs::write(&tmp, address).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &dst).with_context(|| format!("write {}", dst.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_containerds_hash() {
        // printf '%s' /run/containerd/containerd.sock.ttrpc/default/c1 | sha256sum
        let want = {
            let d = ring::digest::digest(
                &ring::digest::SHA256,
                b"/run/containerd/containerd.sock.ttrpc/default/c1",
            );
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let a = socket_address("/run/containerd/containerd.sock.ttrpc", "default", "c1");
        assert_eq!(a, format!("unix:///run/containerd/s/{want}"));
        assert!(socket_path(&a).len() < 108);
    }

    #[test]
    fn sha256_matches_sha256sum() {
        let out = std::process::Command::new("sh")
            .args(["-c", "printf %s /a.sock/ns/id | sha256sum"])
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout);
        let hex = hex.split_whitespace().next().unwrap();
        assert_eq!(
            socket_address("/a.sock", "ns", "id"),
            format!("unix:///run/containerd/s/{hex}")
        );
    }

    #[test]
    fn group_comes_from_the_annotations() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(&dir, "c1").unwrap(), "pod1");
        std::fs::write(dir.join("config.json"), r#"{"ociVersion":"1.0.2"}"#).unwrap();
        assert_eq!(group_id(&dir, "c1").unwrap(), "c1");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(group_id(&dir, "c2").unwrap(), "c2");
    }
}
