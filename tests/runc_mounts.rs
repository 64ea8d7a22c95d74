//! Mount configs as other tools write them and as runc runs them: no
//! mount namespace, every rootfsPropagation, recursive read-only binds, a
//! read-only /dev with mounts below it, bind sources only the host's root
//! can reach from a user namespace, procfs over a symlink, and --no-pivot;
//! and what must stay on the container's side of a shared mount (binds of
//! it, a rootfs on it), host read-only binds that stay read-only, and the
//! no-mount-namespace cleanup that takes only its own bind.
//!
//! Run against Debian's runc: `SKIFF_TEST_RUNTIME=/usr/sbin/runc cargo test --test runc_mounts`.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USERNS_MAP: &str = r#"[{"containerID":0,"hostID":100000,"size":65536}]"#;

fn with_userns(c: &mut Config) -> &mut Config {
    c.add_namespace("user")
        .set("linux.uidMappings", js(USERNS_MAP))
        .set("linux.gidMappings", js(USERNS_MAP))
}

/// The fields of the /proc/self/mountinfo line of mount point `mp` in
/// `text` (the last one: the mount on top).
fn mountinfo_line<'a>(text: &'a str, mp: &str) -> Option<&'a str> {
    text.lines().rfind(|l| l.split(' ').nth(4) == Some(mp))
}

/// The per-mount options (ro/rw, nosuid, ...) of mount point `mp`.
fn mount_options(text: &str, mp: &str) -> Vec<String> {
    mountinfo_line(text, mp)
        .and_then(|l| l.split(' ').nth(5))
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// A tmpfs the test mounts on the host, unmounted on drop (declared after
/// the `Ctx`, so it goes before the leftover check).
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=64m",
                "skiff-test",
                at.to_str().unwrap(),
            ])
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", at.display());
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Detach whatever is mounted on `path` in our namespace (runc leaves a
/// shared-namespace container's mounts behind).
fn detach_all(path: &Path) {
    while mounts_under(path).iter().any(|m| Path::new(m) == path) {
        let st = std::process::Command::new("umount")
            .arg("-l")
            .arg(path)
            .status()
            .expect("run umount");
        if !st.success() {
            break;
        }
    }
}

#[test]
fn no_mount_namespace_shares_the_runtime_namespace() {
    let ctx = Ctx::new("nomntns");
    fs::write(ctx.rootfs().join("in-rootfs"), "yes\n").unwrap();
    let host_ns = fs::read_link("/proc/self/ns/mnt").unwrap();
    let mut c = ctx.config();
    c.remove_namespace("mount")
        .sh("readlink /proc/self/ns/mnt; cat /in-rootfs; echo data > /dev/null && echo devnull");

    // Masked and read-only paths would be made on the host's own view:
    // refused, as runc refuses them.
    let out = ctx.run_config(&c);
    out.fails();
    assert!(
        out.stderr
            .contains("unable to restrict sys entries without a private"),
        "{}",
        out.stderr
    );
    assert!(mounts_under(&ctx.dir).is_empty());

    c.remove("linux.maskedPaths").remove("linux.readonlyPaths");
    let out = ctx.run_config(&c);
    if !is_skiff() {
        // RUNC DIFFERS: runc leaves the container's mounts on the host.
        detach_all(&ctx.rootfs());
    }
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [host_ns.to_str().unwrap(), "yes", "devnull"],
        "stderr: {}",
        out.stderr
    );
    // The container's mounts went with it.
    assert_eq!(mounts_under(&ctx.dir), Vec::<String>::new());

    // A create that fails after the mounts were made takes them away too.
    c.set("hooks", js(r#"{"createRuntime":[{"path":"/bin/false"}]}"#));
    let out = ctx.run_config(&c);
    out.fails();
    if !is_skiff() {
        // RUNC DIFFERS: runc leaves them behind.
        detach_all(&ctx.rootfs());
    }
    assert_eq!(mounts_under(&ctx.dir), Vec::<String>::new());
}

#[test]
fn every_rootfs_propagation_value_runs() {
    let ctx = Ctx::new("rootprop");
    for prop in [
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ] {
        if prop.ends_with("unbindable") && !is_skiff() {
            // RUNC DIFFERS: runc 1.1 fails with `mount rootfs ...: invalid
            // argument` (it makes the host side unbindable before its bind;
            // `unbindable` alone fails when the rootfs's mount is /).
            continue;
        }
        let mut c = ctx.config();
        c.set("linux.rootfsPropagation", jstr(prop))
            .sh("cat /proc/self/mountinfo");
        let out = ctx.run_config(&c);
        out.ok();
        let root = mountinfo_line(&out.stdout, "/")
            .unwrap_or_else(|| panic!("{prop}: no / in {}", out.stdout));
        // The optional fields sit between the options and the "-".
        let optional: Vec<&str> = root.split(' ').skip(6).take_while(|f| *f != "-").collect();
        if prop.ends_with("shared") && !is_skiff() {
            // RUNC DIFFERS: runc 1.1 makes the host side's / shared before
            // it binds the rootfs from a parent it made private; the
            // container's root does not end up shared as the spec says.
            continue;
        }
        let want = if prop.ends_with("shared") {
            Some("shared:")
        } else if prop.ends_with("unbindable") {
            Some("unbindable")
        } else {
            None
        };
        match want {
            Some(w) => assert!(
                optional.iter().any(|f| f.starts_with(w)),
                "{prop}: root mount {root}"
            ),
            None => assert!(
                !optional
                    .iter()
                    .any(|f| f.starts_with("shared:") || *f == "unbindable"),
                "{prop}: root mount {root}"
            ),
        }
    }
}

#[test]
fn recursive_read_only_binds() {
    let ctx = Ctx::new("rro");
    let src = ctx.path("src");
    fs::create_dir_all(&src).unwrap();
    let _sub = HostTmpfs::mount(&src.join("sub"));
    let script = "touch /mnt/top 2>/dev/null && echo top-writable; \
                  touch /mnt/sub/x 2>/dev/null && echo sub-writable; \
                  grep -q ' /mnt/sub ' /proc/self/mountinfo && echo sub-mounted; true";
    for (options, want) in [
        (&["rbind", "rro"][..], "sub-mounted\n"),
        (&["rbind", "ro", "rro"][..], "sub-mounted\n"),
        (&["bind", "rro"][..], ""),
        // The control: `ro` alone leaves the mounts below writable.
        (&["rbind", "ro"][..], "sub-writable\nsub-mounted\n"),
    ] {
        let mut c = ctx.config();
        c.mount("/mnt", "bind", src.to_str().unwrap(), options)
            .sh(script);
        let out = ctx.run_config(&c);
        out.ok();
        assert_eq!(out.stdout, want, "{options:?}: stderr: {}", out.stderr);
        if options.contains(&"rro") && options.contains(&"rbind") {
            assert!(
                out.stdout.contains("sub-mounted"),
                "{options:?}: {}",
                out.stdout
            );
        }
    }
    // Nothing was written on the host either.
    assert!(!src.join("top").exists());
    assert_eq!(fs::read_dir(src.join("sub")).unwrap().count(), 1);
}

/// The runtime, run under a seccomp filter that answers ENOSYS to
/// mount_setattr, as a kernel before 5.12 would.
#[test]
fn recursive_read_only_without_mount_setattr_is_a_clear_error() {
    use std::os::unix::process::CommandExt;
    let ctx = Ctx::new("rronosys");
    let v = skiff::json::parse(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount_setattr"],
            "action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        "profile",
    )
    .unwrap();
    let profile = skiff::seccomp::parse(&skiff::json::Node::new(&v, "linux.seccomp")).unwrap();
    let prog = skiff::seccomp::compile(&profile).unwrap();
    let src = ctx.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut c = ctx.config();
    c.mount("/mnt", "bind", src.to_str().unwrap(), &["rbind", "rro"])
        .args(&["true"]);
    ctx.write_config(&c);
    let id = ctx.id();
    let mut cmd = std::process::Command::new(&runtime().path);
    cmd.arg("--root")
        .arg(&ctx.root)
        .args(["run", "--bundle", &ctx.bundle_str(), &id])
        .env("SKIFF_TEST_MARK", &ctx.mark)
        .stdin(std::process::Stdio::null());
    // SAFETY: between fork and exec the child only calls prctl and
    // seccomp(2) through `install`, which allocates nothing on success.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            skiff::sys::seccomp::install(&prog).map_err(|e| std::io::Error::other(e.to_string()))
        });
    }
    let out = cmd.output().expect("run the runtime");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rro without mount_setattr ran");
    if is_skiff() {
        assert!(
            stderr.contains("mounts[")
                && stderr.contains("/mnt")
                && stderr.contains("mount_setattr: not supported by this kernel"),
            "{stderr}"
        );
    }
    ctx.assert_gone(&id);
}

#[test]
fn read_only_dev_with_mounts_below() {
    let ctx = Ctx::new("rodev");
    let mut c = ctx.config();
    c.push("mounts.1.options", jstr("ro")).sh(
        "echo x > /dev/null && echo null-ok; touch /dev/new 2>/dev/null && echo dev-writable; \
         echo x > /dev/shm/x && echo shm-ok; test -c /dev/pts/ptmx && echo pts-ok; \
         grep -q ' /dev/mqueue ' /proc/self/mountinfo && echo mqueue-ok; \
         grep ' /dev ' /proc/self/mountinfo",
    );
    let out = ctx.run_config(&c);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..lines.len().saturating_sub(1)],
        ["null-ok", "shm-ok", "pts-ok", "mqueue-ok"],
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    let dev = mount_options(&out.stdout, "/dev");
    assert!(dev.iter().any(|o| o == "ro"), "{dev:?}");
}

/// Wait until a container has written `file` (a host path).
fn wait_for_file(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bind_sources_only_host_root_reaches_with_userns() {
    let ctx = Ctx::new("rootonlysrc");
    // On a shared mount, whose peers must not reach into the container.
    let _tmpfs = shared_tmpfs(&ctx.path("secretfs"));
    // A directory mode 0700 owned by the host's root: the container's ids
    // (100000...) cannot enter it.
    let secret = ctx.path("secretfs/secret");
    fs::create_dir_all(secret.join("a")).unwrap();
    fs::create_dir_all(secret.join("b")).unwrap();
    fs::write(secret.join("a/f"), "A\n").unwrap();
    fs::write(secret.join("b/f"), "B\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    let done = ctx.path("shared");
    fs::create_dir(&done).unwrap();
    std::os::unix::fs::chown(&done, Some(100000), Some(100000)).unwrap();
    // The mapped root cannot write the host-owned rootfs.
    for d in ["a", "b", "shared"] {
        fs::create_dir(ctx.rootfs().join(d)).unwrap();
    }
    let mut c = ctx.config();
    with_userns(&mut c)
        .mount(
            "/a",
            "bind",
            secret.join("a").to_str().unwrap(),
            &["rbind", "ro"],
        )
        .mount("/b", "bind", secret.join("b").to_str().unwrap(), &["bind"])
        .mount("/shared", "bind", done.to_str().unwrap(), &["rbind"])
        .sh("cat /a/f /b/f > /shared/seen; exec sleep 1000");
    ctx.write_config(&c);
    let id = ctx.id();
    let out = ctx.create(&id);
    out.ok();
    ctx.start(&id).ok();
    wait_for_file(&done.join("seen"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fs::read_to_string(done.join("seen")).unwrap(), "A\nB\n");
    // exec enters the same mounts; no fd of the runtime's leaks into it.
    let out = ctx.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /a/f /b/f; touch /a/x 2>/dev/null && echo a-writable; ls /proc/self/fd",
    ]);
    out.ok();
    assert_eq!(out.stdout, "A\nB\n0\n1\n2\n3\n", "stderr: {}", out.stderr);
    let out = ctx.rt(&["exec", &id, "cat", "/proc/self/mountinfo"]);
    out.ok();
    for mp in ["/a", "/b"] {
        let line = mountinfo_line(&out.stdout, mp).unwrap_or_default();
        assert!(!line.is_empty() && !line.contains("shared:"), "{line}");
    }
    ctx.kill(&id, "KILL").ok();
    ctx.wait_status(&id, "stopped", Duration::from_secs(10));
    ctx.delete(&id).ok();
    ctx.assert_gone(&id);
}

#[test]
fn procfs_over_a_symlink_is_refused() {
    let ctx = Ctx::new("procsymlink");
    let rootfs = ctx.rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink("/etc", rootfs.join("proc")).unwrap();
    let before = fs::read_dir(rootfs.join("etc")).unwrap().count();

    // A procfs mount there would land on the image's /etc, and the masks
    // would miss it.
    let c = ctx.config();
    let out = ctx.run_config(&c);
    out.fails();
    assert!(
        out.stderr
            .contains("proc\\\" must be mounted on ordinary directory"),
        "{}",
        out.stderr
    );

    // Without a proc mount, masked paths under the symlink are refused too.
    let mut c = ctx.config();
    c.remove_mount("/proc")
        .remove("linux.readonlyPaths")
        .sh("ls /etc");
    let out = ctx.run_config(&c);
    out.fails();
    if is_skiff() {
        // RUNC DIFFERS: runc fails later, at `open /proc/self/fd`.
        assert!(
            out.stderr.contains("linux.maskedPaths")
                && out
                    .stderr
                    .contains("must be mounted on an ordinary directory"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(fs::read_dir(rootfs.join("etc")).unwrap().count(), before);
    assert!(mounts_under(&ctx.dir).is_empty());
}

#[test]
fn no_pivot_keeps_a_fresh_procfs_out_of_reach() {
    let ctx = Ctx::new("nopivotproc");
    // An unprivileged process of the container makes its own user, mount
    // and pid namespaces (it may: no seccomp here) and tries to mount a
    // procfs of its own, which the kernel allows only when the mount
    // namespace already shows one fully (no locked mounts over it).
    let mut c = ctx.config();
    c.set("root.readonly", miniserde::json::Value::Bool(false))
        .set("process.user", js(r#"{"uid":1000,"gid":1000}"#))
        .sh("unshare -Urmpf sh -c 'id -u; mount -t proc none /proc && echo MOUNTED'; true");
    let b = ctx.bundle_str();
    let plain = c.clone();
    let mut in_userns = c.clone();
    with_userns(&mut in_userns);
    for (no_pivot, c) in [
        (false, &plain),
        (true, &plain),
        (false, &in_userns),
        (true, &in_userns),
    ] {
        let userns = std::ptr::eq(c, &in_userns);
        ctx.write_config(c);
        let id = ctx.id();
        let mut args = vec!["run", "--bundle", b.as_str()];
        if no_pivot {
            args.push("--no-pivot");
        }
        args.push(&id);
        let out = ctx.rt(&args);
        ctx.assert_gone(&id);
        out.ok();
        assert!(
            out.stdout.starts_with("0\n"),
            "no_pivot={no_pivot} userns={userns}: the nested user namespace was not made: {} {}",
            out.stdout,
            out.stderr
        );
        assert!(
            !out.stdout.contains("MOUNTED"),
            "no_pivot={no_pivot} userns={userns}: a fresh procfs was mounted: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains("permission denied"),
            "no_pivot={no_pivot} userns={userns}: {}",
            out.stderr
        );
    }
}

#[test]
fn features_list_the_mount_options_that_work() {
    let ctx = Ctx::new("mountfeatures");
    let out = ctx.rt_noroot(&["features"]);
    out.ok();
    let v = js(&out.stdout);
    let listed: Vec<&str> = as_array(jget(&v, "mountOptions"))
        .expect("mountOptions")
        .iter()
        .filter_map(|x| as_str(Some(x)))
        .collect();
    for word in [
        "rro",
        "rrw",
        "rnosuid",
        "rnodev",
        "rnoexec",
        "rnoatime",
        "nosymfollow",
    ] {
        assert!(listed.contains(&word), "{word} missing from {listed:?}");
    }
}

/// A tmpfs made a shared mount (this machine has none by default), so
/// peers of it on the host would show what leaks out of a container.
fn shared_tmpfs(at: &Path) -> HostTmpfs {
    let t = HostTmpfs::mount(at);
    sh_host(&format!("mount --make-shared {}", at.display()));
    t
}

/// Run a shell command on the host; it must succeed.
fn sh_host(script: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("run sh");
    assert!(st.success(), "host: {script}");
}

#[test]
fn read_only_host_bind_stays_read_only_in_userns() {
    let ctx = Ctx::new("robindlock");
    let src_fs = ctx.path("srcfs");
    let _tmpfs = shared_tmpfs(&src_fs);
    let src = src_fs.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    // Writable for the container's root, were the mount writable.
    std::os::unix::fs::chown(&src, Some(100000), Some(100000)).unwrap();
    // The host's own read-only bind: a container root of a user namespace
    // may not make it writable (the kernel locks it in a copy of the
    // namespace).
    sh_host(&format!(
        "mount --bind {0} {0} && mount -o remount,bind,ro {0}",
        src.display()
    ));
    let _ro = HostTmpfsBind(src.clone());
    // The mapped root cannot create it in the host-owned rootfs.
    fs::create_dir_all(ctx.rootfs().join("mnt")).unwrap();
    let mut c = ctx.config();
    with_userns(&mut c)
        .caps(&["CAP_SYS_ADMIN"])
        .mount("/mnt", "bind", src.to_str().unwrap(), &["rbind"])
        .sh("mount -o remount,bind,rw /mnt && touch /mnt/pwned; \
             grep ' /mnt ' /proc/self/mountinfo; true");
    c.set(
        "process.noNewPrivileges",
        miniserde::json::Value::Bool(false),
    );
    let out = ctx.run_config(&c);
    out.ok();
    assert!(
        !src.join("pwned").exists(),
        "the container made the host's read-only bind writable: {} {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("ermission denied") || out.stderr.contains("ead-only"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("shared:"), "{}", out.stdout);
}

/// A bind the test made on the host, detached on drop.
struct HostTmpfsBind(PathBuf);

impl Drop for HostTmpfsBind {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn mounts_inside_a_bind_of_a_shared_mount_stay_in_the_container() {
    let ctx = Ctx::new("sharedsrc");
    let src = ctx.path("src");
    let _tmpfs = shared_tmpfs(&src);
    fs::create_dir(src.join("sub")).unwrap();
    std::os::unix::fs::chown(src.join("sub"), Some(100000), Some(100000)).unwrap();
    fs::create_dir_all(ctx.rootfs().join("mnt")).unwrap();
    let plain = {
        let mut c = ctx.config();
        c.caps(&["CAP_SYS_ADMIN"])
            .mount("/mnt", "bind", src.to_str().unwrap(), &["rbind"])
            .sh(
                "mount -t tmpfs none /mnt/sub && grep ' /mnt ' /proc/self/mountinfo; \
                 exec sleep 1000",
            );
        c.set(
            "process.noNewPrivileges",
            miniserde::json::Value::Bool(false),
        );
        c
    };
    let mut in_userns = plain.clone();
    with_userns(&mut in_userns);
    let b = ctx.bundle_str();
    for (userns, c) in [(false, &plain), (true, &in_userns)] {
        for no_pivot in [false, true] {
            ctx.write_config(c);
            let id = ctx.id();
            let mut args = vec!["create", "--bundle", b.as_str()];
            if no_pivot {
                args.push("--no-pivot");
            }
            args.push(&id);
            ctx.rt(&args).ok();
            ctx.start(&id).ok();
            let pid = ctx.pid_of(&id);
            let deadline = Instant::now() + Duration::from_secs(10);
            let inside = format!("/proc/{pid}/root/mnt/sub");
            while !fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .unwrap_or_default()
                .contains(" /mnt/sub ")
            {
                assert!(Instant::now() < deadline, "{inside} never mounted");
                std::thread::sleep(Duration::from_millis(10));
            }
            let info = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
            let mnt = mountinfo_line(&info, "/mnt")
                .unwrap_or_default()
                .to_string();
            let leaked = mounts_under(&src);
            ctx.kill(&id, "KILL").ok();
            ctx.wait_status(&id, "stopped", Duration::from_secs(10));
            ctx.delete(&id).ok();
            ctx.assert_gone(&id);
            let after = mounts_under(&src);
            detach_all(&src.join("sub"));
            assert_eq!(
                leaked,
                [src.to_str().unwrap()],
                "userns={userns} no_pivot={no_pivot}: a mount of the container reached the host"
            );
            assert_eq!(
                after,
                [src.to_str().unwrap()],
                "userns={userns} no_pivot={no_pivot}"
            );
            assert!(
                !mnt.contains("shared:"),
                "userns={userns} no_pivot={no_pivot}: {mnt}"
            );
        }
    }
}

/// The id of the mount on top at `mp` in our mountinfo.
fn top_mount_id(mp: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo_line(&info, mp.to_str().unwrap()).map(|l| l.split(' ').next().unwrap().to_string())
}

#[test]
fn no_mount_namespace_cleanup_takes_only_its_own_bind() {
    let ctx = Ctx::new("nomntnsown");
    let rootfs = ctx.rootfs();
    // What a shim's snapshotter would have mounted there.
    sh_host(&format!("mount --bind {0} {0}", rootfs.display()));
    let _premounted = HostTmpfsBind(rootfs.clone());
    let before = top_mount_id(&rootfs).expect("pre-existing mount");
    let mut c = ctx.config();
    c.remove_namespace("mount")
        .remove("linux.maskedPaths")
        .remove("linux.readonlyPaths");
    let good = c.clone();

    // A create that fails in the init, after the rootfs bind.
    c.mount("/mnt", "skiff-bogus-fs", "none", &[]);
    ctx.run_config(&c).fails();
    if !is_skiff() {
        // RUNC DIFFERS: runc leaves its bind behind.
        while top_mount_id(&rootfs).as_ref() != Some(&before) {
            sh_host(&format!("umount -l {}", rootfs.display()));
        }
    }
    assert_eq!(top_mount_id(&rootfs), Some(before.clone()));

    // A create that the runtime fails (a createRuntime hook), after the
    // init's mounts.
    let mut early = good.clone();
    early.set("hooks", js(r#"{"createRuntime":[{"path":"/bin/false"}]}"#));
    ctx.run_config(&early).fails();
    if !is_skiff() {
        while top_mount_id(&rootfs).as_ref() != Some(&before) {
            sh_host(&format!("umount -l {}", rootfs.display()));
        }
    }
    assert_eq!(top_mount_id(&rootfs), Some(before.clone()));

    // Delete takes the container's bind away whatever the bundle holds
    // now, and only while it is there.
    let mut sleeper = good.clone();
    sleeper.sh("exec sleep 1000");
    for gone_first in [false, true] {
        ctx.write_config(&sleeper);
        let id = ctx.id();
        ctx.create(&id).ok();
        assert_ne!(top_mount_id(&rootfs), Some(before.clone()));
        // The bundle's config no longer says "no mount namespace".
        ctx.write_config(&ctx.config());
        if gone_first {
            sh_host(&format!("umount -l {}", rootfs.display()));
        }
        ctx.rt(&["delete", "--force", &id]).ok();
        ctx.assert_gone(&id);
        if !is_skiff() {
            while top_mount_id(&rootfs).as_ref() != Some(&before) {
                sh_host(&format!("umount -l {}", rootfs.display()));
            }
        }
        assert_eq!(
            top_mount_id(&rootfs),
            Some(before.clone()),
            "gone_first={gone_first}"
        );
    }
}

#[test]
fn rootfs_on_a_shared_mount_leaks_nothing_to_the_host() {
    let ctx = Ctx::new("sharedroot");
    let fs_dir = ctx.path("shared");
    let _tmpfs = shared_tmpfs(&fs_dir);
    let rootfs = fs_dir.join("rootfs");
    copy_tree(busybox_rootfs(), &rootfs).unwrap();
    for prop in [
        None,
        Some("private"),
        Some("rprivate"),
        Some("slave"),
        Some("rslave"),
        Some("shared"),
        Some("rshared"),
        Some("unbindable"),
        Some("runbindable"),
    ] {
        let mut c = ctx.config();
        c.set("root.path", jstr(rootfs.to_str().unwrap()))
            .sh("grep -c . /proc/self/mountinfo >/dev/null && echo ran");
        if let Some(p) = prop {
            c.set("linux.rootfsPropagation", jstr(p));
        }
        let out = ctx.run_config(&c);
        let leaked = mounts_under(&fs_dir);
        for m in leaked.iter().rev() {
            if Path::new(m) != fs_dir {
                detach_all(Path::new(m));
            }
        }
        if !is_skiff() && prop == Some("runbindable") {
            // RUNC DIFFERS: runc's rootfs bind fails (EINVAL) under a
            // runbindable `/`.
            continue;
        }
        out.ok();
        assert_eq!(out.stdout, "ran\n", "{prop:?}: {}", out.stderr);
        assert_eq!(
            leaked,
            [fs_dir.to_str().unwrap()],
            "{prop:?}: the container's mounts reached the host"
        );
    }
}

#[test]
fn no_pivot_with_a_symlinked_rootfs_path() {
    let ctx = Ctx::new("nopivotlink");
    let link = ctx.path("rootfs-link");
    symlink(ctx.rootfs(), &link).unwrap();
    let mut c = ctx.config();
    c.set("root.path", jstr(link.to_str().unwrap()))
        .sh("cat /proc/self/mountinfo");
    ctx.write_config(&c);
    let id = ctx.id();
    let b = ctx.bundle_str();
    let out = ctx.rt(&["run", "--bundle", &b, "--no-pivot", &id]);
    ctx.assert_gone(&id);
    if !is_skiff() {
        // RUNC DIFFERS: runc refuses a root.path with a symlink on it.
        out.fails();
        return;
    }
    out.ok();
    // The container's own procfs and sysfs were kept, not taken for the
    // host's.
    for (mp, fs_type) in [("/proc", " - proc "), ("/sys", " - sysfs ")] {
        let line = mountinfo_line(&out.stdout, mp).unwrap_or_default();
        assert!(line.contains(fs_type), "{mp}: {line:?} {}", out.stderr);
    }
}

#[test]
fn recursively_read_only_dev_with_mounts_below() {
    let ctx = Ctx::new("rrodev");
    let mut c = ctx.config();
    // rro waits, as ro does, until /dev/pts and the rest are made below.
    c.push("mounts.1.options", jstr("rro")).sh(
        "echo x > /dev/null && echo null-ok; touch /dev/new 2>/dev/null || echo dev-ro; \
         test -c /dev/pts/ptmx && echo pts-ok; touch /dev/shm/x 2>/dev/null || echo shm-ro; \
         grep ' /dev ' /proc/self/mountinfo",
    );
    let out = ctx.run_config(&c);
    out.ok();
    if !is_skiff() {
        // RUNC DIFFERS: runc 1.1 applies rro to bind mounts only.
        return;
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..lines.len().saturating_sub(1)],
        ["null-ok", "dev-ro", "pts-ok", "shm-ro"],
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    let dev = mount_options(&out.stdout, "/dev");
    assert!(dev.iter().any(|o| o == "ro"), "{dev:?}");
}

#[test]
fn joining_the_runtime_own_mount_namespace_is_refused() {
    let ctx = Ctx::new("ownmntns");
    if !is_skiff() {
        // A runtime without the check would set up the rootfs (propagation,
        // pivot_root) in this machine's own namespace.
        eprintln!("not run against another runtime: it could pivot the host's root");
        return;
    }
    let mut c = ctx.config();
    // Our own namespace is the runtime's (it runs in it).
    let own = format!("/proc/{}/ns/mnt", std::process::id());
    let namespaces = as_array(c.get("linux.namespaces"))
        .unwrap()
        .iter()
        .map(|n| {
            if as_str(jget(n, "type")) == Some("mount") {
                js(&format!(r#"{{"type":"mount","path":"{own}"}}"#))
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>();
    let mut arr = miniserde::json::Array::new();
    arr.extend(namespaces);
    c.set("linux.namespaces", miniserde::json::Value::Array(arr))
        .sh("true");
    let out = ctx.run_config(&c);
    out.fails();
    assert!(
        out.stderr.contains("is the runtime's own mount namespace"),
        "{}",
        out.stderr
    );
    assert!(mounts_under(&ctx.dir).is_empty());
}
