//! `containerd.services.introspection.v1.Introspection/Server`: who this
//! daemon is. The uuid names the daemon's root, not the process: made
//! once (random, RFC 4122 version 4) and kept in the root where
//! containerd keeps its own (`io.containerd.service.v1.introspection-service/uuid`),
//! so it survives restarts and tells two daemons apart. `Plugins` is the
//! list in [`super::services::Introspection`], which this handler wraps.

use super::api::{status, Ctx, Handler};
use crate::error::{Context, Error, Result};
use crate::proto::services::introspection as pin;
use crate::proto::types::Empty;
use crate::ttrpc::{unary, Status};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The dir under the root containerd's introspection service uses.
const SERVICE_DIR: &str = "io.containerd.service.v1.introspection-service";

pub struct Introspection {
    plugins: super::services::Introspection,
    uuid_path: PathBuf,
    /// Read or made on first use (as containerd), then kept.
    uuid: Mutex<Option<String>>,
}

impl Introspection {
    pub fn new(root: &Path) -> Introspection {
        Introspection {
            plugins: super::services::Introspection,
            uuid_path: root.join(SERVICE_DIR).join("uuid"),
            uuid: Mutex::new(None),
        }
    }

    /// The root's uuid, made (durably) the first time it is asked for.
    pub fn uuid(&self) -> Result<String> {
        let mut cached = super::api::lock(&self.uuid);
        if let Some(u) = &*cached {
            return Ok(u.clone());
        }
        let u = match crate::record::read(&self.uuid_path)? {
            Some(text) => {
                let u = text.trim().to_string();
                if !is_uuid(&u) {
                    return Err(Error::new(format!(
                        "{}: not a uuid: {u:?}",
                        self.uuid_path.display()
                    )));
                }
                u
            }
            None => {
                let u = new_uuid()?;
                if let Some(dir) = self.uuid_path.parent() {
                    crate::record::create_dir(dir)?;
                }
                crate::record::write(&self.uuid_path, u.as_bytes())?;
                u
            }
        };
        *cached = Some(u.clone());
        Ok(u)
    }
}

/// A random (version 4) uuid in its usual text form.
fn new_uuid() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::new("no random bytes for a uuid"))
        .context("introspection")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::image::digest::to_hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Handler for Introspection {
    fn call(
        &self,
        ctx: &Ctx,
        method: &str,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, Status> {
        match method {
            "Server" => unary(payload, |_: Empty| {
                let pidns = std::fs::metadata("/proc/self/ns/pid")
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap_or(0);
                Ok(pin::ServerResponse {
                    uuid: self.uuid().map_err(status)?,
                    pid: std::process::id() as u64,
                    pidns,
                })
            }),
            _ => self.plugins.call(ctx, method, payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("skiff-uuid-{}", std::process::id()));
        let a = Introspection::new(&dir).uuid().unwrap();
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4", "version 4: {a}");
        // A new daemon on the same root: the same uuid.
        assert_eq!(Introspection::new(&dir).uuid().unwrap(), a);
        let other = std::env::temp_dir().join(format!("skiff-uuid2-{}", std::process::id()));
        assert_ne!(Introspection::new(&other).uuid().unwrap(), a);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(other);
    }
}
