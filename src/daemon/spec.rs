//! The OCI spec of a container, built from the image config plus ctr's
//! options, as containerd's ctr does client-side (`oci.WithImageConfig`,
//! `WithEnv`, `WithMounts`, …). skiff's ctr calls [`build`] and sends the
//! result in `Containers.Create` (`Any` of type [`SPEC_TYPE_URL`]).

use crate::error::{Error, Result};
use crate::image::bundle;
use crate::image::oci::ImageConfig;
use crate::oci::default_config::{render, Template};
use miniserde::json::{Array, Number, Object, Value};

/// containerd's type URL of a runtime spec in a container record.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// A bind (or other) mount from `--mount type=bind,src=,dst=,options=a:b`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub options: Vec<String>,
}

impl MountSpec {
    /// ctr's `--mount` syntax.
    pub fn parse(s: &str) -> Result<MountSpec> {
        let mut m = MountSpec::default();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| Error::new(format!("mount {s:?}: {part:?} is not key=value")))?;
            match k {
                "type" => m.kind = v.into(),
                "src" | "source" => m.source = v.into(),
                "dst" | "destination" | "target" => m.destination = v.into(),
                "options" => {
                    m.options = v
                        .split(':')
                        .filter(|o| !o.is_empty())
                        .map(Into::into)
                        .collect()
                }
                _ => return Err(Error::new(format!("mount {s:?}: unknown key {k:?}"))),
            }
        }
        if m.destination.is_empty() || !m.destination.starts_with('/') {
            return Err(Error::new(format!(
                "mount {s:?}: dst must be an absolute path"
            )));
        }
        if m.kind.is_empty() {
            m.kind = "bind".into();
        }
        if m.kind == "bind" && !m.options.iter().any(|o| o == "bind" || o == "rbind") {
            m.options.push("rbind".into());
        }
        Ok(m)
    }
}

/// What ctr's `run`/`create` flags ask for.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// Replaces the image's Cmd (Entrypoint kept), as `ctr run IMAGE ID CMD…`.
    pub args: Option<Vec<String>>,
    /// `K=V`, added to (and overriding) the image's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `UID[:GID]` (numeric; names need the rootfs, not read client-side yet).
    pub user: Option<String>,
    pub terminal: bool,
    pub read_only: bool,
    pub net_host: bool,
    pub memory_limit: Option<u64>,
    pub cpus: Option<f64>,
    pub mounts: Vec<MountSpec>,
    pub seccomp: bool,
    pub hostname: Option<String>,
    /// The container id: the cgroup path `/<namespace>/<id>` is made from it.
    pub id: String,
    pub namespace: String,
}

/// The spec as JSON bytes.
pub fn build(image: &ImageConfig, o: &SpecOptions) -> Result<Vec<u8>> {
    let args = bundle::command(image, o.args.as_deref())?;
    let mut env = bundle::environment(image);
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    let (uid, gid) = match o
        .user
        .as_deref()
        .or(Some(image.user.as_str()).filter(|u| !u.is_empty()))
    {
        None => (0, 0),
        Some(u) => numeric_user(u)?,
    };
    let cwd = o
        .cwd
        .clone()
        .or_else(|| Some(image.working_dir.clone()).filter(|c| !c.is_empty()))
        .unwrap_or_else(|| "/".into());
    let text = render(&Template {
        rootless: None,
        terminal: o.terminal,
        args,
        env,
        cwd,
        uid,
        gid,
        additional_gids: Vec::new(),
        readonly_root: o.read_only,
        indent: "",
    });
    let mut v: Value =
        miniserde::json::from_str(&text).map_err(|_| Error::new("default spec: not JSON"))?;
    let Value::Object(root) = &mut v else {
        return Err(Error::new("default spec: not an object"));
    };
    root.insert(
        "hostname".into(),
        string(o.hostname.as_deref().unwrap_or(&o.id)),
    );
    if let Some(Value::Object(root_fs)) = root.get_mut("root") {
        root_fs.insert("path".into(), string("rootfs"));
    }
    if let Some(Value::Array(mounts)) = root.get_mut("mounts") {
        for m in &o.mounts {
            let mut obj = Object::new();
            obj.insert("destination".into(), string(&m.destination));
            obj.insert("type".into(), string(&m.kind));
            obj.insert("source".into(), string(&m.source));
            obj.insert("options".into(), strings(&m.options));
            mounts.push(Value::Object(obj));
        }
        if o.net_host {
            for (dst, src) in [
                ("/etc/resolv.conf", "/etc/resolv.conf"),
                ("/etc/hosts", "/etc/hosts"),
            ] {
                let mut obj = Object::new();
                obj.insert("destination".into(), string(dst));
                obj.insert("type".into(), string("bind"));
                obj.insert("source".into(), string(src));
                obj.insert("options".into(), strings(&["rbind".into(), "ro".into()]));
                mounts.push(Value::Object(obj));
            }
        }
    }
    if let Some(Value::Object(linux)) = root.get_mut("linux") {
        if o.net_host {
            if let Some(Value::Array(nss)) = linux.get_mut("namespaces") {
                nss.retain(|n| !matches!(n, Value::Object(m) if matches!(m.get("type"), Some(Value::String(t)) if t == "network")));
            }
        }
        let ns = if o.namespace.is_empty() {
            "default"
        } else {
            &o.namespace
        };
        linux.insert("cgroupsPath".into(), string(&format!("/{ns}/{}", o.id)));
        let resources = linux
            .entry("resources".into())
            .or_insert_with(|| Value::Object(Object::new()));
        if let Value::Object(res) = resources {
            if let Some(limit) = o.memory_limit {
                let mut mem = Object::new();
                mem.insert("limit".into(), Value::Number(Number::I64(limit as i64)));
                res.insert("memory".into(), Value::Object(mem));
            }
            if let Some(cpus) = o.cpus {
                let period: u64 = 100_000;
                let mut cpu = Object::new();
                cpu.insert(
                    "quota".into(),
                    Value::Number(Number::I64((cpus * period as f64) as i64)),
                );
                cpu.insert("period".into(), Value::Number(Number::U64(period)));
                res.insert("cpu".into(), Value::Object(cpu));
            }
        }
        if o.seccomp {
            linux.insert("seccomp".into(), default_seccomp());
        }
    }
    Ok(miniserde::json::to_string(&v).into_bytes())
}

/// The OCI Process of an exec (`ctr tasks exec`): the container's own
/// process (user, env, cwd, capabilities…) with `args` and `terminal`
/// replaced, as containerd's ctr makes it; JSON bytes for
/// `Tasks.Exec`'s `spec` (type [`PROCESS_TYPE_URL`]).
pub fn exec_process(spec: &[u8], args: &[String], terminal: bool) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(spec).map_err(|_| Error::new("container spec: not UTF-8"))?;
    let v: Value =
        miniserde::json::from_str(text).map_err(|_| Error::new("container spec: not JSON"))?;
    let Value::Object(mut root) = v else {
        return Err(Error::new("container spec: not an object"));
    };
    let Some(Value::Object(mut process)) = root.remove("process") else {
        return Err(Error::new("container spec: no process"));
    };
    if args.is_empty() {
        return Err(Error::new("exec: a command is required"));
    }
    process.insert("args".into(), strings(args));
    process.insert("terminal".into(), Value::Bool(terminal));
    Ok(miniserde::json::to_string(&Value::Object(process)).into_bytes())
}

/// containerd's type URL of an exec's OCI Process.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn strings(items: &[String]) -> Value {
    let mut a = Array::new();
    a.extend(items.iter().map(|s| string(s)));
    Value::Array(a)
}

fn numeric_user(u: &str) -> Result<(u32, u32)> {
    let (a, b) = u.split_once(':').unwrap_or((u, ""));
    let uid: u32 = a.parse().map_err(|_| {
        Error::new(format!(
            "user {u:?}: only numeric UID[:GID] is supported so far"
        ))
    })?;
    let gid = if b.is_empty() {
        uid
    } else {
        b.parse()
            .map_err(|_| Error::new(format!("user {u:?}: GID must be numeric")))?
    };
    Ok((uid, gid))
}

/// `--seccomp`: a default-allow profile refusing (EPERM) what a container
/// should never do to its host. NOT containerd's default profile (an
/// allowlist of ~350 syscalls); that one is left for the full issue.
fn default_seccomp() -> Value {
    const DENIED: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "get_kernel_syms",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "nfsservctl",
        "open_by_handle_at",
        "perf_event_open",
        "pivot_root",
        "quotactl",
        "reboot",
        "request_key",
        "settimeofday",
        "swapoff",
        "swapon",
        "sysfs",
        "_sysctl",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
    ];
    let mut rule = Object::new();
    rule.insert(
        "names".into(),
        strings(&DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
    );
    rule.insert("action".into(), string("SCMP_ACT_ERRNO"));
    rule.insert("errnoRet".into(), Value::Number(Number::U64(1)));
    let mut syscalls = Array::new();
    syscalls.push(Value::Object(rule));
    let mut p = Object::new();
    p.insert("defaultAction".into(), string("SCMP_ACT_ALLOW"));
    p.insert(
        "architectures".into(),
        strings(&[
            "SCMP_ARCH_X86_64".into(),
            "SCMP_ARCH_X86".into(),
            "SCMP_ARCH_X32".into(),
        ]),
    );
    p.insert("syscalls".into(), Value::Array(syscalls));
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        crate::image::oci::parse_config(
            br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"WorkingDir":"/w"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
            "test config",
        )
        .unwrap()
    }

    #[test]
    fn options_shape_the_spec() {
        let o = SpecOptions {
            args: Some(vec!["echo".into(), "hi".into()]),
            env: vec!["A=2".into()],
            user: Some("1000:1001".into()),
            net_host: true,
            memory_limit: Some(64 << 20),
            cpus: Some(0.5),
            mounts: vec![MountSpec::parse("type=bind,src=/tmp,dst=/data,options=ro").unwrap()],
            id: "c1".into(),
            ..Default::default()
        };
        let text = String::from_utf8(build(&image(), &o).unwrap()).unwrap();
        let spec = crate::oci::spec::parse(&text).unwrap();
        let p = spec.process.unwrap();
        assert_eq!(p.args, ["echo", "hi"]);
        assert!(p.env.contains(&"A=2".to_string()) && !p.env.contains(&"A=1".to_string()));
        assert_eq!(p.cwd, "/w");
        assert!(
            text.contains("\"/data\"") && text.contains("\"rbind\""),
            "{text}"
        );
        assert!(!text.contains("\"network\""), "{text}");
        assert!(text.contains("\"quota\":50000"), "{text}");
        assert!(text.contains("\"cgroupsPath\":\"/default/c1\""), "{text}");
    }

    #[test]
    fn bad_mounts_and_users_are_refused() {
        assert!(MountSpec::parse("type=bind,src=/a").is_err());
        assert!(MountSpec::parse("type=bind,src=/a,dst=rel").is_err());
        let o = SpecOptions {
            user: Some("nobody".into()),
            ..Default::default()
        };
        let e = build(&image(), &o).unwrap_err();
        assert!(e.message().contains("nobody"), "{e}");
    }
}
