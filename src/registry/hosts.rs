//! Registry hosts in containerd's `certs.d` layout, so an existing
//! containerd configuration carries over:
//!
//! ```text
//! <dir>/<host>_<port>_/hosts.toml   (tried first, as containerd does)
//! <dir>/<host[:port]>/hosts.toml
//! <dir>/_default/hosts.toml         (any registry without its own)
//! ```
//!
//! A hosts.toml lists `[host."URL"]` tables, tried in the order written,
//! then `server` (the registry itself when absent). Each takes
//! `capabilities` (pull, resolve, push), `ca` (a file or a list),
//! `client` (a file, a list, or [cert, key] pairs), `skip_verify`,
//! `[header]` and `override_path`; relative paths are from the hosts.toml's
//! directory. A directory without hosts.toml is read the Docker way:
//! `*.crt` are CAs, `*.cert` with `*.key` client pairs.
//!
//! Unlike containerd, which logs a broken hosts.toml and falls back to
//! certificate files, a file that does not parse, an unknown capability or
//! key, or a certificate file that cannot be read is an error naming the
//! file and the key: a silently ignored mirror or CA is worse.

use crate::error::{Context, Error, Kind, Result};
use crate::toml::{self, Table, Value};
use std::path::{Path, PathBuf};

pub const HOSTS_FILE: &str = "hosts.toml";
pub const DEFAULT_DIR: &str = "_default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub pull: bool,
    /// Trusted to turn a tag into a digest.
    pub resolve: bool,
    pub push: bool,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One endpoint to try for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API root: `/v2`, or the path as written with `override_path`.
    pub path: String,
    pub capabilities: Capabilities,
    pub ca: Vec<PathBuf>,
    /// (certificate, key); no key: the certificate file holds it too.
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
    /// None: the pull's default.
    pub skip_verify: Option<bool>,
    pub headers: Vec<(String, String)>,
    /// The registry itself (the `server`), not a mirror.
    pub upstream: bool,
}

impl Host {
    /// `scheme://host/path`, the prefix of every request URL.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    fn unset() -> Host {
        Host {
            scheme: String::new(),
            host: String::new(),
            path: "/v2".into(),
            capabilities: Capabilities::ALL,
            ca: Vec::new(),
            client: Vec::new(),
            skip_verify: None,
            headers: Vec::new(),
            upstream: true,
        }
    }
}

/// The endpoints for `registry` (a reference's domain, `docker.io` for Docker
/// Hub), mirrors first; without configuration, the registry itself at
/// `api_host` over https (http with `plain_http`).
pub fn for_registry(
    dir: Option<&Path>,
    registry: &str,
    api_host: &str,
    plain_http: bool,
) -> Result<Vec<Host>> {
    let mut hosts = match dir.and_then(|d| host_dir(d, registry)) {
        Some(d) => load_dir(&d)?,
        None => vec![Host::unset()],
    };
    if let Some(last) = hosts.last_mut().filter(|h| h.host.is_empty()) {
        last.host = api_host.to_string();
        last.scheme = if plain_http { "http" } else { "https" }.into();
    }
    Ok(hosts)
}

/// containerd's order: `host_port_`, `host:port`, then `_default`.
fn host_dir(root: &Path, registry: &str) -> Option<PathBuf> {
    let mut names = Vec::new();
    if let Some((h, port)) = registry.rsplit_once(':').filter(|(h, _)| !h.is_empty()) {
        names.push(format!("{h}_{port}_"));
    }
    names.push(registry.to_string());
    names.push(DEFAULT_DIR.to_string());
    names.into_iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

/// Read every host directory under `root` (the daemon checks its
/// configuration at start). A missing root is no configuration.
pub fn check_root(root: &Path) -> Result<()> {
    if root.as_os_str().is_empty() {
        return Ok(());
    }
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from(e).wrap(format!("hosts dir {}", root.display()))),
    };
    for e in entries {
        let e = e.with_context(|| format!("hosts dir {}", root.display()))?;
        if e.path().is_dir() {
            load_dir(&e.path())?;
        }
    }
    Ok(())
}

/// The hosts of one directory: its hosts.toml, or Docker's certificate files.
pub fn load_dir(dir: &Path) -> Result<Vec<Host>> {
    let file = dir.join(HOSTS_FILE);
    match crate::fsutil::read_bounded(&file, toml::MAX_FILE) {
        Ok(text) if !text.trim().is_empty() => parse_hosts_file(&text, &file),
        Ok(_) => cert_files(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => cert_files(dir),
        Err(e) => Err(Error::from(e).wrap(format!("read {}", file.display()))),
    }
}

/// Parse a hosts.toml; `file` names it in errors and anchors relative paths.
pub fn parse_hosts_file(text: &str, file: &Path) -> Result<Vec<Host>> {
    let shown = file.display().to_string();
    let base = file.parent().unwrap_or(Path::new("/"));
    let doc = toml::parse(text).map_err(|e| e.wrap(&shown))?;
    let mut hosts = Vec::new();
    for e in &doc.entries {
        match (e.key.as_str(), &e.value) {
            ("host", Value::Table(t)) => {
                for h in &t.entries {
                    let key = format!("host.{}", toml::quote(&h.key));
                    let Value::Table(settings) = &h.value else {
                        return Err(bad(&shown, &key, h.line, "expected a table"));
                    };
                    let mut host = host_settings(settings, base, &shown, &key)?;
                    host.upstream = false;
                    let path = settings.get("override_path").and_then(Value::as_bool);
                    set_url(&mut host, &h.key, path.unwrap_or(false))
                        .map_err(|m| bad(&shown, &key, h.line, &m))?;
                    hosts.push(host);
                }
            }
            ("host", _) => return Err(bad(&shown, "host", e.line, "expected a table")),
            ("server", Value::Str(_)) => {}
            ("server", v) => {
                return Err(bad(
                    &shown,
                    "server",
                    e.line,
                    &format!("expected a string, not a {}", v.type_name()),
                ))
            }
            _ => {}
        }
    }
    // The top level configures the server, tried last.
    let top: Table = doc
        .entries
        .iter()
        .filter(|e| e.key != "host" && e.key != "server")
        .cloned()
        .collect();
    let mut server = host_settings(&top, base, &shown, "")?;
    if let Some(e) = doc.entry("server") {
        let url = e.value.as_str().unwrap_or_default();
        let path = top.get("override_path").and_then(Value::as_bool);
        set_url(&mut server, url, path.unwrap_or(false))
            .map_err(|m| bad(&shown, "server", e.line, &m))?;
    }
    hosts.push(server);
    Ok(hosts)
}

fn bad(file: &str, key: &str, line: usize, what: &str) -> Error {
    Error::of(
        Kind::InvalidArgument,
        format!("{file}: line {line}: {key}: {what}"),
    )
}

/// Scheme, host and API path from a `server` or `[host."URL"]` URL
/// (`https://` when it has no scheme).
fn set_url(h: &mut Host, url: &str, override_path: bool) -> std::result::Result<(), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("https".to_string(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?}: the scheme must be http or https"));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['?', '#', '@', ' ']) {
        return Err(format!("{url:?}: not a registry URL"));
    }
    let path = path.trim_end_matches('/');
    h.scheme = scheme;
    h.host = host.to_string();
    h.path = if override_path || path.ends_with("/v2") {
        path.to_string()
    } else {
        format!("{path}/v2")
    };
    Ok(())
}

/// The settings a host table (or the top level) may hold.
fn host_settings(t: &Table, base: &Path, file: &str, prefix: &str) -> Result<Host> {
    let mut h = Host::unset();
    for e in &t.entries {
        let key = if prefix.is_empty() {
            e.key.clone()
        } else {
            format!("{prefix}.{}", toml::join_key("", &e.key))
        };
        let fail = |what: &str| bad(file, &key, e.line, what);
        let want = |ty: &str| fail(&format!("expected {ty}, not a {}", e.value.type_name()));
        match e.key.as_str() {
            "capabilities" => {
                let list = e.value.as_array().ok_or_else(|| want("an array"))?;
                let mut caps = Capabilities {
                    pull: false,
                    resolve: false,
                    push: false,
                };
                for c in list {
                    match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("pull") => caps.pull = true,
                        Some("resolve") => caps.resolve = true,
                        Some("push") => caps.push = true,
                        _ => {
                            return Err(fail(&format!(
                                "unknown capability {} (known: pull, resolve, push)",
                                show(c)
                            )))
                        }
                    }
                }
                if !list.is_empty() {
                    h.capabilities = caps;
                }
            }
            "ca" => {
                let files = match &e.value {
                    Value::Str(s) => vec![s.clone()],
                    Value::Array(a) => strings(a).ok_or_else(|| want("a string or strings"))?,
                    _ => return Err(want("a string or an array of strings")),
                };
                for f in files {
                    let p = absolute(base, &f);
                    readable(&p).map_err(|m| fail(&m))?;
                    h.ca.push(p);
                }
            }
            "client" => {
                let pairs: Vec<(String, Option<String>)> = match &e.value {
                    Value::Str(s) => vec![(s.clone(), None)],
                    Value::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::Str(s) => Some((s.clone(), None)),
                            Value::Array(pair) => match strings(pair)?.as_slice() {
                                [c, k] => Some((c.clone(), Some(k.clone()).filter(|k| !k.is_empty()))),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            want("a file, files, or [certificate, key] pairs")
                        })?,
                    _ => return Err(want("a file, files, or [certificate, key] pairs")),
                };
                // The TLS stack presents one certificate; containerd would
                // offer each. Several is an error, not a silent choice.
                if pairs.len() > 1 {
                    return Err(fail(&format!(
                        "{} client certificates; skiff supports one per host",
                        pairs.len()
                    )));
                }
                for (c, k) in pairs {
                    let c = absolute(base, &c);
                    readable(&c).map_err(|m| fail(&m))?;
                    let k = k.map(|k| absolute(base, &k));
                    if let Some(k) = &k {
                        readable(k).map_err(|m| fail(&m))?;
                    }
                    h.client.push((c, k));
                }
            }
            "skip_verify" => h.skip_verify = Some(e.value.as_bool().ok_or_else(|| want("a boolean"))?),
            "override_path" => {
                e.value.as_bool().ok_or_else(|| want("a boolean"))?;
            }
            "header" => {
                let Value::Table(headers) = &e.value else {
                    return Err(want("a table"));
                };
                for hd in &headers.entries {
                    let values = match &hd.value {
                        Value::Str(s) => Some(vec![s.clone()]),
                        Value::Array(a) => strings(a),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        bad(
                            file,
                            &format!("{key}.{}", toml::join_key("", &hd.key)),
                            hd.line,
                            "expected a string or an array of strings",
                        )
                    })?;
                    for v in values {
                        h.headers.push((hd.key.clone(), v));
                    }
                }
            }
            _ => {
                return Err(fail(
                    "unknown key (known: server, host, capabilities, ca, client, skip_verify, header, override_path)",
                ))
            }
        }
    }
    Ok(h)
}

fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        other => format!("(a {})", other.type_name()),
    }
}

fn strings(a: &[Value]) -> Option<Vec<String>> {
    a.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

fn absolute(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn readable(p: &Path) -> std::result::Result<(), String> {
    std::fs::File::open(p)
        .map(drop)
        .map_err(|e| format!("{}: {}", p.display(), Error::from(e).message()))
}

/// Docker's layout: `*.crt` CA files, `*.cert` client certificates with
/// their `*.key`.
fn cert_files(dir: &Path) -> Result<Vec<Host>> {
    let mut h = Host::unset();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("hosts dir {}", dir.display()))?
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in &names {
        if n.ends_with(".crt") {
            h.ca.push(dir.join(n));
        } else if let Some(stem) = n.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            h.client.push((dir.join(n), key.exists().then_some(key)));
        }
    }
    if h.client.len() > 1 {
        return Err(Error::of(
            Kind::InvalidArgument,
            format!(
                "hosts dir {}: {} client certificates (*.cert); skiff supports one per host",
                dir.display(),
                h.client.len()
            ),
        ));
    }
    Ok(vec![h])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("skiff-hosts-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn mirrors_in_order_then_the_server() {
        let d = dir("order");
        let reg = d.join("docker.io");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::write(reg.join("m.pem"), "x").unwrap();
        std::fs::write(
            reg.join(HOSTS_FILE),
            "server = \"https://registry-1.docker.io\"\n\
             [host.\"https://m2.example\"]\n  capabilities = [\"pull\"]\n  ca = \"m.pem\"\n\
             [host.\"http://127.0.0.1:5001/mirror\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n\
             [host.\"http://127.0.0.1:5001/mirror\".header]\n  x-a = [\"1\", \"2\"]\n\
             [host.\"https://np.example/api\"]\n  override_path = true\n",
        )
        .unwrap();
        let hosts = for_registry(Some(&d), "docker.io", "registry-1.docker.io", false).unwrap();
        let bases: Vec<String> = hosts.iter().map(Host::base).collect();
        assert_eq!(
            bases,
            [
                "https://m2.example/v2",
                "http://127.0.0.1:5001/mirror/v2",
                "https://np.example/api",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert!(!hosts[0].capabilities.resolve && hosts[0].capabilities.pull);
        assert_eq!(hosts[0].ca, [reg.join("m.pem")]);
        assert_eq!(hosts[1].skip_verify, Some(true));
        assert_eq!(hosts[1].headers.len(), 2);
        assert!(hosts[3].upstream && !hosts[0].upstream);
        assert_eq!(hosts[3].capabilities, Capabilities::ALL);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lookup_order_and_defaults() {
        let d = dir("lookup");
        std::fs::create_dir_all(d.join("127.0.0.1_5000_")).unwrap();
        std::fs::write(
            d.join("127.0.0.1_5000_").join(HOSTS_FILE),
            "[host.\"http://a:1\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join(DEFAULT_DIR)).unwrap();
        std::fs::write(
            d.join(DEFAULT_DIR).join(HOSTS_FILE),
            "server = \"http://d:2\"\n",
        )
        .unwrap();
        let h = for_registry(Some(&d), "127.0.0.1:5000", "127.0.0.1:5000", true).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].base(), "http://127.0.0.1:5000/v2");
        let h = for_registry(Some(&d), "quay.io", "quay.io", false).unwrap();
        assert_eq!(
            h.iter().map(Host::base).collect::<Vec<_>>(),
            ["http://d:2/v2"]
        );
        let h = for_registry(None, "quay.io", "quay.io", false).unwrap();
        assert_eq!(h[0].base(), "https://quay.io/v2");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors_name_file_and_key() {
        let d = dir("errors");
        let f = d.join(HOSTS_FILE);
        for (text, want) in [
            ("server = \"x\n", "line 1: unterminated string"),
            (
                "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n",
                "line 2: host.\"https://m\".capabilities: unknown capability \"fetch\"",
            ),
            (
                "[host.\"https://m\"]\nca = \"missing.pem\"\n",
                "host.\"https://m\".ca: ",
            ),
            (
                "skip_verify = \"yes\"\n",
                "line 1: skip_verify: expected a boolean",
            ),
            ("mirrors = []\n", "line 1: mirrors: unknown key"),
            (
                "server = \"ftp://x\"\n",
                "line 1: server: \"ftp://x\": the scheme",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = load_dir(&d).unwrap_err();
            assert!(e.message().contains(&f.display().to_string()), "{e}");
            assert!(e.message().contains(want), "{text:?}: {e}");
        }
        assert!(check_root(&d.join("nonexistent")).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn several_client_certificates_are_an_error() {
        let d = dir("clients");
        for n in ["a.cert", "a.key", "b.cert", "b.key"] {
            std::fs::write(d.join(n), "x").unwrap();
        }
        let e = load_dir(&d).unwrap_err();
        assert!(
            e.message().contains("2 client certificates (*.cert)"),
            "{e}"
        );
        std::fs::write(
            d.join(HOSTS_FILE),
            "client = [[\"a.cert\", \"a.key\"], [\"b.cert\", \"b.key\"]]\n",
        )
        .unwrap();
        let e = load_dir(&d).unwrap_err();
        assert!(
            e.message()
                .contains("line 1: client: 2 client certificates"),
            "{e}"
        );
        std::fs::write(d.join(HOSTS_FILE), "client = [[\"a.cert\", \"a.key\"]]\n").unwrap();
        assert_eq!(load_dir(&d).unwrap()[0].client.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hosts_file_read_is_bounded() {
        let d = dir("bounded");
        // Valid TOML (a comment), just too large.
        let big = format!("#{}\n", " ".repeat(toml::MAX_FILE as usize));
        std::fs::write(d.join(HOSTS_FILE), big).unwrap();
        let e = load_dir(&d).unwrap_err();
        assert!(e.message().contains("larger than"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
