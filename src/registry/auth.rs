//! Registry authentication: `WWW-Authenticate` challenges, credentials from
//! the command line or a docker `config.json` ("auths"), and base64.

use crate::error::{Context, Error, Result};
use crate::json::{self, Node};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// A docker config.json `identitytoken`: an OAuth2 refresh token for
    /// the registry's token service.
    pub identity_token: Option<String>,
}

impl Credentials {
    /// `USER[:PASS]`.
    pub fn parse(s: &str) -> Credentials {
        match s.split_once(':') {
            Some((u, p)) => Credentials {
                user: u.into(),
                password: p.into(),
                identity_token: None,
            },
            None => Credentials {
                user: s.into(),
                password: String::new(),
                identity_token: None,
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

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (whether it exists or not).
pub fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => Some(PathBuf::from(d).join("config.json")),
        None => Some(PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json")),
    }
}

/// The default auth file: [`docker_config_path`] when it exists.
pub fn default_auth_file() -> Option<PathBuf> {
    docker_config_path().filter(|p| p.exists())
}

/// A docker config.json's "auths" key matches `host`: a bare host or a
/// URL (`https://index.docker.io/v1/` for docker.io).
fn auths_key_matches(key: &str, host: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    k == host || hub(host) && hub(k)
}

fn read_auth_file(path: &Path) -> Result<miniserde::json::Value> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("read auth file {what}"))?;
    json::parse(&text, &what)
}

/// Credentials for `host` from a docker config.json's "auths": `auth`
/// (base64 of `user:password`), or `username` and `password`, and an
/// `identitytoken`.
pub fn lookup_auth_file(path: &Path, host: &str) -> Result<Option<Credentials>> {
    let what = path.display().to_string();
    let v = read_auth_file(path)?;
    let root = Node::new(&v, "");
    let inner = || -> Result<Option<Credentials>> {
        let Some(auths) = root.get("auths")? else {
            return Ok(None);
        };
        for (key, entry) in auths.entries()? {
            if !auths_key_matches(key, host) {
                continue;
            }
            let mut c = Credentials::parse("");
            if let Some(a) = entry.get("auth")? {
                let raw = a.str()?;
                let decoded = base64_decode(raw).ok_or_else(|| a.invalid("not valid base64"))?;
                let s = String::from_utf8(decoded).map_err(|_| a.invalid("not UTF-8"))?;
                if !s.contains(':') {
                    return Err(a.invalid("expected base64 of USER:PASSWORD"));
                }
                c = Credentials::parse(&s);
            } else if let (Some(u), Some(p)) = (entry.get("username")?, entry.get("password")?) {
                c.user = u.string()?;
                c.password = p.string()?;
            }
            if let Some(t) = entry.get("identitytoken")? {
                c.identity_token = Some(t.string()?).filter(|t| !t.is_empty());
            }
            if c.user.is_empty() && c.identity_token.is_none() {
                // `{}`: written by docker when a credential helper holds them.
                continue;
            }
            return Ok(Some(c));
        }
        Ok(None)
    };
    inner().map_err(|e| e.wrap(format!("auth file {what}")))
}

/// The credential helper a docker config.json names for `host`
/// (`credHelpers`, else `credsStore`), as (key, helper name). skiff runs no
/// helpers; this is for telling the user so.
pub fn lookup_helper(path: &Path, host: &str) -> Result<Option<(String, String)>> {
    let what = path.display().to_string();
    let v = read_auth_file(path)?;
    let root = Node::new(&v, "");
    let inner = || -> Result<Option<(String, String)>> {
        if let Some(helpers) = root.get("credHelpers")? {
            for (key, name) in helpers.entries()? {
                if auths_key_matches(key, host) {
                    return Ok(Some((format!("credHelpers.{key}"), name.string()?)));
                }
            }
        }
        match root.get("credsStore")? {
            Some(s) if !s.str()?.is_empty() => Ok(Some(("credsStore".into(), s.string()?))),
            _ => Ok(None),
        }
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
    fn identity_tokens_and_helpers() {
        let p = std::env::temp_dir().join(format!("skiff-auth-it-{}.json", std::process::id()));
        std::fs::write(
            &p,
            r#"{"auths":{"a:1":{"identitytoken":"rt"},"b:2":{"username":"u","password":"p"},"c:3":{}},
               "credHelpers":{"c:3":"ecr-login"},"credsStore":"desktop"}"#,
        )
        .unwrap();
        let a = lookup_auth_file(&p, "a:1").unwrap().unwrap();
        assert_eq!(
            (a.user.as_str(), a.identity_token.as_deref()),
            ("", Some("rt"))
        );
        assert_eq!(
            lookup_auth_file(&p, "b:2").unwrap(),
            Some(Credentials::parse("u:p"))
        );
        assert_eq!(lookup_auth_file(&p, "c:3").unwrap(), None);
        assert_eq!(
            lookup_helper(&p, "c:3").unwrap(),
            Some(("credHelpers.c:3".into(), "ecr-login".into()))
        );
        assert_eq!(
            lookup_helper(&p, "d:4").unwrap(),
            Some(("credsStore".into(), "desktop".into()))
        );
        std::fs::remove_file(&p).unwrap();
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
        assert_eq!(lookup_helper(&p, "other").unwrap(), None);
        assert!(lookup_auth_file(&p, "bad:1")
            .unwrap_err()
            .message()
            .contains("auths.bad:1.auth: not valid base64"));
        std::fs::remove_file(&p).unwrap();
    }
}
