//! The daemon's configuration: defaults, then the `--config` file (a
//! subset of containerd's config.toml), then the command line.
//!
//! Read from the file: `root`, `state`, `[grpc] address`, `uid`, `gid`
//! (the socket's owner: with a gid it is 0660 for that group, else 0600),
//! `[debug] level`, and skiff's `[skiff] snapshotter`, `runtime`,
//! `hosts_dir`. containerd's own spellings of the last are accepted too:
//! `[plugins."io.containerd.grpc.v1.cri".registry] config_path` and
//! `[plugins."io.containerd.grpc.v1.cri".containerd] snapshotter`. Other
//! keys are reported as warnings (a containerd config.toml loads); a
//! known key with a bad value is an error naming the file, line and key.

use crate::error::{Context, Error, Kind, Result};
use crate::toml::{self, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub root: PathBuf,
    pub state: PathBuf,
    pub address: String,
    /// The socket's owner; 0 and 0: root only (0600).
    pub uid: u32,
    pub gid: u32,
    pub log_level: String,
    /// Empty: overlayfs where the kernel has it, else native.
    pub snapshotter: String,
    pub runtime: String,
    /// containerd's `certs.d` layout for registry hosts; empty: none.
    pub hosts_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: "/var/lib/skiff".into(),
            state: "/run/skiff".into(),
            address: "/run/skiff/containerd.sock".into(),
            uid: 0,
            gid: 0,
            log_level: "info".into(),
            snapshotter: String::new(),
            runtime: super::store::Defaults::default().runtime,
            hosts_dir: "/etc/skiff/certs.d".into(),
        }
    }
}

pub const LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warn", "warning", "error", "fatal", "panic",
];
const SNAPSHOTTERS: &[&str] = &["overlayfs", "native"];
const CRI: &str = "plugins.\"io.containerd.grpc.v1.cri\"";
/// containerd's older registry settings under [`CRI`], which skiff does not
/// read: hosts.toml replaces them.
const UNSUPPORTED: &[&str] = &[".registry.mirrors", ".registry.configs", ".registry.auths"];

impl Config {
    /// Apply the settings of a config file; returns warnings (unknown keys)
    /// for the caller to show.
    pub fn load(&mut self, path: &Path) -> Result<Vec<String>> {
        let text = crate::fsutil::read_bounded(path, toml::MAX_FILE)
            .with_context(|| format!("read config {}", path.display()))?;
        self.apply(&text)
            .map_err(|e| e.wrap(format!("config {}", path.display())))
            .map(|w| {
                w.into_iter()
                    .map(|m| format!("config {}: {m}", path.display()))
                    .collect()
            })
    }

    fn apply(&mut self, text: &str) -> Result<Vec<String>> {
        let doc = toml::parse(text)?;
        let mut warnings = Vec::new();
        // Warnings always shown, and the tables they name.
        let mut named: Vec<String> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (path, value, line) in doc.leaves() {
            let key = toml::dotted(&path);
            let bad = |what: String| {
                Error::of(Kind::InvalidArgument, format!("line {line}: {key}: {what}"))
            };
            let string = || -> Result<String> {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("expected a string, not a {}", value.type_name())))
            };
            let id = || -> Result<u32> {
                value
                    .as_int()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad(format!("expected a user or group id, not {}", show(value))))
            };
            let one_of = |allowed: &[&str]| -> Result<String> {
                let s = string()?;
                if allowed.contains(&s.as_str()) {
                    Ok(s)
                } else {
                    Err(bad(format!("{s:?} is not one of {}", allowed.join(", "))))
                }
            };
            match key.as_str() {
                "version" => {
                    if !matches!(value, Value::Int(1..=3)) {
                        return Err(bad(format!("{} is not 1, 2 or 3", show(value))));
                    }
                }
                "root" => self.root = absolute(string()?).map_err(bad)?,
                "state" => self.state = absolute(string()?).map_err(bad)?,
                "grpc.address" => self.address = string()?,
                "grpc.uid" => self.uid = id()?,
                "grpc.gid" => self.gid = id()?,
                // Empty (as containerd's own config default writes it): the default.
                "debug.level" if value.as_str() == Some("") => {}
                "debug.level" => self.log_level = one_of(LOG_LEVELS)?,
                "skiff.snapshotter" if value.as_str() == Some("") => self.snapshotter.clear(),
                "skiff.snapshotter" => self.snapshotter = one_of(SNAPSHOTTERS)?,
                "skiff.runtime" => {
                    let r = string()?;
                    if r.is_empty() {
                        return Err(bad("must not be empty".into()));
                    }
                    self.runtime = r;
                }
                // Empty: no hosts dir (each registry as named, over https).
                "skiff.hosts_dir" if value.as_str() == Some("") => self.hosts_dir.clear(),
                "skiff.hosts_dir" => self.hosts_dir = absolute(string()?).map_err(bad)?,
                k if k == format!("{CRI}.registry.config_path") => {
                    self.hosts_dir = string()?.into()
                }
                k if k == format!("{CRI}.containerd.snapshotter") => {
                    self.snapshotter = match string()?.as_str() {
                        "" => String::new(),
                        _ => one_of(SNAPSHOTTERS)?,
                    }
                }
                // skiff's own table is skiff's to define: a typo is an error.
                k if k.starts_with("skiff.") => return Err(bad("unknown key".into())),
                k if unsupported(k).is_some() => {
                    // Named always (not lost among the counted unknown
                    // keys): a registry setting silently dropped would
                    // send pulls where the admin did not mean.
                    let table = unsupported(k).expect("matched");
                    if !seen.contains(&table) {
                        seen.push(table);
                        named.push(format!(
                            "line {line}: {CRI}{table}: not supported; use hosts.toml (skiff.hosts_dir)"
                        ));
                    }
                }
                _ => warnings.push(format!("line {line}: {key}: unknown key, ignored")),
            }
        }
        // A whole containerd config.toml has a hundred keys skiff does not
        // read: a few are named, the rest counted.
        const SHOWN: usize = 10;
        if warnings.len() > SHOWN {
            let more = warnings.len() - SHOWN;
            warnings.truncate(SHOWN);
            warnings.push(format!("and {more} more unknown keys, ignored"));
        }
        named.extend(warnings);
        Ok(named)
    }

    /// What a request that names no snapshotter or runtime gets.
    pub fn store_defaults(&self) -> super::store::Defaults {
        super::store::Defaults {
            snapshotter: self.snapshotter.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// The effective configuration in config.toml form (`containerd config default`).
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::quote(s);
        let defaults = self.store_defaults();
        let p = |p: &Path| toml::quote(&p.display().to_string());
        format!(
            "version = 2\nroot = {}\nstate = {}\n\n\
             [grpc]\n  address = {}\n  uid = {}\n  gid = {}\n\n\
             [debug]\n  level = {}\n\n\
             [skiff]\n  snapshotter = {}\n  runtime = {}\n  hosts_dir = {}\n",
            p(&self.root),
            p(&self.state),
            q(&self.address),
            self.uid,
            self.gid,
            q(&self.log_level),
            q(defaults.snapshotter()),
            q(&self.runtime),
            p(&self.hosts_dir),
        )
    }
}

/// The unsupported CRI registry table `key` is in, if any.
fn unsupported(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix(CRI)?;
    UNSUPPORTED.iter().copied().find(|t| {
        rest.strip_prefix(t)
            .is_some_and(|r| r.is_empty() || r.starts_with('.'))
    })
}

fn absolute(s: String) -> std::result::Result<PathBuf, String> {
    if s.starts_with('/') {
        Ok(s.into())
    } else {
        Err(format!("{s:?} is not an absolute path"))
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Str(s) => format!("{s:?}"),
        other => format!("a {}", other.type_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_the_file_form() {
        let c = Config {
            gid: 5,
            ..Config::default()
        };
        let mut back = Config {
            root: "/x".into(),
            ..Config::default()
        };
        assert!(back.apply(&c.to_toml()).unwrap().is_empty());
        assert_eq!(back.root, c.root);
        assert_eq!(back.address, c.address);
        assert_eq!(back.gid, 5);
        assert_eq!(back.snapshotter, c.store_defaults().snapshotter());
    }

    #[test]
    fn containerd_keys_and_unknown_keys() {
        let mut c = Config::default();
        let w = c
            .apply(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n\
                 [metrics]\n  address = \"\"\n",
            )
            .unwrap();
        assert_eq!(c.hosts_dir, Path::new("/etc/containerd/certs.d"));
        assert_eq!(c.snapshotter, "native");
        assert_eq!(w, ["line 7: metrics.address: unknown key, ignored"]);
    }

    #[test]
    fn cri_registry_tables_are_named_even_among_many_unknown_keys() {
        let unknown: String = (0..20).map(|n| format!("k{n} = 1\n")).collect();
        let text = format!(
            "{unknown}[{CRI}.registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://m\"]\n\
             [{CRI}.registry.mirrors.\"q.io\"]\n  endpoint = [\"https://n\"]\n\
             [{CRI}.registry.configs.\"m\".tls]\n  insecure_skip_verify = true\n"
        );
        let w = Config::default().apply(&text).unwrap();
        let about = |t: &str| {
            w.iter()
                .filter(|m| {
                    m.contains(&format!(
                        "{CRI}.registry.{t}: not supported; use hosts.toml"
                    ))
                })
                .count()
        };
        assert_eq!((about("mirrors"), about("configs")), (1, 1), "{w:?}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, want) in [
            ("root = /unquoted\n", "line 1: expected a value"),
            (
                "root = \"rel\"\n",
                "line 1: root: \"rel\" is not an absolute path",
            ),
            (
                "[grpc]\ngid = -1\n",
                "line 2: grpc.gid: expected a user or group id, not -1",
            ),
            (
                "[grpc]\ngid = \"wheel\"\n",
                "grpc.gid: expected a user or group id",
            ),
            (
                "[skiff]\nsnapshotter = \"zfs\"\n",
                "line 2: skiff.snapshotter: \"zfs\" is not one of overlayfs, native",
            ),
            (
                "[debug]\nlevel = \"loud\"\n",
                "debug.level: \"loud\" is not one of",
            ),
            ("version = 9\n", "version: 9 is not 1, 2 or 3"),
            (
                "[skiff]\nsnapshoter = \"native\"\n",
                "line 2: skiff.snapshoter: unknown key",
            ),
            (
                "[skiff]\nhosts_dir = \"certs.d\"\n",
                "line 2: skiff.hosts_dir: \"certs.d\" is not an absolute path",
            ),
        ] {
            let e = Config::default().apply(text).unwrap_err();
            assert!(e.message().contains(want), "{text:?}: {e}");
        }
    }
}
