//! The daemon's configuration: defaults, then the `--config` file (a
//! subset of containerd's config.toml: `root`, `state`, `[grpc] address`,
//! `[debug] level`, and skiff's `[skiff] snapshotter`, `runtime`,
//! `hosts_dir`), then the command line.

use crate::error::{Context, Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub root: PathBuf,
    pub state: PathBuf,
    pub address: String,
    pub log_level: String,
    /// Empty: overlayfs where the kernel has it, else native.
    pub snapshotter: String,
    pub runtime: String,
    /// containerd's `certs.d` layout for registry hosts.
    pub hosts_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: "/var/lib/skiff".into(),
            state: "/run/skiff".into(),
            address: "/run/skiff/containerd.sock".into(),
            log_level: "info".into(),
            snapshotter: String::new(),
            runtime: super::shim::SKIFF_RUNTIME.into(),
            hosts_dir: "/etc/skiff/certs.d".into(),
        }
    }
}

impl Config {
    /// Apply the settings of a config file.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config {}", path.display()))?;
        self.apply(&text)
            .map_err(|e| e.wrap(format!("config {}", path.display())))
    }

    fn apply(&mut self, text: &str) -> Result<()> {
        let mut section = String::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[') {
                section = s.trim_end_matches(']').trim().trim_matches('"').to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| Error::new(format!("line {}: expected key = value", n + 1)))?;
            let key = key.trim();
            let value = value.trim();
            let string = || -> Result<String> {
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::new(format!("line {}: {key}: expected a quoted string", n + 1))
                    })
            };
            match (section.as_str(), key) {
                ("", "root") => self.root = string()?.into(),
                ("", "state") => self.state = string()?.into(),
                ("grpc", "address") => self.address = string()?,
                ("debug", "level") => self.log_level = string()?,
                ("skiff", "snapshotter") => self.snapshotter = string()?,
                ("skiff", "runtime") => self.runtime = string()?,
                ("skiff", "hosts_dir") => self.hosts_dir = string()?.into(),
                // containerd's other settings are accepted and ignored.
                _ => {}
            }
        }
        Ok(())
    }

    /// The effective configuration in config.toml form (`containerd config default`).
    pub fn to_toml(&self) -> String {
        format!(
            "version = 2\nroot = {:?}\nstate = {:?}\n\n[grpc]\n  address = {:?}\n\n[debug]\n  level = {:?}\n\n[skiff]\n  snapshotter = {:?}\n  runtime = {:?}\n  hosts_dir = {:?}\n",
            self.root.display().to_string(),
            self.state.display().to_string(),
            self.address,
            self.log_level,
            if self.snapshotter.is_empty() {
                super::store::default_snapshotter()
            } else {
                &self.snapshotter
            },
            self.runtime,
            self.hosts_dir.display().to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_the_file_form() {
        let c = Config::default();
        let mut back = Config {
            root: "/x".into(),
            ..Config::default()
        };
        back.apply(&c.to_toml()).unwrap();
        assert_eq!(back.root, c.root);
        assert_eq!(back.address, c.address);
        assert!(back.apply("root = /unquoted").is_err());
    }
}
