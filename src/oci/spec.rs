//! The OCI runtime config (config.json), parsed once at the edge into typed
//! values. Every error names the file and the field.

use crate::error::{Context, Error, Result};
use crate::json::{self, Node};
use crate::sys::{caps, ns};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub oci_version: String,
    pub root: Root,
    pub process: Option<Process>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub mounts: Vec<Mount>,
    pub annotations: Vec<(String, String)>,
    pub hooks: Hooks,
    pub linux: Linux,
}

/// One hook: a program run at a point of the lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Hook {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Seconds.
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Default)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Process {
    pub terminal: bool,
    /// (height, width)
    pub console_size: Option<(u16, u16)>,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Option<Capabilities>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub umask: Option<u32>,
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub bounding: caps::Set,
    pub effective: caps::Set,
    pub inheritable: caps::Set,
    pub permitted: caps::Set,
    pub ambient: caps::Set,
}

#[derive(Debug, Clone)]
pub struct Rlimit {
    pub name: String,
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Mount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub kind: ns::Kind,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub path: String,
    /// 'c', 'u', 'b' or 'p'
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
    pub sysctl: Vec<(String, String)>,
    pub rootfs_propagation: Option<String>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub devices: Vec<Device>,
    pub cgroups_path: Option<String>,
    pub resources: Option<super::resources::Resources>,
    pub seccomp: Option<crate::seccomp::Profile>,
    /// linux.personality's domain as personality(2) takes it.
    pub personality: Option<u64>,
    /// Present sections this build does not apply yet, by field path.
    pub unsupported: Vec<String>,
}

impl Linux {
    pub fn namespace(&self, kind: ns::Kind) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.kind == kind)
    }
}

/// The largest config.json (or process.json) we read: far above any real
/// one (runc's own are a few KiB), and a bound on what a bad bundle costs.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read and parse `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    load_with_text(bundle).map(|(spec, _)| spec)
}

/// [`load`], also returning the text that was parsed.
pub fn load_with_text(bundle: &Path) -> Result<(Spec, String)> {
    let path = bundle.join("config.json");
    let shown = path.display().to_string();
    let text = crate::fsutil::read_bounded(&path, MAX_CONFIG_BYTES).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(format!(
                "{shown}: no such file (is {} an OCI bundle?)",
                bundle.display()
            ))
        } else {
            Error::from(e).wrap(format!("read {shown}"))
        }
    })?;
    let spec = parse(&text).map_err(|e| e.wrap(&shown))?;
    Ok((spec, text))
}

/// Parse config.json text.
pub fn parse(text: &str) -> Result<Spec> {
    let value = json::parse(text, "config")
        .map_err(|e| Error::new(e.message().trim_start_matches("config: ").to_string()))?;
    let doc = Node::new(&value, "");
    doc.object()?;
    let mut spec = Spec {
        oci_version: doc.need("ociVersion")?.string()?,
        ..Spec::default()
    };
    let root = doc.need("root")?;
    spec.root = Root {
        path: root.need("path")?.string()?,
        readonly: opt_bool(&root, "readonly")?,
    };
    if spec.root.path.is_empty() {
        return Err(root.need("path")?.invalid("must not be empty"));
    }
    if let Some(p) = doc.get("process")? {
        spec.process = Some(parse_process(&p)?);
    }
    spec.hostname = doc.get("hostname")?.map(|n| n.string()).transpose()?;
    spec.domainname = doc.get("domainname")?.map(|n| n.string()).transpose()?;
    if let Some(m) = doc.get("mounts")? {
        spec.mounts = m.items()?.iter().map(parse_mount).collect::<Result<_>>()?;
    }
    if let Some(a) = doc.get("annotations")? {
        spec.annotations = a.string_map()?;
    }
    if let Some(l) = doc.get("linux")? {
        spec.linux = parse_linux(&l)?;
    }
    if let Some(h) = doc.get("hooks")? {
        spec.hooks = parse_hooks(&h)?;
    }
    Ok(spec)
}

/// Read a process.json (`runc exec --process`).
pub fn load_process(path: &Path) -> Result<Process> {
    let shown = path.display().to_string();
    let text = crate::fsutil::read_bounded(path, MAX_CONFIG_BYTES)
        .with_context(|| format!("read {shown}"))?;
    let value = json::parse(&text, &shown)?;
    parse_process(&Node::new(&value, "")).map_err(|e| e.wrap(&shown))
}

fn parse_hooks(h: &Node) -> Result<Hooks> {
    let list = |key: &str| -> Result<Vec<Hook>> {
        let Some(items) = h.get(key)? else {
            return Ok(Vec::new());
        };
        items
            .items()?
            .iter()
            .map(|item| {
                let hook = Hook {
                    path: item.need("path")?.string()?,
                    args: opt_strings(item, "args")?,
                    env: opt_strings(item, "env")?,
                    timeout: item.get("timeout")?.map(|t| t.u64()).transpose()?,
                };
                if !hook.path.starts_with('/') {
                    return Err(item
                        .need("path")?
                        .invalid(format!("{:?} is not an absolute path", hook.path)));
                }
                if hook.timeout == Some(0) {
                    return Err(item.need("timeout")?.invalid("must be greater than zero"));
                }
                Ok(hook)
            })
            .collect()
    };
    Ok(Hooks {
        prestart: list("prestart")?,
        create_runtime: list("createRuntime")?,
        create_container: list("createContainer")?,
        start_container: list("startContainer")?,
        poststart: list("poststart")?,
        poststop: list("poststop")?,
    })
}

fn opt_bool(n: &Node, key: &str) -> Result<bool> {
    n.get(key)?.map_or(Ok(false), |v| v.bool())
}

fn opt_strings(n: &Node, key: &str) -> Result<Vec<String>> {
    n.get(key)?.map_or(Ok(Vec::new()), |v| v.strings())
}

fn parse_process(p: &Node) -> Result<Process> {
    let mut proc = Process {
        terminal: opt_bool(p, "terminal")?,
        args: opt_strings(p, "args")?,
        env: opt_strings(p, "env")?,
        cwd: p.need("cwd")?.string()?,
        no_new_privileges: opt_bool(p, "noNewPrivileges")?,
        ..Process::default()
    };
    if !proc.cwd.starts_with('/') {
        return Err(p
            .need("cwd")?
            .invalid(format!("{:?} is not an absolute path", proc.cwd)));
    }
    if let Some(cs) = p.get("consoleSize")? {
        let h = cs.need("height")?.u32()?;
        let w = cs.need("width")?.u32()?;
        proc.console_size = Some((h.min(u16::MAX as u32) as u16, w.min(u16::MAX as u32) as u16));
    }
    if let Some(u) = p.get("user")? {
        proc.user = User {
            uid: u.get("uid")?.map_or(Ok(0), |v| v.u32())?,
            gid: u.get("gid")?.map_or(Ok(0), |v| v.u32())?,
            umask: u.get("umask")?.map(|v| v.u32()).transpose()?,
            additional_gids: match u.get("additionalGids")? {
                Some(g) => g.items()?.iter().map(|n| n.u32()).collect::<Result<_>>()?,
                None => Vec::new(),
            },
        };
    }
    if let Some(c) = p.get("capabilities")? {
        // The spec: a value that cannot be mapped MUST be an error.
        let set_of = |key: &str| -> Result<caps::Set> {
            let mut set = caps::Set::default();
            let Some(list) = c.get(key)? else {
                return Ok(set);
            };
            for item in list.items()? {
                let name = item.str()?;
                let n = caps::from_name(name)
                    .ok_or_else(|| item.invalid(format!("unknown capability {name:?}")))?;
                set.insert(n);
            }
            Ok(set)
        };
        proc.capabilities = Some(Capabilities {
            bounding: set_of("bounding")?,
            effective: set_of("effective")?,
            inheritable: set_of("inheritable")?,
            permitted: set_of("permitted")?,
            ambient: set_of("ambient")?,
        });
    }
    if let Some(r) = p.get("rlimits")? {
        for item in r.items()? {
            let name = item.need("type")?.string()?;
            let resource = rlimit_resource(&name).ok_or_else(|| {
                item.need("type")
                    .map_or_else(|e| e, |t| t.invalid(format!("unknown rlimit {name:?}")))
            })?;
            let soft = item.need("soft")?.u64()?;
            let hard = item.need("hard")?.u64()?;
            if proc.rlimits.iter().any(|r: &Rlimit| r.resource == resource) {
                return Err(item.invalid(format!("duplicate rlimit {name}")));
            }
            proc.rlimits.push(Rlimit {
                name,
                resource,
                soft,
                hard,
            });
        }
    }
    proc.oom_score_adj = p.get("oomScoreAdj")?.map(|v| v.i32()).transpose()?;
    if proc.args.is_empty() {
        return Err(p.invalid("args must not be empty"));
    }
    Ok(proc)
}

// The constants are i32 on musl and u32 on glibc.
#[allow(clippy::unnecessary_cast)]
fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as i32)
}

fn parse_mount(m: &Node) -> Result<Mount> {
    let mount = Mount {
        destination: m.need("destination")?.string()?,
        kind: m.get("type")?.map_or(Ok(String::new()), |v| v.string())?,
        source: m.get("source")?.map_or(Ok(String::new()), |v| v.string())?,
        options: opt_strings(m, "options")?,
    };
    if !mount.destination.starts_with('/') {
        return Err(m
            .need("destination")?
            .invalid(format!("{:?} is not an absolute path", mount.destination)));
    }
    Ok(mount)
}

fn parse_id_maps(n: Option<Node>) -> Result<Vec<IdMap>> {
    let Some(n) = n else { return Ok(Vec::new()) };
    n.items()?
        .iter()
        .map(|m| {
            Ok(IdMap {
                container_id: m.need("containerID")?.u32()?,
                host_id: m.need("hostID")?.u32()?,
                size: m.need("size")?.u32()?,
            })
        })
        .collect()
}

fn parse_linux(l: &Node) -> Result<Linux> {
    let mut linux = Linux::default();
    if let Some(nss) = l.get("namespaces")? {
        for item in nss.items()? {
            let t = item.need("type")?;
            let kind = ns::Kind::from_oci(t.str()?).ok_or_else(|| {
                t.invalid(format!(
                    "unknown namespace type {:?}",
                    t.str().unwrap_or("")
                ))
            })?;
            if linux.namespace(kind).is_some() {
                return Err(t.invalid(format!("duplicate {} namespace", kind.oci_name())));
            }
            let path = item
                .get("path")?
                .map(|p| p.string())
                .transpose()?
                .filter(|p| !p.is_empty());
            linux.namespaces.push(Namespace { kind, path });
        }
    }
    linux.uid_mappings = parse_id_maps(l.get("uidMappings")?)?;
    linux.gid_mappings = parse_id_maps(l.get("gidMappings")?)?;
    if let Some(s) = l.get("sysctl")? {
        linux.sysctl = s.string_map()?;
    }
    if let Some(p) = l.get("rootfsPropagation")? {
        let v = p.string()?;
        match v.as_str() {
            "" => {}
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => linux.rootfs_propagation = Some(v),
            _ => return Err(p.invalid(format!("unknown propagation {v:?}"))),
        }
    }
    linux.masked_paths = opt_strings(l, "maskedPaths")?;
    linux.readonly_paths = opt_strings(l, "readonlyPaths")?;
    if let Some(devs) = l.get("devices")? {
        for d in devs.items()? {
            let t = d.need("type")?;
            let kind = match t.str()? {
                "c" => 'c',
                "u" => 'u',
                "b" => 'b',
                "p" => 'p',
                other => return Err(t.invalid(format!("unknown device type {other:?}"))),
            };
            let path = d.need("path")?.string()?;
            if !path.starts_with("/dev/") {
                return Err(d
                    .need("path")?
                    .invalid(format!("{path:?} is not under /dev")));
            }
            let num = |k: &str| -> Result<u32> {
                match d.get(k)? {
                    Some(v) => v.u32(),
                    None if kind == 'p' => Ok(0),
                    None => Err(d.invalid(format!("{k} is required for a {kind} device"))),
                }
            };
            linux.devices.push(Device {
                path,
                kind,
                major: num("major")?,
                minor: num("minor")?,
                file_mode: d.get("fileMode")?.map(|v| v.u32()).transpose()?,
                uid: d.get("uid")?.map(|v| v.u32()).transpose()?,
                gid: d.get("gid")?.map(|v| v.u32()).transpose()?,
            });
        }
    }
    if let Some(p) = l.get("personality")? {
        let domain = p.need("domain")?;
        linux.personality = Some(match domain.str()? {
            "LINUX" => 0x0000,
            "LINUX32" => 0x0008,
            other => {
                return Err(domain.invalid(format!(
                    "unknown personality domain {other:?}: use LINUX or LINUX32"
                )))
            }
        });
        if p.get("flags")?
            .is_some_and(|f| f.items().is_ok_and(|i| !i.is_empty()))
        {
            return Err(p.invalid("flags: personality flags are not supported (as in runc)"));
        }
    }
    if let Some(sc) = l.get("seccomp")? {
        linux.seccomp = Some(crate::seccomp::parse(&sc)?);
    }
    if let Some(r) = l.get("resources")? {
        linux.resources = Some(super::resources::parse(&r)?);
    }
    linux.cgroups_path = l
        .get("cgroupsPath")?
        .map(|v| v.string())
        .transpose()?
        .filter(|s| !s.is_empty());
    for (key, _) in l.entries()? {
        if matches!(key, "intelRdt") {
            linux.unsupported.push(format!("linux.{key}"));
        }
    }
    let has_user_ns = linux
        .namespace(ns::Kind::User)
        .is_some_and(|n| n.path.is_none());
    if has_user_ns && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty()) {
        return Err(l.invalid("a new user namespace needs uidMappings and gidMappings"));
    }
    let has_maps = !linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty();
    if !has_user_ns && has_maps {
        return Err(
            l.invalid("uidMappings/gidMappings are set but no new user namespace is requested")
        );
    }
    Ok(linux)
}

impl Spec {
    /// The rootfs as an absolute path.
    pub fn rootfs(&self, bundle: &Path) -> std::path::PathBuf {
        let p = Path::new(&self.root.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            bundle.join(p)
        }
    }
}

/// Resolve the bundle directory to an absolute path, with a clear error
/// when it is missing.
pub fn bundle_dir(dir: &str) -> Result<std::path::PathBuf> {
    let p = if dir.is_empty() { "." } else { dir };
    let abs = std::fs::canonicalize(p).with_context(|| format!("bundle {p}"))?;
    if !abs.is_dir() {
        crate::bail!("bundle {}: not a directory", abs.display());
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#;

    #[test]
    fn parses_a_minimal_config() {
        let s = parse(MIN).unwrap();
        assert_eq!(s.root.path, "rootfs");
        assert_eq!(s.process.unwrap().args, ["sh"]);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = MIN.replace(r#""uid":0"#, r#""uid":"root""#);
        assert_eq!(
            parse(&bad).unwrap_err().message(),
            "process.user.uid: expected an unsigned integer, found a string"
        );
        let bad = MIN.replace(r#"{"path":"rootfs"}"#, r#"{"readonly":true}"#);
        assert_eq!(
            parse(&bad).unwrap_err().message(),
            "root.path: required field is missing"
        );
        let bad = MIN.replace(
            "\"root\"",
            "\"linux\":{\"namespaces\":[{\"type\":\"bogus\"}]},\"root\"",
        );
        assert_eq!(
            parse(&bad).unwrap_err().message(),
            "linux.namespaces[0].type: unknown namespace type \"bogus\""
        );
        assert!(parse("{")
            .unwrap_err()
            .message()
            .starts_with("invalid JSON at line 1"));
    }
}
