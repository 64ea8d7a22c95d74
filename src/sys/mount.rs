//! mount(2) and friends, and the mapping of mount option words to flags.

use super::{check, cstring};
use crate::error::{Context, Result};

pub use libc::{
    MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_MOVE, MS_NOATIME, MS_NODEV, MS_NODIRATIME,
    MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED,
    MS_SILENT, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE,
};

pub type Flags = libc::c_ulong;

/// A mount's option words sorted into what mount(2) takes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for the mount call itself.
    pub flags: Flags,
    /// Flags that a bind mount only honours on a remount (ro, nosuid, ...),
    /// set aside so the caller can remount.
    pub clear: Flags,
    /// Propagation changes (MS_SHARED, MS_SLAVE, ... possibly | MS_REC), in order.
    pub propagation: Vec<Flags>,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
    /// `idmap`/`ridmap` and the like that this build does not do.
    pub unsupported: Vec<String>,
}

/// Sort OCI mount option words (the words of fstab(5)/mount(8)).
pub fn parse_options(words: &[String]) -> Options {
    let mut o = Options::default();
    let mut data: Vec<&str> = Vec::new();
    for w in words {
        // (word, set?, flag)
        let flag: Option<(bool, Flags)> = match w.as_str() {
            "defaults" => Some((true, 0)),
            "ro" => Some((true, MS_RDONLY)),
            "rw" => Some((false, MS_RDONLY)),
            "suid" => Some((false, MS_NOSUID)),
            "nosuid" => Some((true, MS_NOSUID)),
            "dev" => Some((false, MS_NODEV)),
            "nodev" => Some((true, MS_NODEV)),
            "exec" => Some((false, MS_NOEXEC)),
            "noexec" => Some((true, MS_NOEXEC)),
            "sync" => Some((true, MS_SYNCHRONOUS)),
            "async" => Some((false, MS_SYNCHRONOUS)),
            "dirsync" => Some((true, MS_DIRSYNC)),
            "remount" => Some((true, MS_REMOUNT)),
            "mand" => Some((true, MS_MANDLOCK)),
            "nomand" => Some((false, MS_MANDLOCK)),
            "atime" => Some((false, MS_NOATIME)),
            "noatime" => Some((true, MS_NOATIME)),
            "diratime" => Some((false, MS_NODIRATIME)),
            "nodiratime" => Some((true, MS_NODIRATIME)),
            "relatime" => Some((true, MS_RELATIME)),
            "norelatime" => Some((false, MS_RELATIME)),
            "strictatime" => Some((true, MS_STRICTATIME)),
            "nostrictatime" => Some((false, MS_STRICTATIME)),
            "lazytime" => Some((true, MS_LAZYTIME)),
            "nolazytime" => Some((false, MS_LAZYTIME)),
            "silent" => Some((true, MS_SILENT)),
            "loud" => Some((false, MS_SILENT)),
            "bind" => Some((true, MS_BIND)),
            "rbind" => Some((true, MS_BIND | MS_REC)),
            _ => None,
        };
        if let Some((set, f)) = flag {
            if set {
                o.flags |= f;
                o.clear &= !f;
            } else {
                o.flags &= !f;
                o.clear |= f;
            }
            continue;
        }
        let prop = match w.as_str() {
            "private" => Some(MS_PRIVATE),
            "rprivate" => Some(MS_PRIVATE | MS_REC),
            "shared" => Some(MS_SHARED),
            "rshared" => Some(MS_SHARED | MS_REC),
            "slave" => Some(MS_SLAVE),
            "rslave" => Some(MS_SLAVE | MS_REC),
            "unbindable" => Some(MS_UNBINDABLE),
            "runbindable" => Some(MS_UNBINDABLE | MS_REC),
            _ => None,
        };
        if let Some(p) = prop {
            o.propagation.push(p);
            continue;
        }
        match w.as_str() {
            "idmap" | "ridmap" | "tmpcopyup" | "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev"
            | "rdev" | "rnoexec" | "rexec" | "rnoatime" | "ratime" | "rrelatime"
            | "rnorelatime" | "rstrictatime" | "rnostrictatime" | "rnodiratime" | "rdiratime"
            | "rnosymfollow" | "rsymfollow" | "nosymfollow" | "symfollow" => {
                o.unsupported.push(w.clone())
            }
            _ => data.push(w),
        }
    }
    o.data = data.join(",");
    o
}

/// The flags that take effect through a bind remount.
pub const BIND_REMOUNT_FLAGS: Flags = MS_RDONLY
    | MS_NOSUID
    | MS_NODEV
    | MS_NOEXEC
    | MS_NOATIME
    | MS_NODIRATIME
    | MS_RELATIME
    | MS_STRICTATIME;

/// mount(2). `source` and `fstype` may be empty; `data` may be empty.
pub fn mount(source: &str, target: &str, fstype: &str, flags: Flags, data: &str) -> Result<()> {
    let src = cstring(source)?;
    let tgt = cstring(target)?;
    let fst = cstring(fstype)?;
    let dat = cstring(data)?;
    let opt = |c: &std::ffi::CString, s: &str| {
        if s.is_empty() {
            std::ptr::null()
        } else {
            c.as_ptr()
        }
    };
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives
    // the call.
    let ret = unsafe {
        libc::mount(
            opt(&src, source),
            tgt.as_ptr(),
            opt(&fst, fstype),
            flags,
            opt(&dat, data) as *const libc::c_void,
        )
    };
    check(ret as libc::c_long)?;
    Ok(())
}

/// umount2(2).
pub fn umount(target: &str, flags: i32) -> Result<()> {
    let tgt = cstring(target)?;
    // SAFETY: tgt is a NUL-terminated string.
    check(unsafe { libc::umount2(tgt.as_ptr(), flags) } as libc::c_long)
        .with_context(|| format!("unmount {target}"))?;
    Ok(())
}

pub const MNT_DETACH: i32 = libc::MNT_DETACH;

/// pivot_root(2).
pub fn pivot_root(new_root: &str, put_old: &str) -> Result<()> {
    rustix::process::pivot_root(new_root, put_old).context("pivot_root")
}

/// chroot(2).
pub fn chroot(path: &str) -> Result<()> {
    let p = cstring(path)?;
    // SAFETY: p is a NUL-terminated string.
    check(unsafe { libc::chroot(p.as_ptr()) } as libc::c_long)
        .with_context(|| format!("chroot {path}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sorts_words() {
        let o = parse_options(&words(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]));
        assert_eq!(o.flags, MS_NOSUID | MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MS_PRIVATE | MS_REC]);
        let o = parse_options(&words(&["rbind", "ro", "rw"]));
        assert_eq!(o.flags, MS_BIND | MS_REC);
        assert_eq!(o.clear, MS_RDONLY);
    }
}
