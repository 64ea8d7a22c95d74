//! Linux capabilities: names, the bounding and ambient sets, capset(2).

use super::check;
use crate::error::{Context, Result};

/// Capability names in number order (capability.h); the index is the number.
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capability that installing a seccomp filter without no_new_privs
/// needs (capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;

/// A set of capabilities as a bit mask.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Set(pub u64);

impl Set {
    pub fn contains(self, cap: u32) -> bool {
        self.0 & (1u64 << cap) != 0
    }
    pub fn insert(&mut self, cap: u32) {
        self.0 |= 1u64 << cap;
    }
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |c| self.contains(*c))
    }
}

/// The number of a capability name (`CAP_CHOWN`, case-insensitive).
pub fn from_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// The highest capability this kernel knows. The runtime reads it before
/// it clones a container's process and passes it down: the child may be
/// in the container's mount namespace, under its seccomp filter, or forked
/// from a multi-threaded caller, none of which should decide it.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

/// Drop from the bounding set every capability up to `last_cap` (from
/// [`last_cap`]) not in `keep`.
pub fn limit_bounding(keep: Set, last_cap: u32) -> Result<()> {
    for cap in 0..=last_cap {
        if keep.contains(cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        check(ret as libc::c_long)
            .with_context(|| format!("drop {} from the bounding set", name(cap)))?;
    }
    Ok(())
}

/// Raise each capability of `caps` in the ambient set. The kernel refuses
/// one that is not both permitted and inheritable; runc ignores that, and
/// so do we (the default spec asks for ambient caps it cannot have).
pub fn raise_ambient(caps: Set) {
    for cap in caps.iter() {
        // SAFETY: prctl with integer arguments.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        let _ = ret;
    }
}

/// Keep permitted capabilities across a change of uid away from 0.
pub fn set_keep_caps(keep: bool) -> Result<()> {
    rustix::thread::set_keep_capabilities(keep).context("set keep-capabilities")
}

/// capset(2) for this thread; capabilities above `last_cap` (from
/// [`last_cap`]) are left out.
pub fn set(effective: Set, permitted: Set, inheritable: Set, last_cap: u32) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    // Capabilities newer than this kernel cannot be had; leave them out
    // rather than fail (as runc does).
    let known = Set((1u64 << (last_cap + 1)).wrapping_sub(1));
    let (effective, permitted, inheritable) = (
        Set(effective.0 & known.0),
        Set(permitted.0 & known.0),
        Set(inheritable.0 & known.0),
    );
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |s: Set, i: u32| (s.0 >> (32 * i)) as u32;
    let data = [0, 1].map(|i| Data {
        effective: half(effective, i),
        permitted: half(permitted, i),
        inheritable: half(inheritable, i),
    });
    // SAFETY: header and a two-element data array in the v3 layout.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    check(ret).context("capset")?;
    Ok(())
}

pub fn name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map_or_else(|| format!("capability {cap}"), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(from_name("CAP_CHOWN"), Some(0));
        assert_eq!(from_name("cap_mknod"), Some(27));
        assert_eq!(from_name("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(from_name("CAP_NOPE"), None);
        assert_eq!(name(21), "CAP_SYS_ADMIN");
    }
}
