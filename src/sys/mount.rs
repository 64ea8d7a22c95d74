//! mount(2) and friends, and the mapping of mount option words to flags.

use super::{check, cstring};
use crate::error::{Context, Error, Kind, Result};
use std::os::fd::{AsFd, AsRawFd};

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
    /// Mount attributes for mount_setattr(2) on the whole tree (`rro`, ...).
    pub recursive: Attrs,
    /// Mount attributes for mount_setattr(2) on the mount alone
    /// (`nosymfollow`, which mount(2) flags cannot say on every kernel).
    pub single: Attrs,
    /// `idmap`/`ridmap` and the like that this build does not do.
    pub unsupported: Vec<String>,
}

/// Mount attributes (MOUNT_ATTR_*) to set and to clear with mount_setattr(2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }

    fn add(&mut self, set: bool, attr: u64) {
        if attr & MOUNT_ATTR__ATIME != 0 || attr == MOUNT_ATTR_RELATIME {
            // The access-time modes are one field: setting one replaces it.
            self.clear |= MOUNT_ATTR__ATIME;
            self.set &= !MOUNT_ATTR__ATIME;
            if set {
                self.set |= attr;
            }
            return;
        }
        if set {
            self.set |= attr;
            self.clear &= !attr;
        } else {
            self.clear |= attr;
            self.set &= !attr;
        }
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The option words that become mount attributes: (word, recursive?, set?,
/// attribute).
const ATTR_WORDS: &[(&str, bool, bool, u64)] = &[
    ("rro", true, true, MOUNT_ATTR_RDONLY),
    ("rrw", true, false, MOUNT_ATTR_RDONLY),
    ("rnosuid", true, true, MOUNT_ATTR_NOSUID),
    ("rsuid", true, false, MOUNT_ATTR_NOSUID),
    ("rnodev", true, true, MOUNT_ATTR_NODEV),
    ("rdev", true, false, MOUNT_ATTR_NODEV),
    ("rnoexec", true, true, MOUNT_ATTR_NOEXEC),
    ("rexec", true, false, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", true, true, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, false, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", true, true, MOUNT_ATTR_RELATIME),
    ("rnoatime", true, true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", true, true, MOUNT_ATTR_STRICTATIME),
    // The access time is one mode: leaving one goes back to the default
    // (relatime), and "no relatime" means every access.
    ("ratime", true, true, MOUNT_ATTR_RELATIME),
    ("rnostrictatime", true, true, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", true, true, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, false, MOUNT_ATTR_NOSYMFOLLOW),
    ("nosymfollow", false, true, MOUNT_ATTR_NOSYMFOLLOW),
    ("symfollow", false, false, MOUNT_ATTR_NOSYMFOLLOW),
];

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
        if let Some(&(_, recursive, set, attr)) = ATTR_WORDS.iter().find(|a| a.0 == w) {
            if recursive {
                o.recursive.add(set, attr);
            } else {
                o.single.add(set, attr);
            }
            continue;
        }
        match w.as_str() {
            "idmap" | "ridmap" | "tmpcopyup" => o.unsupported.push(w.clone()),
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

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `target` names (an O_PATH fd of its
/// root), and with `recursive` on every mount below it too.
pub fn set_attrs(target: impl AsFd, attrs: Attrs, recursive: bool) -> Result<()> {
    let attr = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = c"";
    // SAFETY: the fd is open for the whole call, the path is a
    // NUL-terminated string, and `attr` is a mount_attr of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_fd().as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Err(Error::of(
                Kind::Unimplemented,
                "mount_setattr: not supported by this kernel (Linux 5.12 or later is needed)",
            ));
        }
        return Err(Error::from(e).wrap("mount_setattr"));
    }
    Ok(())
}

/// One line of /proc/PID/mountinfo, paths unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u64,
    pub parent: u64,
    /// The directory of the filesystem mounted here (`/` for a whole one).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: String,
    /// The optional fields: `shared:N`, `master:N`, `unbindable`...
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    pub super_options: String,
}

impl MountInfo {
    /// Does the mount propagate to (and receive from) peers?
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }
}

/// The mounts of our mount namespace (/proc/self/mountinfo), in the
/// kernel's order (a mount on top of another comes after it).
pub fn mount_table() -> Result<Vec<MountInfo>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&info))
}

/// Parse mountinfo text; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let _dev = l.next()?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let options = l.next()?.to_string();
    let optional = l.filter(|f| !f.is_empty()).map(str::to_string).collect();
    let mut r = right.split(' ');
    Some(MountInfo {
        id,
        parent,
        root,
        mount_point,
        options,
        optional,
        fs_type: r.next()?.to_string(),
        source: unescape(r.next().unwrap_or("")),
        super_options: r.next().unwrap_or("").to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |k: usize| u32::from(b[i + k] - b'0');
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The id of the mount that `path` reaches (the one on top at a mount
/// point), as mountinfo numbers it.
pub fn mount_id_of(path: &str) -> Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags};
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::MNT_ID,
    )
    .with_context(|| format!("statx {path}"))?;
    if StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::MNT_ID) {
        Ok(st.stx_mnt_id)
    } else {
        Err(Error::of(
            Kind::Unimplemented,
            "statx: no mount id from this kernel (Linux 5.8 or later is needed)",
        ))
    }
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

    #[test]
    fn mountinfo_lines() {
        let t = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n\
             37 36 0:5 / /x rw - tmpfs none rw\n\
             garbage\n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].id, t[0].parent), (36, 35));
        assert_eq!(t[0].root, "/mnt1");
        assert_eq!(t[0].mount_point, "/mnt 2");
        assert_eq!(t[0].optional, ["master:1", "shared:7"]);
        assert!(t[0].is_shared());
        assert_eq!(t[0].fs_type, "ext3");
        assert_eq!(t[0].super_options, "rw,errors=continue");
        assert!(t[1].optional.is_empty() && !t[1].is_shared());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain\\"), "/plain\\");
    }

    #[test]
    fn recursive_words_become_attributes() {
        let o = parse_options(&words(&["rbind", "ro", "rro", "rnosuid", "nosymfollow"]));
        assert_eq!(o.flags, MS_BIND | MS_REC | MS_RDONLY);
        assert_eq!(o.recursive.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(o.recursive.clear, 0);
        assert_eq!(o.single.set, MOUNT_ATTR_NOSYMFOLLOW);
        assert!(o.unsupported.is_empty() && o.data.is_empty());
        // The last word wins; an access-time mode replaces the whole field.
        let o = parse_options(&words(&["rro", "rrw", "rnoatime", "rstrictatime"]));
        assert_eq!(o.recursive.set, MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.recursive.clear, MOUNT_ATTR_RDONLY | MOUNT_ATTR__ATIME);
        let o = parse_options(&words(&["rnoatime", "ratime"]));
        assert_eq!(o.recursive.set, MOUNT_ATTR_RELATIME);
        assert_eq!(o.recursive.clear, MOUNT_ATTR__ATIME);
        let o = parse_options(&words(&["ridmap", "tmpcopyup"]));
        assert_eq!(o.unsupported, words(&["ridmap", "tmpcopyup"]));
    }
}
