//! The default config.json: what `runc spec` writes (same fields, values
//! and order), and the base of the bundles skiff-fetch makes from images.

use crate::json::Writer;

const CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(w: &mut Writer, dest: &str, kind: &str, source: &str, options: &[&str]) {
    w.object();
    w.key("destination").str(dest);
    w.key("type").str(kind);
    w.key("source").str(source);
    if !options.is_empty() {
        w.key("options").strings(options);
    }
    w.end_object();
}

/// What varies between the default configs we write.
#[derive(Debug, Clone)]
pub struct Template {
    /// Map this host uid/gid to root in a user namespace, and leave out
    /// what an unprivileged user cannot have.
    pub rootless: Option<(u32, u32)>,
    pub terminal: bool,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub readonly_root: bool,
    /// runc writes tabs.
    pub indent: &'static str,
}

impl Default for Template {
    /// `runc spec`'s values.
    fn default() -> Self {
        Template {
            rootless: None,
            terminal: true,
            args: vec!["sh".into()],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "TERM=xterm".into(),
            ],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            readonly_root: true,
            indent: "\t",
        }
    }
}

/// The default spec; `rootless` maps the calling user to root in a user
/// namespace and drops what an unprivileged user cannot have.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> String {
    render(&Template {
        rootless: rootless.then_some((uid, gid)),
        ..Template::default()
    })
}

/// The config.json text for `t`.
pub fn render(t: &Template) -> String {
    let rootless = t.rootless.is_some();
    let mut w = Writer::indented(t.indent);
    w.begin_object();
    w.key("ociVersion").str(crate::runtime::OCI_VERSION);
    w.key("process").object();
    w.key("terminal").bool(t.terminal);
    w.key("user")
        .object()
        .key("uid")
        .num(t.uid)
        .key("gid")
        .num(t.gid);
    if !t.additional_gids.is_empty() {
        w.key("additionalGids").array();
        for g in &t.additional_gids {
            w.num(g);
        }
        w.end_array();
    }
    w.end_object();
    w.key("args").strings(&t.args);
    w.key("env").strings(&t.env);
    w.key("cwd")
        .str(if t.cwd.is_empty() { "/" } else { &t.cwd });
    w.key("capabilities").object();
    for set in ["bounding", "effective", "permitted", "ambient"] {
        w.key(set).strings(CAPS);
    }
    w.end_object();
    w.key("rlimits").array().object();
    w.key("type")
        .str("RLIMIT_NOFILE")
        .key("hard")
        .num(1024)
        .key("soft")
        .num(1024);
    w.end_object().end_array();
    w.key("noNewPrivileges").bool(true);
    w.end_object();
    w.key("root")
        .object()
        .key("path")
        .str("rootfs")
        .key("readonly")
        .bool(t.readonly_root)
        .end_object();
    w.key("hostname").str("runc");
    w.key("mounts").array();
    mount(&mut w, "/proc", "proc", "proc", &[]);
    mount(
        &mut w,
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    );
    let devpts: &[&str] = if rootless {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    mount(&mut w, "/dev/pts", "devpts", "devpts", devpts);
    mount(
        &mut w,
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    );
    mount(
        &mut w,
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    );
    if rootless {
        mount(
            &mut w,
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        );
    } else {
        mount(
            &mut w,
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        );
        mount(
            &mut w,
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        );
    }
    w.end_array();
    w.key("linux").object();
    if let Some((uid, gid)) = t.rootless {
        for (key, host) in [("uidMappings", uid), ("gidMappings", gid)] {
            w.key(key).array().object();
            w.key("containerID")
                .num(0)
                .key("hostID")
                .num(host)
                .key("size")
                .num(1);
            w.end_object().end_array();
        }
    } else {
        w.key("resources").object().key("devices").array().object();
        w.key("allow").bool(false).key("access").str("rwm");
        w.end_object().end_array().end_object();
    }
    w.key("namespaces").array();
    let namespaces: &[&str] = if rootless {
        &["pid", "ipc", "uts", "mount", "user"]
    } else {
        &["pid", "network", "ipc", "uts", "mount"]
    };
    for ns in namespaces {
        w.object().key("type").str(ns).end_object();
    }
    w.end_array();
    w.key("maskedPaths").strings(MASKED);
    w.key("readonlyPaths").strings(READONLY);
    w.end_object();
    w.end_object();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_back() {
        for rootless in [false, true] {
            let text = default_spec(rootless, 1000, 1000);
            let spec = crate::oci::spec::parse(&text).unwrap();
            assert_eq!(spec.process.unwrap().args, ["sh"]);
            assert_eq!(spec.linux.masked_paths.len(), 10);
        }
    }
}
