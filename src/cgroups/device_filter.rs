//! cgroup v2 has no devices files: access to device nodes is decided by an
//! eBPF program of type CGROUP_DEVICE attached to the cgroup. This builds
//! that program from the same rule list v1 takes.
//!
//! Semantics: the last rule that matches a request decides; no match denies
//! (configs start with "deny all", as runc's do).

use crate::oci::resources::{self, DeviceRule};

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
pub const DEV_BLOCK: i32 = 1;
pub const DEV_CHAR: i32 = 2;
pub const ACC_MKNOD: i32 = resources::ACCESS_MKNOD as i32;
pub const ACC_READ: i32 = resources::ACCESS_READ as i32;
pub const ACC_WRITE: i32 = resources::ACCESS_WRITE as i32;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The program for `rules`.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND64_K, 2, 0, 0, 0xffff),
        insn(RSH64_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each check jumps past the rest of the block when it fails; the
        // offsets are filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        match rule.kind {
            'c' | 'b' => {
                jumps.push(block.len());
                block.push(insn(
                    JNE_K,
                    2,
                    0,
                    0,
                    if rule.kind == 'c' {
                        DEV_CHAR
                    } else {
                        DEV_BLOCK
                    },
                ));
            }
            _ => {}
        }
        let acc = i32::from(rule.access_bits());
        if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // Anything asked for beyond the rule's letters fails the match.
            block.push(insn(MOV64_X, 6, 3, 0, 0));
            block.push(insn(AND64_K, 6, 0, 0, !acc & 7));
            jumps.push(block.len());
            block.push(insn(JNE_K, 6, 0, 0, 0));
        }
        if rule.kind != 'a' {
            if let Some(major) = rule.major {
                jumps.push(block.len());
                block.push(insn(JNE_K, 4, 0, 0, major as i32));
            }
            if let Some(minor) = rule.minor {
                jumps.push(block.len());
                block.push(insn(JNE_K, 5, 0, 0, minor as i32));
            }
        }
        block.push(insn(MOV64_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let matches_everything = jumps.is_empty();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
        // Nothing after a catch-all rule can run, and the verifier refuses
        // unreachable instructions.
        if matches_everything {
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::resources::default_device_rules;

    /// Just enough of an eBPF interpreter for what `program` emits.
    fn eval(p: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                AND64_K => r[dst] &= i.imm as i64 as u64,
                RSH64_K => r[dst] >>= i.imm,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn req(kind: i32, acc: i32) -> u32 {
        ((acc as u32) << 16) | kind as u32
    }

    #[test]
    fn default_rules_allow_the_standard_devices_only() {
        let mut rules = vec![DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }];
        rules.extend(default_device_rules());
        let p = program(&rules);
        assert_eq!(
            eval(&p, req(DEV_CHAR, ACC_READ | ACC_WRITE), 1, 3),
            1,
            "/dev/null rw"
        );
        assert_eq!(eval(&p, req(DEV_CHAR, ACC_READ), 136, 7), 1, "pts");
        assert_eq!(eval(&p, req(DEV_CHAR, ACC_READ), 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, req(DEV_BLOCK, ACC_READ), 8, 0), 0, "sda read");
        assert_eq!(
            eval(&p, req(DEV_BLOCK, ACC_MKNOD), 8, 0),
            1,
            "mknod of anything"
        );
        assert_eq!(
            eval(&p, req(DEV_CHAR, ACC_MKNOD | ACC_READ), 4, 1),
            0,
            "tty1"
        );
    }

    #[test]
    fn later_rules_win_and_access_is_a_subset() {
        let rules = vec![
            DeviceRule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: None,
                access: "r".into(),
            },
            DeviceRule {
                allow: false,
                kind: 'c',
                major: Some(1),
                minor: Some(5),
                access: "rwm".into(),
            },
        ];
        let p = program(&rules);
        assert_eq!(eval(&p, req(DEV_CHAR, ACC_READ), 1, 3), 1);
        assert_eq!(
            eval(&p, req(DEV_CHAR, ACC_READ | ACC_WRITE), 1, 3),
            0,
            "w not granted"
        );
        assert_eq!(
            eval(&p, req(DEV_CHAR, ACC_READ), 1, 5),
            0,
            "later deny wins"
        );
        assert_eq!(
            eval(&p, req(DEV_BLOCK, ACC_READ), 1, 3),
            0,
            "type must match"
        );
    }
}
