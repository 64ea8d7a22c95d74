//! The cgroup v2 device filter on the real kernel: attach it to a fresh
//! cgroup in the v2 hierarchy, put a child in, and see which devices it may
//! open. Runs wherever a cgroup2 hierarchy is mounted (this host: hybrid,
//! at /sys/fs/cgroup/unified).

#[path = "common/require.rs"]
mod require;

use skiff::cgroups::attach_device_filter;
use skiff::oci::resources::DeviceRule;
use std::path::{Path, PathBuf};

fn v2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}

struct TestCgroup(PathBuf);
impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..200 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Fork a child that joins `cg` and opens `dev` for reading: its errno (0 = opened).
fn open_in_cgroup(cg: &Path, dev: &str) -> i32 {
    let procs =
        std::ffi::CString::new(cg.join("cgroup.procs").to_string_lossy().as_bytes()).unwrap();
    let path = std::ffi::CString::new(dev).unwrap();
    // SAFETY: the test binary's other threads hold no lock the child needs:
    // the child only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: plain syscalls on NUL-terminated paths in the child.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1) != 1 {
                libc::_exit(100);
            }
            libc::close(fd);
            let d = libc::open(path.as_ptr(), libc::O_RDONLY);
            let code = if d >= 0 { 0 } else { *libc::__errno_location() };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    libc::WEXITSTATUS(status)
}

#[test]
fn v2_device_filter_allows_only_the_listed_devices() {
    if !require::applies(rustix::process::geteuid().as_raw() == 0, "needs root") {
        return;
    }
    let root = v2_root();
    if !require::applies(
        root.is_some(),
        "no cgroup2 hierarchy is mounted on this host",
    ) {
        return;
    }
    let root = root.unwrap();
    let cg = TestCgroup(root.join(format!("skiff-devfilter-{}", std::process::id())));
    std::fs::create_dir(&cg.0).expect("create test cgroup");
    let rules = vec![
        DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        },
        DeviceRule {
            allow: true,
            kind: 'c',
            major: Some(1),
            minor: Some(3),
            access: "rwm".into(),
        },
        DeviceRule {
            allow: true,
            kind: 'c',
            major: Some(1),
            minor: Some(5),
            access: "w".into(),
        },
    ];
    attach_device_filter(&cg.0, &rules).expect("attach");
    assert_eq!(
        open_in_cgroup(&cg.0, "/dev/null"),
        0,
        "/dev/null is allowed"
    );
    assert_eq!(
        open_in_cgroup(&cg.0, "/dev/zero"),
        libc::EPERM,
        "/dev/zero allows only writes"
    );
    assert_eq!(
        open_in_cgroup(&cg.0, "/dev/urandom"),
        libc::EPERM,
        "/dev/urandom is not listed"
    );
}
