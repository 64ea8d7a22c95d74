//! The config.json that `runc spec` writes: same fields, values and order
//! (tab-indented, as runc writes it).

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

/// The default spec; `rootless` maps the calling user to root in a user
/// namespace and drops what an unprivileged user cannot have.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> String {
    let mut w = Writer::indented("\t");
    w.begin_object();
    w.key("ociVersion").str(super::OCI_VERSION);
    w.key("process").object();
    w.key("terminal").bool(true);
    w.key("user")
        .object()
        .key("uid")
        .num(0)
        .key("gid")
        .num(0)
        .end_object();
    w.key("args").strings(&["sh"]);
    w.key("env").strings(&[
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
    ]);
    w.key("cwd").str("/");
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
        .bool(true)
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
    if rootless {
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
