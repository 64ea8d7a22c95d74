//! Loading an eBPF program and attaching it to a cgroup (bpf(2)).

use crate::cgroups::device_filter::Insn;
use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, as the fields of the two commands we use; the kernel
/// wants the rest zeroed.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a zero-padded bpf_attr of the size we pass; the
    // pointers inside it point at live buffers of the caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Load a CGROUP_DEVICE program and attach it to the cgroup `dir`. The
/// attachment keeps the program alive after our fd is closed.
pub fn attach_device_filter(dir: &OwnedFd, prog: &[Insn]) -> Result<()> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 4096];
    let mut load = Attr([0; 128]);
    load.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    load.put_u32(4, prog.len() as u32);
    load.put_u64(8, prog.as_ptr() as u64);
    load.put_u64(16, license.as_ptr() as u64);
    load.put_u32(24, 1); // log_level
    load.put_u32(28, log.len() as u32);
    load.put_u64(32, log.as_mut_ptr() as u64);
    let fd = bpf(BPF_PROG_LOAD, &mut load).map_err(|e| {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        crate::Error::from(e).wrap(format!(
            "load the device filter (verifier: {})",
            text.replace('\n', "; ")
        ))
    })?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd that we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attach = Attr([0; 128]);
    attach.put_u32(0, dir.as_raw_fd() as u32);
    attach.put_u32(4, prog_fd.as_raw_fd() as u32);
    attach.put_u32(8, BPF_CGROUP_DEVICE);
    attach.put_u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attach).context("attach the device filter to the cgroup")?;
    Ok(())
}
