//! OCI distribution-spec client over HTTP/1.1 (ureq, blocking): manifests
//! and blobs, bearer-token and basic auth, mirrors with fallback.

use crate::error::{Context, Error, Result};
use crate::image::digest::{self, Digest};
use crate::image::oci::{self, Descriptor};
use crate::json::{self, Node};
use crate::registry::auth::{self, Challenge, Credentials};
use crate::registry::hosts::{self, Capabilities, Host};
use crate::registry::reference::Reference;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub plain_http: bool,
    /// false: accept any certificate (`--tls-verify=false`).
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system bundle.
    pub ca_files: Vec<PathBuf>,
    /// `--user`: used for every host of this pull.
    pub credentials: Option<Credentials>,
    pub auth_file: Option<PathBuf>,
    pub mirrors: Vec<Mirror>,
    /// containerd's `certs.d` layout: mirrors, CAs, client certificates and
    /// headers per registry (see [`hosts`]); tried after `mirrors`.
    pub hosts_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry this mirrors (`docker.io`, `host:port`).
    pub host: String,
    /// Base URL (`http://127.0.0.1:5001`); without a scheme, https.
    pub url: String,
}

impl Mirror {
    /// `HOST=URL`.
    pub fn parse(s: &str) -> Result<Mirror> {
        let (h, u) = s
            .split_once('=')
            .filter(|(h, u)| !h.is_empty() && !u.is_empty())
            .ok_or_else(|| Error::new(format!("invalid mirror {s:?}: expected HOST=URL")))?;
        let host = if h == "index.docker.io" || h == "registry-1.docker.io" {
            "docker.io"
        } else {
            h
        };
        Ok(Mirror {
            host: host.to_string(),
            url: u.trim_end_matches('/').to_string(),
        })
    }

    /// Mirrors from a file: one `HOST=URL` per line, `#` comments.
    pub fn read_file(path: &std::path::Path) -> Result<Vec<Mirror>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read mirrors file {}", path.display()))?;
        text.lines()
            .enumerate()
            .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| {
                Mirror::parse(l).map_err(|e| e.wrap(format!("{}:{}", path.display(), i + 1)))
            })
            .collect()
    }
}

struct Endpoint {
    /// `scheme://host[/prefix]/v2` (or the overridden API root), no
    /// trailing slash.
    base: String,
    /// Its own TLS settings (hosts.toml `ca`, `client`, `skip_verify`).
    agent: Option<ureq::Agent>,
    capabilities: Capabilities,
    headers: Vec<(String, String)>,
    credentials: Option<Credentials>,
    /// A credential helper the auth file names for this host (unsupported:
    /// said when the registry asks for credentials).
    helper: Option<String>,
    /// The Authorization header value that worked last.
    authorization: Mutex<Option<String>>,
    mirror: bool,
}

/// A client for one repository.
pub struct Client {
    agent: ureq::Agent,
    repository: String,
    endpoints: Vec<Endpoint>,
}

/// A blob response being read.
pub struct BlobStream {
    pub reader: Box<dyn Read + Send>,
    /// The server honoured the Range request: the body starts at the offset.
    pub partial: bool,
}

impl Client {
    pub fn new(opts: &Options, reference: &Reference) -> Result<Client> {
        let agent = make_agent(opts, None)?;
        let scheme = if opts.plain_http { "http" } else { "https" };
        let mut list = Vec::new();
        for m in opts.mirrors.iter().filter(|m| m.host == reference.domain) {
            let url = if m.url.contains("://") {
                m.url.clone()
            } else {
                format!("{scheme}://{}", m.url)
            };
            let (scheme, rest) = url.split_once("://").unwrap_or(("https", &url));
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            list.push(Host {
                scheme: scheme.into(),
                host: host.into(),
                path: format!("{}/v2", path.trim_end_matches('/')),
                capabilities: Capabilities::ALL,
                ca: vec![],
                client: vec![],
                skip_verify: None,
                headers: vec![],
                upstream: false,
            });
        }
        list.extend(hosts::for_registry(
            opts.hosts_dir.as_deref(),
            &reference.domain,
            reference.api_host(),
            opts.plain_http,
        )?);
        let mut endpoints = Vec::new();
        for h in list {
            // The registry's credentials (--user, the auth file's entry
            // for its name) go to the registry's own host alone: any other
            // host (a mirror, or a `server` hosts.toml puts elsewhere) gets
            // only what the auth file holds for that host.
            let registry_host =
                h.upstream && (h.host == reference.domain || h.host == reference.api_host());
            let mut names = vec![h.host.as_str()];
            if registry_host {
                names.insert(0, &reference.domain);
            }
            let mut credentials = opts.credentials.clone().filter(|_| registry_host);
            let mut helper = None;
            if let (None, Some(f)) = (&credentials, &opts.auth_file) {
                for name in &names {
                    credentials = auth::lookup_auth_file(f, name)?;
                    if credentials.is_some() {
                        break;
                    }
                }
                if credentials.is_none() {
                    helper = auth::lookup_helper(f, names[0])?
                        .map(|(key, name)| format!("{} names {key} {name:?}", f.display()));
                }
            }
            let own_tls = !h.ca.is_empty() || !h.client.is_empty() || h.skip_verify.is_some();
            endpoints.push(Endpoint {
                base: h.base(),
                agent: if own_tls {
                    Some(make_agent(opts, Some(&h))?)
                } else {
                    None
                },
                capabilities: h.capabilities,
                headers: h.headers,
                credentials,
                helper,
                authorization: Mutex::new(None),
                mirror: !h.upstream,
            });
        }
        Ok(Client {
            agent,
            repository: reference.repository.clone(),
            endpoints,
        })
    }

    /// GET a manifest or index by tag or digest. Returns the bytes and the
    /// media type; checks the bytes when `object` is a digest.
    pub fn manifest(&self, object: &str) -> Result<(Vec<u8>, String)> {
        let path = format!("/{}/manifests/{object}", self.repository);
        // A tag is turned into a digest only by hosts trusted to resolve.
        let need = if object.contains(':') {
            Need::Pull
        } else {
            Need::Resolve
        };
        let resp = self.get(&path, Some(oci::MANIFEST_ACCEPT), None, need)?;
        let url = resp.url.clone();
        let mut resp = resp.response;
        let ctype = header(&resp, "content-type").unwrap_or_default();
        let data = resp
            .body_mut()
            .with_config()
            .limit(oci::MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| Error::new(format!("GET {url}: {}", ureq_message(&e))))?;
        if object.contains(':') {
            let d = Digest::parse(object)?;
            digest::verify_bytes(&data, &d, data.len() as u64).context("manifest")?;
        }
        Ok((data, ctype))
    }

    /// GET a small blob (config) and verify it.
    pub fn blob_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > oci::MAX_DOCUMENT {
            return Err(Error::new(format!(
                "blob {}: {} bytes is too large for a config",
                desc.digest, desc.size
            )));
        }
        let mut s = self.blob(&desc.digest, 0)?;
        let mut data = Vec::with_capacity(desc.size as usize);
        (&mut s.reader)
            .take(desc.size + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("read blob {}", desc.digest))?;
        digest::verify_bytes(&data, &desc.digest, desc.size)?;
        Ok(data)
    }

    /// Open a blob for streaming, from `offset` (a Range request) when > 0.
    pub fn blob(&self, d: &Digest, offset: u64) -> Result<BlobStream> {
        let path = format!("/{}/blobs/{d}", self.repository);
        let resp = self.get(&path, None, (offset > 0).then_some(offset), Need::Pull)?;
        let partial = resp.response.status().as_u16() == 206;
        if partial {
            let start = header(&resp.response, "content-range").and_then(|r| {
                r.strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok())
            });
            if start != Some(offset) {
                return Err(Error::new(format!(
                    "GET {}: server answered a different range than bytes={offset}-",
                    resp.url
                )));
            }
        }
        Ok(BlobStream {
            reader: Box::new(resp.response.into_body().into_reader()),
            partial,
        })
    }

    /// GET `path` from the mirrors, then the upstream registry (those of
    /// them capable of `need`).
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range: Option<u64>,
        need: Need,
    ) -> Result<Fetched> {
        let mut mirror_errors = Vec::new();
        let capable = |ep: &&Endpoint| match need {
            Need::Pull => ep.capabilities.pull,
            Need::Resolve => ep.capabilities.pull && ep.capabilities.resolve,
        };
        for ep in self.endpoints.iter().filter(capable) {
            let url = format!("{}{path}", ep.base);
            match self.request(ep, &url, accept, range) {
                Ok(r) => return Ok(r),
                Err(e) if ep.mirror => {
                    crate::log::debug!("{url}: {e}; trying the next host");
                    mirror_errors.push(e.message().to_string())
                }
                Err(e) => {
                    if mirror_errors.is_empty() {
                        return Err(e);
                    }
                    return Err(e.wrap(format!(
                        "mirrors failed ({}), and upstream",
                        mirror_errors.join("; ")
                    )));
                }
            }
        }
        let what = match need {
            Need::Pull => "pull from",
            Need::Resolve => "resolve a tag (capabilities: pull and resolve)",
        };
        if mirror_errors.is_empty() {
            return Err(Error::new(format!(
                "GET {path}: no configured host can {what}"
            )));
        }
        Err(Error::new(format!(
            "GET {path}: every host failed ({})",
            mirror_errors.join("; ")
        )))
    }

    /// One GET, retried a few times (with backoff, or the server's
    /// Retry-After up to 5 s) when the registry says it is overloaded or a
    /// gateway failed (429, 502, 503, 504).
    fn send(
        &self,
        ep: &Endpoint,
        url: &str,
        accept: Option<&str>,
        range: Option<u64>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>> {
        const RETRIES: u32 = 3;
        let mut attempt = 0;
        let agent = ep.agent.as_ref().unwrap_or(&self.agent);
        loop {
            let get = |fresh_connection: bool| {
                let mut req = agent.get(url);
                for (k, v) in &ep.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                if let Some(off) = range {
                    req = req.header("Range", format!("bytes={off}-"));
                }
                if let Some(a) = authorization {
                    req = req.header("Authorization", a);
                }
                if fresh_connection {
                    // Pooled connections of any age are skipped.
                    req = req.config().max_idle_age(Duration::ZERO).build();
                }
                req.call()
            };
            // A server may close a kept-alive connection (idle timeout, or
            // it closes after every answer) just as we send the next request
            // on it; ureq does not retry that, so a GET goes once more on a
            // new connection.
            let resp = match get(false) {
                Err(e) if connection_dropped(&e) => get(true),
                r => r,
            }
            .map_err(|e| Error::new(format!("GET {url}: {}", ureq_message(&e))))?;
            let transient = matches!(resp.status().as_u16(), 429 | 502 | 503 | 504);
            if !transient || attempt == RETRIES {
                return Ok(resp);
            }
            let backoff = std::time::Duration::from_millis(250 << attempt);
            let wait = header(&resp, "retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(backoff, |secs| std::time::Duration::from_secs(secs.min(5)));
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn request(
        &self,
        ep: &Endpoint,
        url: &str,
        accept: Option<&str>,
        range: Option<u64>,
    ) -> Result<Fetched> {
        let current = ep
            .authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut resp = self.send(ep, url, accept, range, current.as_deref())?;
        if resp.status().as_u16() == 401 {
            let challenge = header(&resp, "www-authenticate").ok_or_else(|| {
                Error::new(format!(
                    "GET {url}: 401 Unauthorized without a WWW-Authenticate challenge"
                ))
            })?;
            let challenge = Challenge::parse(&challenge).with_context(|| format!("GET {url}"))?;
            let authorization = self
                .authorize(ep, &challenge)
                .with_context(|| format!("GET {url}"))?;
            resp = self.send(ep, url, accept, range, Some(&authorization))?;
            if resp.status().as_u16() == 401 {
                let why = if ep.credentials.is_some() {
                    "credentials rejected".to_string()
                } else {
                    no_credentials(ep)
                };
                return Err(Error::new(format!("GET {url}: 401 Unauthorized: {why}")));
            }
            *ep.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(authorization);
        }
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(Fetched {
                response: resp,
                url: url.to_string(),
            }),
            416 => Err(Error::new(format!("GET {url}: 416 Range Not Satisfiable"))),
            _ => {
                let detail = error_detail(&mut resp);
                let reason = resp.status().canonical_reason().unwrap_or("");
                Err(Error::new(format!("GET {url}: {status} {reason}{detail}")))
            }
        }
    }

    /// Work out the Authorization header for a challenge.
    fn authorize(&self, ep: &Endpoint, challenge: &Challenge) -> Result<String> {
        match challenge {
            Challenge::Basic => match &ep.credentials {
                Some(c) if c.identity_token.is_none() || !c.user.is_empty() => Ok(c.basic_header()),
                _ => Err(Error::new(format!(
                    "401 Unauthorized: the registry wants basic auth: {}",
                    no_credentials(ep)
                ))),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let mut url = realm.clone();
                url.push(if url.contains('?') { '&' } else { '?' });
                if let Some(s) = service {
                    url.push_str(&format!("service={}&", auth::query_escape(s)));
                }
                url.push_str(&format!("scope={}", auth::query_escape(&scope)));
                let mut resp = match ep
                    .credentials
                    .as_ref()
                    .and_then(|c| c.identity_token.as_ref())
                {
                    // An identity token is an OAuth2 refresh token: POSTed
                    // to the realm, as docker and containerd do.
                    Some(token) => {
                        let agent = ep.agent.as_ref().unwrap_or(&self.agent);
                        let mut form = vec![
                            ("grant_type", "refresh_token"),
                            ("refresh_token", token.as_str()),
                            ("client_id", "skiff"),
                            ("scope", scope.as_str()),
                        ];
                        if let Some(s) = service {
                            form.push(("service", s.as_str()));
                        }
                        agent
                            .post(realm.as_str())
                            .send_form(form)
                            .map_err(|e| Error::new(format!("POST {realm}: {}", ureq_message(&e))))
                            .context("get token")?
                    }
                    None => {
                        let basic = ep.credentials.as_ref().map(Credentials::basic_header);
                        self.send(ep, &url, Some("application/json"), None, basic.as_deref())
                            .context("get token")?
                    }
                };
                let status = resp.status().as_u16();
                if status != 200 {
                    let detail = error_detail(&mut resp);
                    return Err(Error::new(format!(
                        "get token from {realm}: HTTP {status}{detail}"
                    )));
                }
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| {
                        Error::new(format!("get token from {realm}: {}", ureq_message(&e)))
                    })?;
                let text = String::from_utf8_lossy(&body);
                let v = json::parse(&text, &format!("token response from {realm}"))?;
                let root = Node::new(&v, "");
                let token = match root.get("token")? {
                    Some(t) => t.string()?,
                    None => root
                        .get("access_token")?
                        .ok_or_else(|| {
                            Error::new(format!("token response from {realm}: no token"))
                        })?
                        .string()?,
                };
                Ok(format!("Bearer {token}"))
            }
        }
    }
}

/// What a request needs of a host.
#[derive(Clone, Copy)]
enum Need {
    Pull,
    Resolve,
}

/// Why a host got no credentials, and how to give it some.
fn no_credentials(ep: &Endpoint) -> String {
    match &ep.helper {
        Some(h) => format!(
            "authentication required; {h}, a credential helper, which skiff does not support \
             (put the credentials under \"auths\" or pass --user)"
        ),
        None => {
            "authentication required (pass --user, or credentials in a docker config.json)".into()
        }
    }
}

struct Fetched {
    response: Response<Body>,
    url: String,
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The first error message of a distribution-spec error body, if any.
fn error_detail(resp: &mut Response<Body>) -> String {
    let Ok(body) = resp.body_mut().with_config().limit(64 << 10).read_to_vec() else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&body);
    let Ok(v) = json::parse(&text, "") else {
        return String::new();
    };
    let root = Node::new(&v, "");
    let msg = (|| -> Result<String> {
        let errs = root.need("errors")?.items()?;
        let first = errs.first().ok_or_else(|| Error::new(""))?;
        let code = first
            .get("code")?
            .map(|c| c.string())
            .transpose()?
            .unwrap_or_default();
        let message = first
            .get("message")?
            .map(|c| c.string())
            .transpose()?
            .unwrap_or_default();
        Ok(format!("{code}: {message}"))
    })();
    msg.map(|m| format!(" ({m})")).unwrap_or_default()
}

/// The connection ended before the response head arrived.
fn connection_dropped(e: &ureq::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(e, ureq::Error::Io(io)
        if matches!(io.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe))
}

/// ureq's messages without its "io: " prefixes.
fn ureq_message(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => Error::from(std::io::Error::new(io.kind(), io.to_string()))
            .message()
            .to_string(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => {
            let m = other.to_string();
            if m.contains("InvalidContentType") {
                format!("{m} (not a TLS server: a plain-HTTP registry needs --plain-http)")
            } else {
                m
            }
        }
    }
}

/// The agent for `opts`, with a host's own CAs, client certificate and
/// verification setting when given.
fn make_agent(opts: &Options, host: Option<&Host>) -> Result<ureq::Agent> {
    use ureq::tls::{parse_pem, ClientCert, PemItem, RootCerts, TlsConfig};
    let mut roots = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    if let Ok(data) = std::fs::read(&system) {
        roots.extend(parse_pem(&data).filter_map(|i| match i {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        }));
    }
    let host_cas = host.map(|h| h.ca.as_slice()).unwrap_or_default();
    for ca in opts.ca_files.iter().chain(host_cas) {
        let data = std::fs::read(ca).with_context(|| format!("read CA file {}", ca.display()))?;
        let before = roots.len();
        for item in parse_pem(&data) {
            match item {
                Ok(PemItem::Certificate(c)) => roots.push(c),
                Ok(_) => {}
                Err(e) => return Err(Error::new(format!("CA file {}: {e}", ca.display()))),
            }
        }
        if roots.len() == before {
            return Err(Error::new(format!(
                "CA file {}: no PEM certificates in it",
                ca.display()
            )));
        }
    }
    let root_certs = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    // ureq takes one client certificate; hosts.rs refuses several.
    let client_cert = match host.and_then(|h| h.client.first()) {
        None => None,
        Some((cert, key)) => {
            let pem = std::fs::read(cert)
                .with_context(|| format!("read client certificate {}", cert.display()))?;
            let key_pem = match key {
                Some(k) => {
                    std::fs::read(k).with_context(|| format!("read client key {}", k.display()))?
                }
                None => pem.clone(),
            };
            let chain: Vec<_> = parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let key = parse_pem(&key_pem)
                .find_map(|i| match i {
                    Ok(PemItem::PrivateKey(k)) => Some(k),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::new(format!(
                        "client key {}: no PEM private key in it",
                        key.as_deref().unwrap_or(cert).display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(Error::new(format!(
                    "client certificate {}: no PEM certificate in it",
                    cert.display()
                )));
            }
            Some(ClientCert::new_with_certs(&chain, key))
        }
    };
    let verify = match host.and_then(|h| h.skip_verify) {
        Some(skip) => !skip,
        None => opts.tls_verify,
    };
    let tls = TlsConfig::builder()
        .root_certs(root_certs)
        .disable_verification(!verify)
        .client_cert(client_cert)
        .build();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
        .max_redirects(10)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // A body that stops flowing is a failed transfer (resumed, retried
        // or tried at the next endpoint), not a pull that hangs forever.
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(config.new_agent())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_parse() {
        assert_eq!(
            Mirror::parse("docker.io=http://127.0.0.1:5000/").unwrap(),
            Mirror {
                host: "docker.io".into(),
                url: "http://127.0.0.1:5000".into()
            }
        );
        assert!(Mirror::parse("nohost").is_err());
        assert!(Mirror::parse("=x").is_err());
    }

    /// Reads one request head; false when the peer closed first.
    fn read_head(conn: &mut std::net::TcpStream) -> bool {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut b) {
                Ok(1) => head.push(b[0]),
                _ => return false,
            }
        }
        true
    }

    /// A server may close an idle keep-alive connection at any moment, so
    /// the client can send its next request on a connection the server has
    /// already given up on. The server here makes that race certain: it
    /// answers the first request keep-alive, waits until the second request
    /// arrives on that same connection, and closes it unanswered. The GET
    /// must then be sent again on a new connection.
    #[test]
    fn get_retried_when_kept_alive_connection_closes() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = r#"{"schemaVersion":2}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let server = std::thread::spawn(move || -> usize {
            let (mut first, _) = listener.accept().unwrap();
            assert!(read_head(&mut first), "first request");
            first.write_all(answer.as_bytes()).unwrap();
            // The second request came on the kept-alive connection: close
            // it without an answer, as a server timing out idle ones does.
            assert!(
                read_head(&mut first),
                "second request on the same connection"
            );
            drop(first);
            // Serve the retry; give up (served 0) if none comes.
            listener.set_nonblocking(true).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                if read_head(&mut c) {
                    c.write_all(answer.as_bytes()).unwrap();
                    return 1;
                }
            }
            0
        });
        let opts = Options {
            plain_http: true,
            ..Default::default()
        };
        let reference = Reference::parse(&format!("127.0.0.1:{port}/keepalive:v1")).unwrap();
        let client = Client::new(&opts, &reference).unwrap();
        let (data, _) = client.manifest("v1").unwrap();
        assert_eq!(data, body.as_bytes());
        let (data, _) = client.manifest("v1").unwrap();
        assert_eq!(data, body.as_bytes());
        assert_eq!(server.join().unwrap(), 1, "retried on a new connection");
    }
}
