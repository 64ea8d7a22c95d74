//! `runc features`: what this build implements, in the runtime-spec's
//! features.json shape.

use crate::json::Writer;
use crate::sys::caps;

const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];
const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
const SECCOMP_ARCHS: &[&str] = &["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"];

/// What this build does.
pub fn json() -> String {
    features_json(
        HOOKS,
        Some((SECCOMP_ACTIONS, SECCOMP_OPERATORS, SECCOMP_ARCHS)),
    )
}

fn features_json(hooks: &[&str], seccomp: Option<(&[&str], &[&str], &[&str])>) -> String {
    let mut w = Writer::pretty();
    w.begin_object();
    w.key("ociVersionMin").str("1.0.0");
    w.key("ociVersionMax").str("1.1.0");
    w.key("hooks").strings(hooks);
    w.key("mountOptions").strings(MOUNT_OPTIONS);
    w.key("linux").object();
    w.key("namespaces").strings(&[
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    ]);
    w.key("capabilities").strings(caps::NAMES);
    w.key("cgroup").object();
    w.key("v1")
        .bool(true)
        .key("v2")
        .bool(true)
        .key("systemd")
        .bool(false)
        .key("systemdUser")
        .bool(false);
    w.end_object();
    w.key("seccomp").object();
    match seccomp {
        Some((actions, operators, archs)) => {
            w.key("enabled").bool(true);
            w.key("actions").strings(actions);
            w.key("operators").strings(operators);
            w.key("archs").strings(archs);
        }
        None => {
            w.key("enabled").bool(false);
        }
    }
    w.end_object();
    w.key("apparmor")
        .object()
        .key("enabled")
        .bool(false)
        .end_object();
    w.key("selinux")
        .object()
        .key("enabled")
        .bool(false)
        .end_object();
    w.key("intelRdt")
        .object()
        .key("enabled")
        .bool(false)
        .end_object();
    w.end_object();
    w.key("annotations").object();
    w.key("org.opencontainers.runc.checkpoint.enabled")
        .str("false");
    w.key("org.opencontainers.runc.version")
        .str(concat!(env!("CARGO_PKG_VERSION"), "+skiff"));
    w.end_object();
    w.end_object();
    w.finish()
}
