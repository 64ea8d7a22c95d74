//! Snapshotter tests on the real kernel: overlay mounts are mounted and
//! read back. They need root (as all of skiff's tests).

use super::*;
use crate::image::unpack::Extractor;
use crate::Kind as ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// A scratch directory, removed on drop (after its mounts are gone).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "skiff-snap-{tag}-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Unmounts on drop, also when an assertion failed.
struct Mounted(PathBuf);

impl Mounted {
    fn new(mounts: &[Mount], target: &Path) -> Mounted {
        fs::create_dir_all(target).unwrap();
        mount::mount_all(mounts, target).unwrap();
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = mount::unmount(&self.0);
    }
}

fn write_in(s: &Snapshotter, key: &str, name: &str, data: &str) {
    let (dir, _) = s.apply_target(key).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn e<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.unwrap_err().kind()
}

#[test]
fn overlay_lifecycle_and_errors() {
    let tmp = Scratch::new("life");
    let s = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();

    let m = s.prepare("base-a", "", Labels::new()).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].kind, "bind", "a snapshot with no parent is a bind");
    write_in(&s, "base-a", "hello", "base");
    write_in(&s, "base-a", "gone", "x");
    s.commit("base", "base-a", labels(&[("l", "1")])).unwrap();
    let info = s.stat("base").unwrap();
    assert_eq!(info.kind, SnapshotKind::Committed);
    assert_eq!(info.labels.get("l").map(String::as_str), Some("1"));
    assert_eq!(s.stat("base-a").unwrap_err().kind(), ErrorKind::NotFound);

    let m = s.prepare("child", "base", Labels::new()).unwrap();
    assert_eq!(m[0].kind, "overlay");
    assert!(m[0].options.iter().any(|o| o.starts_with("lowerdir=")));
    {
        let _mnt = Mounted::new(&m, &tmp.0.join("mnt"));
        let root = tmp.0.join("mnt");
        assert_eq!(fs::read_to_string(root.join("hello")).unwrap(), "base");
        fs::write(root.join("hello"), "changed").unwrap();
        fs::remove_file(root.join("gone")).unwrap();
    }
    // The change went to the upper dir, the lower layer is untouched.
    let (upper, _) = s.apply_target("child").unwrap();
    assert_eq!(fs::read_to_string(upper.join("hello")).unwrap(), "changed");
    let wh = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(s.usage("child").unwrap().inodes >= 3);

    assert_eq!(
        e(s.prepare("child", "base", Labels::new())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e(s.prepare("x", "missing", Labels::new())),
        ErrorKind::NotFound
    );
    assert_eq!(
        e(s.prepare("x", "child", Labels::new())),
        ErrorKind::FailedPrecondition,
        "an active snapshot cannot be a parent"
    );
    assert_eq!(e(s.mounts("base")), ErrorKind::FailedPrecondition);
    assert_eq!(
        e(s.commit("base", "child", Labels::new())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e(s.commit("y", "base", Labels::new())),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e(s.remove("base")),
        ErrorKind::FailedPrecondition,
        "has a child"
    );
    assert_eq!(e(s.remove("nope")), ErrorKind::NotFound);

    let v = s.view("v", "base", Labels::new()).unwrap();
    assert_eq!(
        v,
        vec![Mount::bind(
            &s.fs_dir(s.lock().get("base").unwrap().id),
            true
        )]
    );
    {
        let target = tmp.0.join("view");
        let _mnt = Mounted::new(&v, &target);
        assert_eq!(fs::read_to_string(target.join("hello")).unwrap(), "base");
        assert!(
            fs::write(target.join("new"), "x").is_err(),
            "a view is read-only"
        );
    }

    let names: Vec<String> = s.list().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["base", "child", "v"]);
    s.set_labels("child", labels(&[("a", "b")])).unwrap();

    // Everything survives a reopen.
    drop(s);
    let s = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    assert_eq!(s.stat("child").unwrap().labels, labels(&[("a", "b")]));
    assert_eq!(s.stat("child").unwrap().parent, "base");
    s.remove("child").unwrap();
    s.remove("v").unwrap();
    s.remove("base").unwrap();
    assert!(s.list().is_empty());
    assert_eq!(fs::read_dir(tmp.0.join("sn/snapshots")).unwrap().count(), 0);
}

#[test]
fn overlay_is_supported_here_and_the_probe_leaves_nothing() {
    let tmp = Scratch::new("probe");
    assert!(
        overlay::supported(&tmp.0),
        "overlayfs works on this machine"
    );
    assert_eq!(fs::read_dir(&tmp.0).unwrap().count(), 0);
}

#[test]
fn open_removes_orphan_directories() {
    let tmp = Scratch::new("orphan");
    let root = tmp.0.join("sn");
    let s = Snapshotter::open(&root, Driver::Overlay).unwrap();
    s.prepare("keep", "", Labels::new()).unwrap();
    drop(s);
    // What a crash between "make the directory" and "write the record"
    // (or a remove between its two steps) leaves.
    fs::create_dir_all(root.join("snapshots/77/fs")).unwrap();
    fs::create_dir_all(root.join("snapshots/junk")).unwrap();
    let s = Snapshotter::open(&root, Driver::Overlay).unwrap();
    assert_eq!(
        e(Snapshotter::open(&root, Driver::Overlay).map(|_| ())),
        ErrorKind::FailedPrecondition,
        "one owner at a time"
    );
    assert!(!root.join("snapshots/77").exists());
    assert!(!root.join("snapshots/junk").exists());
    assert_eq!(s.list().len(), 1);
    // New ids do not collide with the kept one.
    s.prepare("next", "", Labels::new()).unwrap();
    assert_eq!(fs::read_dir(root.join("snapshots")).unwrap().count(), 2);
}

#[test]
fn open_restores_the_unsynced_directory_of_an_active_snapshot() {
    let tmp = Scratch::new("restore");
    let root = tmp.0.join("sn");
    let s = Snapshotter::open(&root, Driver::Overlay).unwrap();
    s.prepare("base", "", Labels::new()).unwrap();
    s.commit("layer", "base", Labels::new()).unwrap();
    s.prepare("rw", "layer", Labels::new()).unwrap();
    let id = s.id_of("rw").unwrap();
    drop(s);
    // What a crash can leave: the record written, the (unsynced) new
    // directory lost.
    fs::remove_dir_all(root.join(format!("snapshots/{id}"))).unwrap();
    let s = Snapshotter::open(&root, Driver::Overlay).unwrap();
    assert!(root.join(format!("snapshots/{id}/fs")).is_dir());
    assert!(root.join(format!("snapshots/{id}/work")).is_dir());
    let target = tmp.0.join("target");
    fs::create_dir(&target).unwrap();
    let _m = Mounted::new(&s.mounts("rw").unwrap(), &target);
    fs::write(target.join("new"), "x").unwrap();
}

/// A chain of 150 layers, each with its own file and a shared `top`, and
/// the mounts of an active snapshot on it: the lower dirs alone are over
/// 6 KB of mount options, past mount(2)'s one page.
fn deep_chain(s: &Snapshotter) -> Vec<Mount> {
    let mut parent = String::new();
    for i in 0..150 {
        let key = format!("extract-{i}");
        s.prepare(&key, &parent, Labels::new()).unwrap();
        write_in(s, &key, &format!("layer{i}"), "x");
        write_in(s, &key, "top", &i.to_string());
        let name = format!("sha256:{i:064}");
        s.commit(&name, &key, Labels::new()).unwrap();
        parent = name;
    }
    let m = s.prepare("container", &parent, Labels::new()).unwrap();
    let data: usize = m[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(data > 4096, "the test must exceed one page ({data} bytes)");
    m
}

fn check_deep_view(target: &Path) {
    for i in 0..150 {
        assert!(target.join(format!("layer{i}")).exists(), "layer{i}");
    }
    assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "149");
    fs::write(target.join("written"), "w").unwrap();
}

#[test]
fn overlay_mounts_a_150_layer_chain() {
    let tmp = Scratch::new("deep");
    let s = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let m = deep_chain(&s);
    let target = tmp.0.join("mnt");
    let _mnt = Mounted::new(&m, &target);
    check_deep_view(&target);
}

/// Both ways past the page limit, each on its own: `lowerdir+` (new
/// kernels) and lower dirs named through an fd (any kernel).
#[test]
fn overlay_long_options_both_ways() {
    let tmp = Scratch::new("deep2");
    let s = Snapshotter::open(&tmp.0.join("sn"), Driver::Overlay).unwrap();
    let m = deep_chain(&s);
    let target = tmp.0.join("mnt");
    fs::create_dir_all(&target).unwrap();
    let t = target.display().to_string();
    for (how, res) in [
        ("fsconfig", m[0].mount_overlay_fsconfig(&t)),
        ("compact", m[0].mount_overlay_compact(&t)),
    ] {
        res.unwrap_or_else(|e| panic!("{how}: {e}"));
        let _mnt = Mounted(target.clone());
        check_deep_view(&target);
        fs::remove_file(target.join("written")).unwrap();
    }
}

#[test]
fn native_copies_the_parent_tree() {
    let tmp = Scratch::new("native");
    let s = Snapshotter::open(&tmp.0.join("sn"), Driver::Native).unwrap();
    s.prepare("a", "", Labels::new()).unwrap();
    let (dir, mode) = s.apply_target("a").unwrap();
    assert_eq!(mode, WhiteoutMode::Apply);
    fs::create_dir(dir.join("d")).unwrap();
    fs::write(dir.join("d/f"), "data").unwrap();
    fs::hard_link(dir.join("d/f"), dir.join("link")).unwrap();
    std::os::unix::fs::symlink("d/f", dir.join("sym")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap());
    rustix::fs::chmod(dir.join("d/f"), rustix::fs::Mode::from_raw_mode(0o4711)).unwrap();
    rustix::fs::chown(
        dir.join("d/f"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1001)),
    )
    .unwrap();
    rustix::fs::chmod(dir.join("d/f"), rustix::fs::Mode::from_raw_mode(0o4711)).unwrap();
    s.commit("A", "a", Labels::new()).unwrap();
    let m = s.prepare("b", "A", Labels::new()).unwrap();
    assert_eq!(m[0].kind, "bind");
    let (copy, _) = s.apply_target("b").unwrap();
    let f = fs::symlink_metadata(copy.join("d/f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 1001, 0o4711));
    assert_eq!(
        f.ino(),
        fs::symlink_metadata(copy.join("link")).unwrap().ino(),
        "hard links stay links"
    );
    assert_eq!(fs::read_link(copy.join("sym")).unwrap(), Path::new("d/f"));
    assert!(fs::symlink_metadata(copy.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    let target = tmp.0.join("mnt");
    let _mnt = Mounted::new(&m, &target);
    fs::write(target.join("new"), "n").unwrap();
    assert!(copy.join("new").exists());
    assert!(!dir.join("new").exists(), "the parent is a separate copy");
}

/// Overlay whiteout mode: markers instead of removals.
#[test]
fn overlay_whiteout_mode_writes_markers() {
    let tmp = Scratch::new("wh");
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, b"");
    add("etc/.wh.passwd", tar::EntryType::Regular, b"");
    add("opt/.wh..wh..opq", tar::EntryType::Regular, b"");
    add("opt/new", tar::EntryType::Regular, b"n");
    let layer = b.into_inner().unwrap();
    let dir = tmp.0.join("layer");
    fs::create_dir(&dir).unwrap();
    Extractor::new(&dir)
        .unwrap()
        .with_whiteouts(WhiteoutMode::Overlay)
        .apply(&layer[..], "l")
        .unwrap();
    let wh = fs::symlink_metadata(dir.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(dir.join("opt"), "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
    assert_eq!(fs::read_to_string(dir.join("opt/new")).unwrap(), "n");
    assert!(!dir.join("opt/.wh..wh..opq").exists());
}

fn tar_layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let dir = path.ends_with('/');
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every path under `root` with its kind and (for files) content.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let p = rel.join(e.file_name());
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.push(format!("{}/", p.display()));
                todo.push(p);
            } else {
                let data = fs::read_to_string(root.join(&p)).unwrap_or_default();
                out.push(format!("{} = {data}", p.display()));
            }
        }
    }
    out.sort();
    out
}

/// A layer that whites out names it also makes, in either order, puts
/// things under a name it whited out, whites out under a whiteout, and has
/// a root-level opaque marker: mounted as an overlay over the lower layer,
/// its Overlay-mode markers give the tree Apply mode gives.
#[test]
fn overlay_markers_give_the_apply_mode_tree() {
    let tmp = Scratch::new("whorder");
    let lower_layer = tar_layer(&[
        ("foo/", b""),
        ("foo/old", b"o"),
        ("bar/", b""),
        ("bar/old", b"o"),
        ("gone/", b""),
        ("gone/old", b"o"),
        ("baz/", b""),
        ("baz/q", b"q"),
        ("keep/", b""),
        ("keep/k", b"k"),
        ("top", b"t"),
    ]);
    let upper_layer = tar_layer(&[
        (".wh.foo", b""),
        ("foo/", b""),
        ("foo/new", b"n"),
        ("bar/", b""),
        ("bar/new", b"n"),
        (".wh.bar", b""),
        (".wh.gone", b""),
        ("gone/x", b"x"),
        (".wh.baz", b""),
        ("baz/.wh.q", b""),
        ("baz/.wh..wh..opq", b""),
        (".wh..wh..opq", b""),
    ]);
    let applied = tmp.0.join("applied");
    let lower = tmp.0.join("lower");
    let upper = tmp.0.join("upper");
    for d in [&applied, &lower, &upper] {
        fs::create_dir(d).unwrap();
    }
    let apply = Extractor::new(&applied).unwrap();
    apply.apply(&lower_layer[..], "l1").unwrap();
    apply.apply(&upper_layer[..], "l2").unwrap();
    Extractor::new(&lower)
        .unwrap()
        .apply(&lower_layer[..], "l1")
        .unwrap();
    Extractor::new(&upper)
        .unwrap()
        .with_whiteouts(WhiteoutMode::Overlay)
        .apply(&upper_layer[..], "l2")
        .unwrap();
    let merged = tmp.0.join("merged");
    let m = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            "ro".into(),
            format!("lowerdir={}:{}", upper.display(), lower.display()),
        ],
    };
    let _m = Mounted::new(&[m], &merged);
    let want = tree(&applied);
    assert_eq!(
        want,
        [
            "bar/",
            "bar/new = n",
            "foo/",
            "foo/new = n",
            "gone/",
            "gone/x = x",
            "keep/",
            "keep/k = k",
            "top = t"
        ]
    );
    assert_eq!(tree(&merged), want);
}

/// An orphan directory that cannot be removed (a mount inside it) is
/// reported; open and the other orphans' removal go on.
#[test]
fn an_orphan_that_cannot_be_removed_does_not_stop_open() {
    let tmp = Scratch::new("stuck");
    let root = tmp.0.join("sn");
    drop(Snapshotter::open(&root, Driver::Overlay).unwrap());
    let busy = root.join("snapshots/5/fs/m");
    fs::create_dir_all(&busy).unwrap();
    fs::create_dir_all(root.join("snapshots/6/fs")).unwrap();
    let empty = tmp.0.join("empty");
    fs::create_dir(&empty).unwrap();
    let _m = Mounted::new(&[Mount::bind(&empty, true)], &busy);
    let s = Snapshotter::open(&root, Driver::Overlay).unwrap();
    assert_eq!(s.open_failures().len(), 1, "{:?}", s.open_failures());
    assert!(s.open_failures()[0].contains("directory 5"));
    assert!(!root.join("snapshots/6").exists());
    let again = s.remove_orphans().unwrap();
    assert_eq!((again.removed, again.failed.len()), (0, 1));
}

/// A root given with `..` (or relative) is made absolute: mount options
/// name lower dirs by path.
#[test]
fn the_root_is_made_absolute() {
    let tmp = Scratch::new("canon");
    fs::create_dir(tmp.0.join("a")).unwrap();
    let s = Snapshotter::open(&tmp.0.join("a/../sn"), Driver::Overlay).unwrap();
    assert_eq!(s.root(), fs::canonicalize(tmp.0.join("sn")).unwrap());
    s.prepare("base-a", "", Labels::new()).unwrap();
    s.commit("base", "base-a", Labels::new()).unwrap();
    let m = s.prepare("top", "base", Labels::new()).unwrap();
    let lower = m[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap()
        .to_string();
    assert!(lower.starts_with('/') && !lower.contains(".."), "{lower}");
}
