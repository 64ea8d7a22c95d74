//! The runtime options a shim gets from containerd: containerd.runc.v1.Options
//! (what CRI passes from containerd's config) or runtimeoptions.v1.Options
//! naming a small config file (what `ctr --runtime-config-path` passes).
//! They are saved in the bundle at Create so that `delete`, run after the
//! shim died, drives the same runtime with the same root.

use crate::error::{Context, Error, Result};
use crate::json::{self, Node};
use crate::proto::options::{RuncOptions, RuntimeOptions, RUNC_OPTIONS, RUNTIME_OPTIONS};
use crate::proto::types::Any;
use std::path::Path;

/// What the shim needs to know to drive the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimOptions {
    /// The runtime binary; empty: skiff's own.
    pub binary_name: String,
    /// The runtime's --root (the namespace is appended); empty: the default.
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub io_uid: u32,
    pub io_gid: u32,
}

/// The default runtime root, the same as containerd's runc shim, so the
/// usual `runc --root /run/containerd/runc/NS list` finds the containers.
pub const DEFAULT_ROOT: &str = "/run/containerd/runc";

const SAVED: &str = "options.json";

impl ShimOptions {
    pub fn root_or_default(&self) -> &str {
        if self.root.is_empty() {
            DEFAULT_ROOT
        } else {
            &self.root
        }
    }

    /// Read a runtime config file (TOML or JSON) naming `binary_name` and
    /// `root` (also spelled `BinaryName`, `Root`, as containerd's runc
    /// shim reads the same file) and `systemd_cgroup`.
    pub fn from_config_file(path: &str) -> Result<ShimOptions> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read runtime config {path}"))?;
        Self::from_config_text(&text, &format!("runtime config {path}"))
    }

    /// [`from_config_file`](Self::from_config_file) on text; `what` names
    /// it in errors.
    pub fn from_config_text(text: &str, what: &str) -> Result<ShimOptions> {
        let path = what;
        let pairs = if text.trim_start().starts_with('{') {
            json_pairs(text)
        } else {
            toml_pairs(text)
        }
        .map_err(|e| e.wrap(path))?;
        let mut o = ShimOptions::default();
        for (key, value) in pairs {
            let bad = || {
                crate::err_kind!(
                    InvalidArgument,
                    "{path}: {key}: {value:?} is not valid here"
                )
            };
            match key.as_str() {
                "binary_name" | "BinaryName" => {
                    o.binary_name = value.as_str().ok_or_else(bad)?.to_string()
                }
                "root" | "Root" => o.root = value.as_str().ok_or_else(bad)?.to_string(),
                "systemd_cgroup" | "SystemdCgroup" => {
                    o.systemd_cgroup = value.as_bool().ok_or_else(bad)?
                }
                _ => {
                    return Err(crate::err_kind!(
                        InvalidArgument,
                        "{path}: unknown key {key:?} (known: binary_name, root, systemd_cgroup)"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// Save in the bundle (for `delete` after the shim is gone).
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let mut w = json::Writer::compact();
        w.begin_object();
        w.key("binary_name").str(&self.binary_name);
        w.key("root").str(&self.root);
        w.key("systemd_cgroup").bool(self.systemd_cgroup);
        w.end_object();
        let path = bundle.join(SAVED);
        std::fs::write(&path, w.finish()).with_context(|| format!("write {}", path.display()))
    }

    /// What [`save`](Self::save) wrote; the defaults when nothing was saved.
    pub fn load(bundle: &Path) -> Result<ShimOptions> {
        let path = bundle.join(SAVED);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ShimOptions::default()),
            Err(e) => return Err(Error::from(e).wrap(format!("read {}", path.display()))),
        };
        let shown = path.display().to_string();
        let v = json::parse(&text, &shown)?;
        let doc = Node::new(&v, &shown);
        let s = |k: &str| -> Result<String> {
            Ok(doc
                .get(k)?
                .map(|n| n.string())
                .transpose()?
                .unwrap_or_default())
        };
        Ok(ShimOptions {
            binary_name: s("binary_name")?,
            root: s("root")?,
            systemd_cgroup: doc
                .get("systemd_cgroup")?
                .map(|n| n.bool())
                .transpose()?
                .unwrap_or(false),
            ..ShimOptions::default()
        })
    }
}

/// The options containerd sent (`start`'s stdin or
/// CreateTaskRequest.options): runc's Options, or runtimeoptions naming a
/// config file (or carrying its text, containerd 2.x). None: the defaults.
pub fn from_any(any: Option<&Any>) -> Result<ShimOptions> {
    use prost::Message;
    let Some(any) = any else {
        return Ok(ShimOptions::default());
    };
    // The bare name, also under a `types.googleapis.com/`-style prefix.
    let name = any.type_url.rsplit('/').next().unwrap_or("");
    match name {
        "" => Ok(ShimOptions::default()),
        RUNC_OPTIONS => {
            let o = RuncOptions::decode(&any.value[..])
                .map_err(|e| crate::err_kind!(InvalidArgument, "options {RUNC_OPTIONS}: {e}"))?;
            Ok(ShimOptions {
                binary_name: o.binary_name,
                root: o.root,
                systemd_cgroup: o.systemd_cgroup,
                no_pivot_root: o.no_pivot_root,
                no_new_keyring: o.no_new_keyring,
                io_uid: o.io_uid,
                io_gid: o.io_gid,
            })
        }
        RUNTIME_OPTIONS => {
            let o = RuntimeOptions::decode(&any.value[..])
                .map_err(|e| crate::err_kind!(InvalidArgument, "options {RUNTIME_OPTIONS}: {e}"))?;
            if !o.config_path.is_empty() {
                ShimOptions::from_config_file(&o.config_path)
            } else if !o.config_body.is_empty() {
                let text = String::from_utf8_lossy(&o.config_body);
                ShimOptions::from_config_text(&text, "runtime config (inline)")
            } else {
                Ok(ShimOptions::default())
            }
        }
        other => Err(crate::err_kind!(
            InvalidArgument,
            "runtime options of type {other:?}: this shim takes {RUNC_OPTIONS} or {RUNTIME_OPTIONS}"
        )),
    }
}

/// A config value: string or bool is all these files hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Bool(bool),
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bool(_) => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(_) => None,
        }
    }
}

fn json_pairs(text: &str) -> Result<Vec<(String, Value)>> {
    let v = json::parse(text, "config")?;
    let doc = Node::new(&v, "");
    doc.entries()?
        .into_iter()
        .map(|(k, n)| {
            let value = match n.str() {
                Ok(s) => Value::Str(s.to_string()),
                Err(_) => Value::Bool(n.bool()?),
            };
            Ok((k.to_string(), value))
        })
        .collect()
}

/// The TOML form: every string or boolean under any table, by its own
/// key (the keys are unique, so containerd's
/// `[plugins."io.containerd.runc.v1".options]` wrapping is accepted).
fn toml_pairs(text: &str) -> Result<Vec<(String, Value)>> {
    let doc = crate::toml::parse(text)?;
    doc.leaves()
        .into_iter()
        .map(|(path, v, line)| {
            let key = path.last().cloned().unwrap_or_default();
            let value = match v {
                crate::toml::Value::Str(s) => Value::Str(s.clone()),
                crate::toml::Value::Bool(b) => Value::Bool(*b),
                other => {
                    return Err(crate::err_kind!(
                        InvalidArgument,
                        "line {line}: {}: a {} is not valid here",
                        crate::toml::dotted(&path),
                        other.type_name()
                    ))
                }
            };
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file in a directory of its own (tests run in parallel),
    /// removed by [`gone`].
    fn write(name: &str, text: &str) -> String {
        let dir =
            std::env::temp_dir().join(format!("skiff-shim-opts-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn gone(path: &str) {
        let _ = std::fs::remove_dir_all(std::path::Path::new(path).parent().unwrap());
    }

    #[test]
    fn toml_and_json_config_files() {
        let p = write("a.toml", "# skiff\n[options]\nbinary_name = \"/usr/sbin/runc\" # peer\nroot = '/run/r'\nSystemdCgroup = true\n");
        let o = ShimOptions::from_config_file(&p).unwrap();
        assert_eq!(o.binary_name, "/usr/sbin/runc");
        assert_eq!(o.root, "/run/r");
        assert!(o.systemd_cgroup);
        gone(&p);
        let p = write("b.json", r#"{"BinaryName": "crun", "root": "/x"}"#);
        let o = ShimOptions::from_config_file(&p).unwrap();
        assert_eq!((o.binary_name.as_str(), o.root.as_str()), ("crun", "/x"));
        gone(&p);
    }

    #[test]
    fn bad_config_files_name_the_file_and_key() {
        let p = write("c.toml", "runtime = \"runc\"\n");
        let e = ShimOptions::from_config_file(&p).unwrap_err();
        assert!(
            e.message().contains(&p) && e.message().contains("runtime"),
            "{e}"
        );
        gone(&p);
        let p = write("d.toml", "binary_name runc\n");
        let e = ShimOptions::from_config_file(&p).unwrap_err();
        assert!(
            e.message().contains(&p) && e.message().contains("line 1"),
            "{e}"
        );
        gone(&p);
        let e = ShimOptions::from_config_file("/nonexistent/skiff.toml").unwrap_err();
        assert!(e.message().contains("/nonexistent/skiff.toml"), "{e}");
    }

    #[test]
    fn saved_options_round_trip() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ShimOptions::load(&dir).unwrap(), ShimOptions::default());
        let o = ShimOptions {
            binary_name: "/usr/bin/crun".into(),
            root: "/run/c".into(),
            systemd_cgroup: true,
            ..ShimOptions::default()
        };
        o.save(&dir).unwrap();
        assert_eq!(ShimOptions::load(&dir).unwrap(), o);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
