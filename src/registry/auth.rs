//! Registry authentication: `WWW-Authenticate` challenges, credentials from
//! the command line or a docker `config.json` ("auths"), and base64.

use crate::error::{Context, Error, Result};
use crate::json::{self, Node};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// `USER[:PASS]`.
    pub fn parse(s: &str) -> Credentials {
        match s.split_once(':') {
            Some((u, p)) => Credentials {
                user: u.into(),
                password: p.into(),
            },
            None => Credentials {
                user: s.into(),
                password: String::new(),
            },
        }
    }

    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.user, self.password).as_bytes())
        )
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
    pub fn parse(header: &str) -> Result<Challenge> {
        let h = header.trim();
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic),
            "bearer" => Ok(Challenge::Bearer {
                realm: get("realm").ok_or_else(|| {
                    Error::new(format!("bearer challenge without a realm: {header:?}"))
                })?,
                service: get("service"),
                scope: get("scope"),
            }),
            _ => Err(Error::new(format!(
                "unsupported authentication scheme in {header:?}"
            ))),
        }
    }
}

/// `k="v", k2=v2` with backslash escapes inside quotes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == ',' || b[i].is_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != '=' && b[i] != ',' {
            i += 1;
        }
        let key: String = b[start..i].iter().collect::<String>().trim().to_string();
        if i >= b.len() || b[i] != '=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != ',' {
                val.push(b[i]);
                i += 1;
            }
            val = val.trim().to_string();
        }
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

/// The default auth file: `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`, when it exists.
pub fn default_auth_file() -> Option<PathBuf> {
    let p = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    p.exists().then_some(p)
}

/// Credentials for `host` from a docker config.json's "auths". Keys may be
/// a bare host or a URL (`https://index.docker.io/v1/` for docker.io).
pub fn lookup_auth_file(path: &Path, host: &str) -> Result<Option<Credentials>> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("read auth file {what}"))?;
    let v = json::parse(&text, &what)?;
    let root = Node::new(&v, "");
    let inner = || -> Result<Option<Credentials>> {
        let Some(auths) = root.get("auths")? else {
            return Ok(None);
        };
        for (key, entry) in auths.entries()? {
            let k = key
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let k = k.split('/').next().unwrap_or(k);
            let matches = k == host
                || (host == "docker.io" || host == "registry-1.docker.io")
                    && matches!(k, "docker.io" | "index.docker.io" | "registry-1.docker.io");
            if !matches {
                continue;
            }
            if let Some(a) = entry.get("auth")? {
                let raw = a.str()?;
                let decoded = base64_decode(raw).ok_or_else(|| a.invalid("not valid base64"))?;
                let s = String::from_utf8(decoded).map_err(|_| a.invalid("not UTF-8"))?;
                if !s.contains(':') {
                    return Err(a.invalid("expected base64 of USER:PASSWORD"));
                }
                return Ok(Some(Credentials::parse(&s)));
            }
            if let (Some(u), Some(p)) = (entry.get("username")?, entry.get("password")?) {
                return Ok(Some(Credentials {
                    user: u.string()?,
                    password: p.string()?,
                }));
            }
        }
        Ok(None)
    };
    inner().map_err(|e| e.wrap(format!("auth file {what}")))
}

pub use crate::base64::{decode as base64_decode, encode as base64_encode};

/// Percent-encode a query value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#).unwrap(),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into())
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        assert!(Challenge::parse("Bearer service=x").is_err());
        assert!(Challenge::parse("Negotiate").is_err());
    }

    #[test]
    fn auth_file_lookup() {
        let p = std::env::temp_dir().join(format!("skiff-auth-{}.json", std::process::id()));
        std::fs::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"127.0.0.1:5000":{"auth":"YTpi"},"bad:1":{"auth":"!!"}}}"#,
        )
        .unwrap();
        assert_eq!(
            lookup_auth_file(&p, "docker.io").unwrap(),
            Some(Credentials::parse("user:pass"))
        );
        assert_eq!(
            lookup_auth_file(&p, "127.0.0.1:5000").unwrap(),
            Some(Credentials::parse("a:b"))
        );
        assert_eq!(lookup_auth_file(&p, "other").unwrap(), None);
        assert!(lookup_auth_file(&p, "bad:1")
            .unwrap_err()
            .message()
            .contains("auths.bad:1.auth: not valid base64"));
        std::fs::remove_file(&p).unwrap();
    }
}
