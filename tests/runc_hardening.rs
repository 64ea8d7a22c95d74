//! Hardening: a container cannot overwrite the runtime's binary through
//! /proc/PID/exe (CVE-2019-5736); mount destinations and device paths are
//! resolved inside the rootfs (symlinks, `..`); configs the kernel cannot
//! honour are refused with a clear error.
//!
//! The overwrite tests run a private copy of the runtime binary (in the
//! test dir), so a runtime that fails them cannot destroy the real build.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/bin/runc cargo test --test runc_hardening`.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn sha256(p: &Path) -> Vec<u8> {
    let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    ring::digest::digest(&ring::digest::SHA256, &data)
        .as_ref()
        .to_vec()
}

/// The attacker: a container in the host's pid namespace (so it sees every
/// process) that watches for processes running the runtime's binary,
/// however /proc names it (`$VICTIM`, the copy's path; `/memfd:...` for a
/// sealed copy; `/` for a detached read-only mount of it): any whose
/// image is `$VICTIM_SIZE` bytes. It logs "found" for each, opens their /proc/PID/exe read-only as soon as it may (it may only
/// once their capabilities are no more than its own: when they are about
/// to become a container process), and then keeps trying to write
/// through /proc/self/fd/N, which succeeds once nobody executes the file
/// any more (ETXTBSY before). It logs to /dev/shm/log; "WROTE" means the
/// binary was overwritten. Told to stop, it sleeps so the log stays
/// readable.
const ATTACKER: &str = r#"
: > /dev/shm/log
seen=" "
n=0
while [ ! -e /dev/shm/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    case "$seen" in *" $p "*) continue ;; esac
    # readlink, like open, works only once the target's capabilities are
    # a subset of ours.
    exe=$(readlink $d/exe 2>/dev/null) || continue
    if [ "$exe" != "$VICTIM" ]; then
      size=$(stat -L -c %s $d/exe 2>/dev/null) || continue
      [ "$size" = "$VICTIM_SIZE" ] || continue
    fi
    seen="$seen$p "
    n=$((n+1))
    echo "found $exe of $p" >> /dev/shm/log
    (
      exec 3< $d/exe 2>/dev/null || exit 0
      echo "opened $exe of $p" >> /dev/shm/log
      i=0
      while [ $i -lt 300 ]; do
        if echo pwned 2>/dev/null >> /proc/self/fd/3; then
          echo "WROTE $exe of $p" >> /dev/shm/log
          exit 0
        fi
        i=$((i+1))
        sleep 0.01
      done
    ) &
  done
done
echo "candidates=$n" >> /dev/shm/log
wait
echo done >> /dev/shm/log
exec sleep 1000
"#;

struct Attack {
    id: String,
    pid: i32,
}

/// Start the attacker container with the runtime `rt` (the copy).
fn start_attacker(ctx: &Ctx, rt: &Path, victim: &Path) -> Attack {
    let mut c = ctx.config();
    let size = fs::metadata(victim).unwrap().len();
    c.remove_namespace("pid")
        .env(&format!("VICTIM={}", victim.display()))
        .env(&format!("VICTIM_SIZE={size}"))
        .sh(ATTACKER);
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt_at(rt, Some(&ctx.root), &["run", "-d", "--bundle", &b, &id])
        .ok();
    let pid = ctx.pid_of(&id);
    ctx.track_pid(pid);
    Attack { id, pid }
}

impl Attack {
    fn log(&self) -> String {
        fs::read_to_string(format!("/proc/{}/root/dev/shm/log", self.pid)).unwrap_or_default()
    }

    /// Tell the attacker to stop, let its writers finish, and return its
    /// log; the container is deleted.
    fn finish(&self, ctx: &Ctx) -> String {
        let _ = fs::write(format!("/proc/{}/root/dev/shm/stop", self.pid), "");
        wait_until(Duration::from_secs(8), || self.log().contains("done"));
        let log = self.log();
        ctx.rt(&["delete", "--force", &self.id]).ok();
        ctx.assert_gone(&self.id);
        log
    }
}

/// `runc exec` re-executes itself from a sealed memfd before it enters the
/// container: neither the exec'd processes nor the runtime can be used to
/// rewrite the binary.
#[test]
fn exec_cannot_overwrite_the_runtime_binary() {
    let ctx = Ctx::new("cve5736exec");
    let (rt, copy) = ctx.runtime_copy();
    let before = sha256(&copy);
    let attack = start_attacker(&ctx, &rt, &copy);
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..8 {
        let out = ctx.rt_at(
            &rt,
            Some(&ctx.root),
            &[
                "exec",
                &attack.id,
                "sh",
                "-c",
                "sleep 0.1; echo $0",
                &format!("x{i}"),
            ],
        );
        out.ok();
        assert_eq!(out.stdout, format!("x{i}\n"));
    }
    // A foreground exec that lasts: the waiting runtime process runs from a
    // read-only view of the binary or a sealed copy (skiff checked alone;
    // runc 1.1.5 clones itself only for `runc init`).
    let bg = ctx.spawn_at(&rt, Some(&ctx.root), &["exec", &attack.id, "sleep", "1"]);
    let exe_link = format!("/proc/{}/exe", bg.pid());
    let mut exe = String::new();
    wait_until(T, || {
        exe = fs::read_link(&exe_link)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // (runc 1.1.5's `exec` process runs from its file: no need to wait)
        exe.starts_with("/memfd:") || exe == "/" || (!is_skiff() && !exe.is_empty())
    });
    // skiff's read-only view is a detached bind mount of the binary, which
    // /proc shows as "/" and statvfs as a read-only mount.
    let on_readonly_mount = rustix::fs::statvfs(exe_link.as_str())
        .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    // What the attack would do, done as root on the host: open the image
    // and write to it. The seals forbid it.
    let seals = fs::File::open(&exe_link).ok().map(|f| {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl(F_GET_SEALS) on a file we hold open.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) }
    });
    // Only ever at a memfd: never at a file.
    let wrote = if exe.starts_with("/memfd:") {
        fs::OpenOptions::new()
            .append(true)
            .open(&exe_link)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"pwned"))
    } else {
        Err(std::io::Error::other("not a memfd"))
    };
    bg.wait(T).ok();
    if is_skiff() && !on_readonly_mount {
        assert!(
            exe.starts_with("/memfd:skiff-sealed"),
            "the runtime of `exec` runs from a read-only mount or a sealed memfd: exe -> {exe}"
        );
        let want = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        assert_eq!(
            seals.map(|s| s & want),
            Some(want),
            "seals of the runtime's image: {seals:?}"
        );
        assert!(wrote.is_err(), "writing to the sealed image must fail");
    }
    if is_skiff() {
        runtime_image_in_container(&ctx, &rt, &attack);
    }
    std::thread::sleep(Duration::from_millis(500));
    let log = attack.finish(&ctx);
    eprintln!("attacker log:\n{log}");
    assert!(!log.contains("WROTE"), "the attacker wrote: {log}");
    assert_eq!(sha256(&copy), before, "the runtime binary was modified");
}

/// The parent pid of `pid`, from /proc/PID/stat (after the command name,
/// which may hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// A process below `ancestor` whose arguments include `arg`.
fn descendant_with_arg(ancestor: i32, arg: &str) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if !cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            return None;
        }
        let mut p = pid;
        for _ in 0..8 {
            p = parent_of(p)?;
            if p == ancestor {
                return Some(pid);
            }
        }
        None
    })
}

/// The CVE's own trick: a program of the container that is the runtime's
/// `/proc/self/exe`, so `exec` runs the runtime's image inside the
/// container. Here it is skiff's `skiff-fetch ls` on a store whose
/// index.json is a FIFO, so it stays until released: the attacker finds
/// it, opens its image, and tries to write it once it has exited.
fn runtime_image_in_container(ctx: &Ctx, rt: &Path, attack: &Attack) {
    let prepare = "mkdir -p /dev/shm/st && mkfifo /dev/shm/st/index.json && \
                   ln -sf /proc/self/exe /dev/shm/skiff-fetch";
    ctx.rt_at(
        rt,
        Some(&ctx.root),
        &["exec", &attack.id, "sh", "-c", prepare],
    )
    .ok();
    let held = ctx.spawn_at(
        rt,
        Some(&ctx.root),
        &[
            "exec",
            &attack.id,
            "/dev/shm/skiff-fetch",
            "ls",
            "--store",
            "/dev/shm/st",
        ],
    );
    // That process, by its host pid (the attacker shares the host's pid
    // namespace): an "opened" line left by an earlier exec does not count.
    let mut target = None;
    wait_until(T, || {
        target = descendant_with_arg(held.pid(), "/dev/shm/st");
        target.is_some()
    });
    let target = target
        .unwrap_or_else(|| panic!("the held exec's process did not show up: {}", attack.log()));
    let opened = wait_until(T, || {
        attack
            .log()
            .lines()
            .any(|l| l.starts_with("opened ") && l.ends_with(&format!(" of {target}")))
    });
    // Release it: a writer for the FIFO (an empty index).
    ctx.rt_at(
        rt,
        Some(&ctx.root),
        &[
            "exec",
            &attack.id,
            "sh",
            "-c",
            "echo '{}' > /dev/shm/st/index.json",
        ],
    )
    .ok();
    held.wait(T).ok();
    assert!(
        opened,
        "the attacker did not open the runtime image of pid {target} in the container: {}",
        attack.log()
    );
}

/// A memfd that merely has the sealed copy's name is no protection: the
/// runtime started from an unsealed memfd called `skiff-sealed` must still
/// re-execute itself from a read-only view (it checks the seals and mount
/// flags of the file it runs, not its name).
#[test]
fn an_unsealed_memfd_named_like_the_sealed_copy_is_not_trusted() {
    if !applies(is_skiff(), "skiff's own re-exec") {
        return;
    }
    let ctx = Ctx::new("fakeseal");
    let mut c = ctx.config();
    c.sh("sleep 30");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.rt(&["start", &id]).ok();
    // The impostor: a writable memfd, reached through a `runc` symlink so
    // that skiff dispatches on the name.
    let flags = rustix::fs::MemfdFlags::CLOEXEC;
    let memfd = rustix::fs::memfd_create("skiff-sealed", flags).unwrap();
    let mut f = fs::File::from(memfd);
    std::io::copy(&mut fs::File::open(&runtime().path).unwrap(), &mut f).unwrap();
    let link = ctx.path("fake/runc");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    {
        use std::os::fd::AsRawFd;
        let target = format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd());
        symlink(target, &link).unwrap();
    }
    let bg = ctx.spawn_at(&link, Some(&ctx.root), &["exec", &id, "sleep", "2"]);
    let exe_link = format!("/proc/{}/exe", bg.pid());
    let mut seen = PathBuf::new();
    let protected = || {
        if let Ok(p) = fs::read_link(&exe_link) {
            seen = p;
        }
        let Ok(exe) = fs::File::open(&exe_link) else {
            return false;
        };
        let sealed = rustix::fs::fcntl_get_seals(&exe)
            .is_ok_and(|s| s.contains(rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::GROW));
        sealed
            || rustix::fs::fstatvfs(&exe)
                .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    };
    let ok = wait_until(T, protected);
    let exe = seen;
    bg.wait(T).ok();
    drop(f);
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    assert!(
        ok,
        "the runtime kept running from a writable image: exe -> {}",
        exe.display()
    );
}

/// The same attack on `create`: the container's init waits for `start`
/// with its capabilities already dropped. If its image is the runtime's
/// binary itself, a process that sees it (here: one in the host's pid
/// namespace; likewise a container sharing the new one's pid namespace, or
/// a `runc exec` into the created container) can open its /proc/PID/exe
/// and write the binary once `start` has made the init exec.
#[test]
fn create_cannot_overwrite_the_runtime_binary() {
    let ctx = Ctx::new("cve5736create");
    let (rt, copy) = ctx.runtime_copy();
    let before = sha256(&copy);
    let attack = start_attacker(&ctx, &rt, &copy);
    // A victim container in its own pid namespace, created and started
    // (a moment apart, as a shim or a user would) with the same runtime.
    let mut c = ctx.config();
    c.sh("sleep 2");
    ctx.write_config(&c);
    let b = ctx.bundle_str();
    for _ in 0..3 {
        let id = ctx.id();
        ctx.rt_at(&rt, Some(&ctx.root), &["create", "--bundle", &b, &id])
            .ok();
        ctx.track_pid(ctx.pid_of(&id));
        std::thread::sleep(Duration::from_millis(600));
        ctx.rt_at(&rt, Some(&ctx.root), &["start", &id]).ok();
        std::thread::sleep(Duration::from_millis(600));
        ctx.rt(&["delete", "--force", &id]).ok();
        ctx.assert_gone(&id);
        if sha256(&copy) != before {
            break;
        }
    }
    let log = attack.finish(&ctx);
    eprintln!("attacker log:\n{log}");
    assert!(
        log.contains("opened"),
        "the attacker must have found and opened a created init's image: {log}"
    );
    assert!(!log.contains("WROTE"), "the attacker wrote: {log}");
    assert_eq!(sha256(&copy), before, "the runtime binary was modified");
}

/// A direct form of the attack on `create`: `runc exec` into a created
/// (not yet started) container, open /proc/1/exe, start, write.
#[test]
fn exec_into_created_container_cannot_overwrite_runtime() {
    let ctx = Ctx::new("cve5736created");
    let (rt, copy) = ctx.runtime_copy();
    let before = sha256(&copy);
    let mut c = ctx.config();
    // Long enough to outlive the writer's attempts: the log is read
    // through the init's root.
    c.sh("sleep 30");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt_at(&rt, Some(&ctx.root), &["create", "--bundle", &b, &id])
        .ok();
    let init = ctx.pid_of(&id);
    ctx.track_pid(init);
    let out = ctx.rt_at(
        &rt,
        Some(&ctx.root),
        &[
            "exec",
            "-d",
            &id,
            "sh",
            "-c",
            "readlink /proc/1/exe > /dev/shm/log; exec 3< /proc/1/exe && echo opened >> /dev/shm/log; \
             i=0; while [ $i -lt 300 ]; do \
               if echo pwned 2>/dev/null >> /proc/self/fd/3; then echo WROTE >> /dev/shm/log; break; fi; \
               i=$((i+1)); sleep 0.01; done; echo end >> /dev/shm/log",
        ],
    );
    // skiff allows exec into a created container (as current runc does):
    // a refusal would make this test see nothing.
    assert!(
        out.status.success() || !is_skiff(),
        "exec into a created container: {}",
        out.stderr
    );
    if !applies(
        out.status.success(),
        "this runtime refuses exec into a created container (runc 1.1.5)",
    ) {
        ctx.rt(&["delete", "--force", &id]).ok();
        ctx.assert_gone(&id);
        assert_eq!(sha256(&copy), before);
        return;
    }
    std::thread::sleep(Duration::from_millis(300));
    ctx.rt_at(&rt, Some(&ctx.root), &["start", &id]).ok();
    let log_path = format!("/proc/{init}/root/dev/shm/log");
    wait_until(Duration::from_secs(20), || {
        fs::read_to_string(&log_path).is_ok_and(|l| l.contains("end"))
    });
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
    assert!(
        log.contains("opened"),
        "the attacker must have opened the init's image: {log}"
    );
    assert!(!log.contains("WROTE"), "the attacker wrote: {log}");
    assert_eq!(sha256(&copy), before, "the runtime binary was modified");
}

/// A host directory (in the test dir) and the same path inside the rootfs:
/// an absolute symlink in the rootfs pointing at it must resolve to the
/// rootfs's copy.
fn twin_dirs(ctx: &Ctx, name: &str) -> (PathBuf, PathBuf) {
    let host = ctx.path(name);
    fs::create_dir_all(&host).unwrap();
    let inside = ctx.rootfs().join(host.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    (host, inside)
}

fn dir_is_empty(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// The rootfs's /etc is an absolute symlink (as `etc -> /etc` in the
/// brief's attack, but pointing at a host dir of this test, so that a
/// runtime that follows it on the host does no harm): bind mounts onto
/// /etc/x must land in the rootfs.
#[test]
fn bind_mount_through_absolute_symlink_lands_in_rootfs() {
    let ctx = Ctx::new("symlinkbind");
    let (host, inside) = twin_dirs(&ctx, "hostetc");
    // rootfs/etc -> /<test dir>/hostetc: on the host that is a real dir of
    // the test; inside the rootfs it is rootfs/<test dir>/hostetc, which
    // gets the rootfs's /etc files.
    fs::remove_dir(&inside).unwrap();
    fs::rename(ctx.rootfs().join("etc"), &inside).unwrap();
    symlink(&host, ctx.rootfs().join("etc")).unwrap();
    let src = ctx.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("file"), "from the host\n").unwrap();
    let srcfile = ctx.path("srcfile");
    fs::write(&srcfile, "a file\n").unwrap();
    let mut c = ctx.config();
    c.mount("/etc/x", "bind", src.to_str().unwrap(), &["bind", "ro"])
        .mount("/etc/f", "bind", srcfile.to_str().unwrap(), &["bind", "ro"])
        .sh(&format!(
            "cat /etc/x/file {}/x/file /etc/f; id -un",
            host.display()
        ));
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "from the host\nfrom the host\na file\nroot\n");
    assert!(
        dir_is_empty(&host),
        "the host side of the symlink was touched: {:?}",
        fs::read_dir(&host)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
    assert!(inside.join("x").is_dir(), "mount point made in the rootfs");
    assert!(inside.join("f").is_file(), "mount point made in the rootfs");
}

#[test]
fn dotdot_in_mount_destination_stays_in_rootfs() {
    let ctx = Ctx::new("dotdot");
    let (host, inside) = twin_dirs(&ctx, "up");
    let rel = host.strip_prefix("/").unwrap().display().to_string();
    let dest = format!("/../../../../../../{rel}/m");
    let mut c = ctx.config();
    c.mount(&dest, "tmpfs", "tmpfs", &["size=1m"]).sh(&format!(
        "grep -c ' /{rel}/m ' /proc/self/mountinfo; echo hi > /{rel}/m/f && cat /{rel}/m/f"
    ));
    let out = ctx.run_config(&c);
    out.ok();
    assert_eq!(out.stdout, "1\nhi\n", "stderr: {}", out.stderr);
    assert!(dir_is_empty(&host), "mount point made on the host");
    assert!(inside.join("m").is_dir(), "mount point made in the rootfs");
}

#[test]
fn device_path_through_symlink_stays_in_rootfs() {
    let ctx = Ctx::new("devsymlink");
    let (host, inside) = twin_dirs(&ctx, "hostdev");
    symlink(&host, ctx.rootfs().join("devlink")).unwrap();
    let mut c = ctx.config();
    c.push(
        "linux.devices",
        js(r#"{"path":"/devlink/mynull","type":"c","major":1,"minor":3,"fileMode":438,"uid":0,"gid":0}"#),
    )
    .push(
        "linux.resources.devices",
        js(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#),
    )
    .writable_rootfs()
    .sh("echo x > /devlink/mynull && echo wrote-null; ls -l /devlink/mynull");
    let out = ctx.run_config(&c);
    // Refusing is safe as well; creating the node on the host is not.
    if out.status.success() {
        assert!(out.stdout.contains("wrote-null"), "{}", out.stdout);
        assert!(
            fs::metadata(inside.join("mynull"))
                .map(|m| m.file_type().is_char_device())
                .unwrap_or(false)
                || !inside.join("mynull").exists(),
            "the node is in the rootfs (or in a mount over it)"
        );
    } else {
        out.fails();
    }
    assert!(
        dir_is_empty(&host),
        "device node made on the host through a symlink: {:?}",
        fs::read_dir(&host)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    );
}

#[test]
fn unknown_mount_option_is_refused_clearly() {
    let ctx = Ctx::new("badmountopt");
    let mut c = ctx.config();
    c.mount("/mnt", "tmpfs", "tmpfs", &["size=1m", "no-such-option=1"])
        .sh("echo ran");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    assert!(!out.stdout.contains("ran"));
    if is_skiff() {
        out.fails();
    }
    assert!(
        out.stderr.contains("/mnt"),
        "the error names the mount: {}",
        out.stderr
    );
    ctx.assert_gone(&id);
}

#[test]
fn host_sysctl_is_refused_with_its_key() {
    let ctx = Ctx::new("badsysctl");
    let before = fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let mut c = ctx.config();
    c.set("linux.sysctl", js(r#"{"vm.swappiness":"1"}"#))
        .sh("echo ran");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    if is_skiff() {
        out.fails();
    }
    assert!(
        out.stderr.contains("vm.swappiness"),
        "the error names the key: {}",
        out.stderr
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
        before,
        "the host's sysctl is untouched"
    );
    // A net.* sysctl without a network namespace: refused as well.
    let mut c = ctx.config();
    c.remove_namespace("network")
        .set("linux.sysctl", js(r#"{"net.ipv4.ip_forward":"1"}"#))
        .sh("echo ran");
    ctx.write_config(&c);
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains("net.ipv4.ip_forward"),
        "the error names the key: {}",
        out.stderr
    );
    ctx.assert_gone(&id);
}

/// Values the kernel refuses (a CPU that is not there, a huge page size
/// that does not exist) fail `run` with an error naming the file, and
/// leave no cgroup behind (the harness checks).
#[test]
fn impossible_resources_are_refused_clearly() {
    let ctx = Ctx::new("badres");
    let mut c = ctx.config();
    c.set("linux.resources.cpu", js(r#"{"cpus":"999"}"#))
        .sh("echo ran");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    assert!(!out.stdout.contains("ran"));
    if is_skiff() {
        out.fails();
    }
    assert!(
        out.stderr.contains("cpuset.cpus"),
        "the error names the file: {}",
        out.stderr
    );
    ctx.assert_gone(&id);

    let hugetlb =
        cgroup_mount("hugetlb").is_some_and(|m| m.join("hugetlb.2MB.limit_in_bytes").exists());
    if !applies(
        hugetlb,
        "hugetlb is not a v1 hierarchy here: page sizes not checked",
    ) {
        return;
    }
    let mut c = ctx.config();
    c.set(
        "linux.resources.hugepageLimits",
        js(r#"[{"pageSize":"3MB","limit":6291456}]"#),
    )
    .sh("echo ran");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    if is_skiff() {
        out.fails();
    }
    assert!(
        out.stderr.contains("3MB"),
        "the error names the page size: {}",
        out.stderr
    );
    ctx.assert_gone(&id);
}

/// Limits no kernel takes, or that would silently become others (a
/// negative limit read as none, memory+swap below memory clamped), are
/// refused before anything runs, naming the field; `update` too.
#[test]
fn impossible_limits_are_refused_naming_the_field() {
    if !applies(is_skiff(), "skiff's messages") {
        return;
    }
    let ctx = Ctx::new("badlimits");
    let b = ctx.bundle_str();
    for (resources, field) in [
        (
            r#"{"memory":{"limit":268435456,"swap":134217728}}"#,
            "linux.resources.memory.swap",
        ),
        (r#"{"memory":{"limit":-5}}"#, "linux.resources.memory.limit"),
        (
            r#"{"cpu":{"quota":500,"period":100000}}"#,
            "linux.resources.cpu.quota",
        ),
        (
            r#"{"cpu":{"quota":50000,"period":10}}"#,
            "linux.resources.cpu.period",
        ),
        (r#"{"cpu":{"quota":-20}}"#, "linux.resources.cpu.quota"),
    ] {
        let mut c = ctx.config();
        c.set("linux.resources", js(resources)).sh("echo ran");
        ctx.write_config(&c);
        let id = ctx.id();
        let out = ctx.rt(&["run", "--bundle", &b, &id]);
        assert_ne!(out.code(), Some(0), "{resources}");
        assert!(!out.stdout.contains("ran"), "{resources}");
        assert!(
            out.stderr.contains(field),
            "{resources}: the error names {field}: {}",
            out.stderr
        );
        ctx.assert_gone(&id);
    }
    // `update` of a running container: refused, the limits unchanged.
    let mut c = ctx.config();
    c.set("linux.resources.memory", js(r#"{"limit":67108864}"#))
        .sh("sleep 30");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    ctx.rt(&["start", &id]).ok();
    let out = ctx.rt(&["update", "--memory", "256m", "--memory-swap", "128m", &id]);
    assert_ne!(out.code(), Some(0));
    assert!(out.stderr.contains("memory.swap"), "{}", out.stderr);
    let pid = ctx.pid_of(&id);
    if let Some(dir) = cgroup_mount("memory")
        .and_then(|m| proc_cgroup(pid, "memory").map(|p| m.join(p.trim_start_matches('/'))))
    {
        assert_eq!(
            fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864",
            "the refused update changed nothing"
        );
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// config.json and state.json are read up to a bound: a huge one is an
/// error naming the file, not an allocation of its size.
#[test]
fn oversized_config_and_state_are_refused_naming_the_file() {
    if !applies(is_skiff(), "skiff's limits") {
        return;
    }
    let ctx = Ctx::new("bigfiles");
    let b = ctx.bundle_str();
    let config = ctx.bundle.join("config.json");
    let mut text = fs::read_to_string(&config).unwrap();
    // Valid JSON, 17 MiB: whitespace after the object.
    text.push_str(&" ".repeat(17 << 20));
    fs::write(&config, &text).unwrap();
    let id = ctx.id();
    let out = ctx.rt(&["run", "--bundle", &b, &id]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains("config.json") && out.stderr.contains("larger than"),
        "{}",
        out.stderr
    );
    ctx.assert_gone(&id);
    // A state.json grown past its bound (the config's, plus 1 MiB).
    let mut c = ctx.config();
    c.sh("sleep 30");
    ctx.write_config(&c);
    let id = ctx.id();
    ctx.create(&id).ok();
    let state = ctx.root.join(&id).join("state.json");
    let saved = fs::read_to_string(&state).unwrap();
    fs::write(&state, saved.clone() + &" ".repeat(18 << 20)).unwrap();
    let out = ctx.rt(&["state", &id]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains("state.json") && out.stderr.contains("larger than"),
        "{}",
        out.stderr
    );
    fs::write(&state, saved).unwrap();
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// state.json copies the config's annotations: a config within its own
/// bound with a 2 MiB annotation runs, and deletes, leaving nothing (it
/// once exited 1 with a state it could not read and a live init).
#[test]
fn a_large_annotation_runs_and_deletes() {
    let ctx = Ctx::new("bigannot");
    let mut c = ctx.config();
    c.set("annotations", js("{}"))
        .set("annotations.big", jstr(&"a".repeat(2 << 20)))
        .sh("sleep 30");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    ctx.rt(&["run", "-d", "--bundle", &b, &id]).ok();
    let state = ctx.state(&id);
    assert_eq!(
        as_str(jget(&state, "annotations.big")).map(str::len),
        Some(2 << 20),
        "the state shows the annotation"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
    ctx.assert_gone(&id);
}

/// `update --resources FILE|-` reads at most a config's bound: a larger
/// file (valid JSON, padded) is an error naming it, not read whole.
#[test]
fn update_resources_are_read_up_to_a_bound() {
    if !applies(is_skiff(), "skiff's limits") {
        return;
    }
    let ctx = Ctx::new("bigres");
    let file = ctx.path("resources.json");
    fs::write(&file, format!("{{}}{}", " ".repeat(17 << 20))).unwrap();
    let f = file.to_string_lossy().into_owned();
    let out = ctx.rt(&["update", "--resources", &f, "no-such-container"]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains(&f) && out.stderr.contains("larger than"),
        "{}",
        out.stderr
    );
    let out = ctx.rt_stdin(&file, &["update", "--resources", "-", "no-such-container"]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains("stdin") && out.stderr.contains("larger than"),
        "{}",
        out.stderr
    );
}
