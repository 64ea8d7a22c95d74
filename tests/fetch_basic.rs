//! skiff-fetch against a plain-HTTP registry on 127.0.0.1.

#[path = "fetch_support/mod.rs"]
mod support;

use support::*;

#[test]
fn pull_single_layer_to_rootfs() {
    let reg = Registry::start(RegistryConfig::default());
    let work = TempDir::new("basic");
    write_layout(&work.join("layout"), "v1", &[ImageSpec::new(vec![Layer { entries: busybox_entries(), comp: Comp::Gzip }])]);
    push(&work.join("layout"), "v1", &format!("{}/bb:v1", reg.host()), &[]);
    let r = format!("{}/bb:v1", reg.host());
    let o = ok(fetch(&["pull", "--plain-http", "--store", &work.s("store"), "--rootfs", &work.s("rootfs"), &r]));
    assert!(stdout(&o).contains(&format!("{r}: sha256:")), "{}", stdout(&o));
    assert!(work.join("rootfs/bin/busybox").exists());
}
