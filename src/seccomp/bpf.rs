//! The compiler from a [`Profile`] to a classic BPF program.
//!
//! Layout (all jumps go forward, as classic BPF requires):
//!
//! ```text
//!   ld  arch
//!   jeq AUDIT_ARCH_X86_64 → x86_64       (one test per filtered audit arch)
//!   jeq AUDIT_ARCH_I386   → i386
//!   ret KILL_THREAD                      (an architecture not in the filter)
//! x86_64:
//!   ld  nr
//!   jset 0x40000000 → x32 | jge 0x40000000 → ret KILL_THREAD (x32 not
//!                                             listed; nr -1 → default)
//!   <search tree over nr>                (then x32:, i386: likewise)
//! <argument-check blocks>               (shared between syscalls and ABIs)
//! <one ret per distinct action>
//! ```
//!
//! For each ABI the syscall numbers map to targets (a `ret`, or a block
//! that checks arguments); consecutive numbers with the same target merge
//! into one range, unlisted numbers go to the default action and numbers
//! above the profile's highest to the ENOSYS stub. The ranges are then
//! found by a balanced binary search of `jge` tests, so a syscall costs
//! about log2(ranges) compares. Conditional jumps that land further than
//! 255 instructions away go through an inserted `ja` (32-bit offset).

use super::{Action, Arch, Arg, Op, Profile, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use crate::error::Result;
use std::collections::HashMap;

/// One classic BPF instruction, laid out as the kernel's `struct
/// sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter and the SECCOMP_FILTER_FLAG_* bits to install it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub filter: Vec<SockFilter>,
    pub flags: u32,
}

// Opcodes (linux/bpf_common.h).
pub(crate) const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(crate) const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub(crate) const JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub(crate) const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(crate) const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub(crate) const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub(crate) const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub(crate) const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// The kernel's limit (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(index: u8) -> u32 {
    16 + 8 * index as u32
}

/// What libseccomp does with a syscall of an architecture not in the
/// filter (runc leaves it at the default, SCMP_ACT_KILL).
const BAD_ARCH: Action = Action::KillThread;
const ENOSYS: u16 = 38;

type Label = usize;

#[derive(Debug, Clone, Copy)]
enum Ins {
    Ld(u32),
    And(u32),
    Jmp {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
    Ret(u32),
    /// Pseudo-instruction: the position of a label.
    Here(Label),
}

#[derive(Default)]
struct Asm {
    ins: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    fn here(&mut self, l: Label) {
        self.ins.push(Ins::Here(l));
    }

    fn push(&mut self, i: Ins) {
        self.ins.push(i);
    }

    fn jmp(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.ins.push(Ins::Jmp { code, k, t, f });
    }

    /// Resolve labels into relative offsets, inserting `ja` trampolines for
    /// conditional jumps that reach further than 255 instructions.
    fn assemble(mut self) -> Result<Vec<SockFilter>> {
        loop {
            let pos = self.positions();
            let mut far = Vec::new();
            let mut n = 0usize;
            for (i, ins) in self.ins.iter().enumerate() {
                match *ins {
                    Ins::Here(_) => continue,
                    Ins::Jmp { t, f, .. } => {
                        let too_far = |l: Label| pos[l].saturating_sub(n + 1) > u8::MAX as usize;
                        if too_far(t) || too_far(f) {
                            far.push((i, too_far(t), too_far(f)));
                        }
                    }
                    _ => {}
                }
                n += 1;
            }
            if far.is_empty() {
                break;
            }
            // Rewrite back to front so earlier indexes stay valid.
            for (i, t_far, f_far) in far.into_iter().rev() {
                let Ins::Jmp { code, k, t, f } = self.ins[i] else {
                    unreachable!()
                };
                let mut tail = Vec::new();
                let (mut nt, mut nf) = (t, f);
                if t_far {
                    nt = self.label();
                    tail.extend([Ins::Here(nt), Ins::Ja(t)]);
                }
                if f_far {
                    nf = if t_far && f == t { nt } else { self.label() };
                    if nf != nt {
                        tail.extend([Ins::Here(nf), Ins::Ja(f)]);
                    }
                }
                self.ins[i] = Ins::Jmp {
                    code,
                    k,
                    t: nt,
                    f: nf,
                };
                self.ins.splice(i + 1..i + 1, tail);
            }
        }
        let pos = self.positions();
        let mut out = Vec::with_capacity(self.ins.len());
        for ins in &self.ins {
            let n = out.len();
            let rel = |l: Label| {
                pos[l].checked_sub(n + 1).ok_or_else(|| {
                    crate::err!("seccomp: internal error: backward jump at instruction {n}")
                })
            };
            let (code, jt, jf, k) = match *ins {
                Ins::Here(_) => continue,
                Ins::Ld(off) => (LD_W_ABS, 0, 0, off),
                Ins::And(m) => (ALU_AND_K, 0, 0, m),
                Ins::Jmp { code, k, t, f } => (code, rel(t)? as u8, rel(f)? as u8, k),
                Ins::Ja(l) => (JA, 0, 0, rel(l)? as u32),
                Ins::Ret(v) => (RET_K, 0, 0, v),
            };
            out.push(SockFilter { code, jt, jf, k });
        }
        if out.len() > MAX_INSNS {
            crate::bail!("seccomp: the compiled filter has {} instructions, more than the kernel's {MAX_INSNS}", out.len());
        }
        Ok(out)
    }

    /// The instruction index of every label. Labels are only ever placed
    /// after the jumps that use them, so offsets are never negative.
    fn positions(&self) -> Vec<usize> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut n = 0;
        for ins in &self.ins {
            match ins {
                Ins::Here(l) => pos[*l] = n,
                _ => n += 1,
            }
        }
        pos
    }
}

/// The conditional rules of one syscall, in order: (action, conditions).
type Checks = Vec<(Action, Vec<Arg>)>;

/// Identifies an argument-check block: the argument width and the
/// (SECCOMP_RET value, conditions) of each rule.
type BlockKey = (bool, Vec<(u32, Vec<Arg>)>);

/// Where a syscall number leads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Ret(Action),
    Checks(bool, Checks),
}

struct Compiler {
    asm: Asm,
    rets: HashMap<u32, Label>,
    blocks: HashMap<BlockKey, Label>,
    /// Argument-check blocks to emit after the trees.
    pending: Vec<(Label, bool, Checks)>,
}

impl Compiler {
    fn ret(&mut self, a: Action) -> Label {
        let v = a.ret();
        if let Some(l) = self.rets.get(&v) {
            return *l;
        }
        let l = self.asm.label();
        self.rets.insert(v, l);
        l
    }

    fn target(&mut self, t: &Target) -> Label {
        match t {
            Target::Ret(a) => self.ret(*a),
            Target::Checks(wide, checks) => {
                let key = (
                    *wide,
                    checks
                        .iter()
                        .map(|(a, args)| (a.ret(), args.clone()))
                        .collect(),
                );
                if let Some(l) = self.blocks.get(&key) {
                    return *l;
                }
                let l = self.asm.label();
                self.blocks.insert(key, l);
                self.pending.push((l, *wide, checks.clone()));
                l
            }
        }
    }

    /// A balanced search over ranges: `starts[i]` is where range i begins
    /// (ascending), `targets[i]` where it leads. The first range covers
    /// everything below `starts[1]` that reaches this tree.
    fn tree(&mut self, starts: &[u32], targets: &[Label]) {
        if starts.len() == 1 {
            self.asm.push(Ins::Ja(targets[0]));
            return;
        }
        self.node(starts, targets);
    }

    fn node(&mut self, starts: &[u32], targets: &[Label]) {
        let mid = starts.len() / 2;
        let (ls, rs) = starts.split_at(mid);
        let (lt, rt) = targets.split_at(mid);
        let side = |c: &mut Compiler, s: &[u32]| {
            if s.len() == 1 {
                None
            } else {
                Some(c.asm.label())
            }
        };
        let l_label = side(self, ls);
        let r_label = side(self, rs);
        let t = r_label.unwrap_or(rt[0]);
        let f = l_label.unwrap_or(lt[0]);
        self.asm.jmp(JGE_K, rs[0], t, f);
        if let Some(l) = l_label {
            self.asm.here(l);
            self.node(ls, lt);
        }
        if let Some(l) = r_label {
            self.asm.here(l);
            self.node(rs, rt);
        }
    }

    /// Emit one condition: continue at `pass` when it holds, else `fail`.
    fn cond(&mut self, arg: &Arg, wide: bool, pass: Label, fail: Label) {
        let lo_off = off_arg_lo(arg.index);
        let hi_off = lo_off + 4;
        let (v, v2) = (arg.value, arg.value_two);
        let (vhi, vlo) = ((v >> 32) as u32, v as u32);
        if !wide {
            // Low 32 bits only (i386, x32), as libseccomp compares there.
            self.asm.push(Ins::Ld(lo_off));
            match arg.op {
                Op::Eq => self.asm.jmp(JEQ_K, vlo, pass, fail),
                Op::Ne => self.asm.jmp(JEQ_K, vlo, fail, pass),
                Op::Gt => self.asm.jmp(JGT_K, vlo, pass, fail),
                Op::Ge => self.asm.jmp(JGE_K, vlo, pass, fail),
                Op::Lt => self.asm.jmp(JGE_K, vlo, fail, pass),
                Op::Le => self.asm.jmp(JGT_K, vlo, fail, pass),
                Op::MaskedEq => {
                    self.asm.push(Ins::And(vlo));
                    self.asm.jmp(JEQ_K, v2 as u32, pass, fail);
                }
            }
            return;
        }
        let lo = self.asm.label();
        self.asm.push(Ins::Ld(hi_off));
        match arg.op {
            Op::Eq | Op::Ne => {
                let (t, f) = if arg.op == Op::Eq {
                    (pass, fail)
                } else {
                    (fail, pass)
                };
                self.asm.jmp(JEQ_K, vhi, lo, f);
                self.asm.here(lo);
                self.asm.push(Ins::Ld(lo_off));
                self.asm.jmp(JEQ_K, vlo, t, f);
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                // hi > vhi decides for Gt/Ge (pass) and Lt/Le (fail);
                // hi == vhi goes on to the low half; hi < vhi is the opposite.
                let greater = matches!(arg.op, Op::Gt | Op::Ge);
                let (above, below) = if greater { (pass, fail) } else { (fail, pass) };
                let eq = self.asm.label();
                self.asm.jmp(JGT_K, vhi, above, eq);
                self.asm.here(eq);
                self.asm.jmp(JEQ_K, vhi, lo, below);
                self.asm.here(lo);
                self.asm.push(Ins::Ld(lo_off));
                match arg.op {
                    Op::Gt => self.asm.jmp(JGT_K, vlo, pass, fail),
                    Op::Ge => self.asm.jmp(JGE_K, vlo, pass, fail),
                    Op::Lt => self.asm.jmp(JGE_K, vlo, fail, pass),
                    _ => self.asm.jmp(JGT_K, vlo, fail, pass),
                }
            }
            Op::MaskedEq => {
                self.asm.push(Ins::And((v >> 32) as u32));
                self.asm.jmp(JEQ_K, (v2 >> 32) as u32, lo, fail);
                self.asm.here(lo);
                self.asm.push(Ins::Ld(lo_off));
                self.asm.push(Ins::And(vlo));
                self.asm.jmp(JEQ_K, v2 as u32, pass, fail);
            }
        }
    }

    /// The rules of one syscall, tried in order; none matching means the
    /// default action.
    fn checks(&mut self, wide: bool, checks: &Checks, default: Label) {
        for (i, (action, args)) in checks.iter().enumerate() {
            let act = self.ret(*action);
            let next = if i + 1 == checks.len() {
                default
            } else {
                self.asm.label()
            };
            for (j, arg) in args.iter().enumerate() {
                let pass = if j + 1 == args.len() {
                    act
                } else {
                    self.asm.label()
                };
                self.cond(arg, wide, pass, next);
                if pass != act {
                    self.asm.here(pass);
                }
            }
            if next != default {
                self.asm.here(next);
            }
        }
    }
}

/// The ranges of syscall numbers of one ABI, as (start, target), starting
/// at `domain_start` and sorted.
fn ranges(profile: &Profile, arch: Arch, stub: bool, domain_start: u32) -> Vec<(u32, Target)> {
    let default = profile.default_action;
    // Per syscall number (table numbers are below 1024 on every ABI; the
    // x32 bit is the domain start): the first unconditional action and the
    // conditional rules in order.
    let mut slot = [u16::MAX; 1024];
    let mut entries: Vec<(Option<Action>, Checks)> = Vec::new();
    let mut max = None;
    let mut add = |nr: u32, action: Action, args: &[Arg]| {
        let i = (nr - domain_start) as usize;
        if slot[i] == u16::MAX {
            slot[i] = entries.len() as u16;
            entries.push((None, Vec::new()));
        }
        let entry = &mut entries[slot[i] as usize];
        if args.is_empty() {
            entry.0.get_or_insert(action);
        } else if entry.0.is_none() {
            entry.1.push((action, args.to_vec()));
        }
    };
    for rule in &profile.rules {
        for sc in &rule.syscalls {
            let nr = sc.number(arch);
            max = max.max(nr);
            if rule.action == default {
                continue;
            }
            if arch == Arch::I386 {
                if let Some((mux, sub)) = sc.i386_mux() {
                    add(mux, rule.action, &super::mux_args(&rule.args, sub));
                }
            }
            if let Some(nr) = nr {
                add(nr, rule.action, &rule.args);
            }
        }
    }
    let mut out: Vec<(u32, Target)> = vec![(domain_start, Target::Ret(default))];
    for (i, s) in slot.iter().enumerate() {
        if *s == u16::MAX {
            continue;
        }
        let (uncond, checks) = std::mem::take(&mut entries[*s as usize]);
        let t = match uncond {
            Some(a) => Target::Ret(a),
            None => Target::Checks(arch.wide_args(), checks),
        };
        let nr = domain_start + i as u32;
        push_range(&mut out, nr, t);
        push_range(&mut out, nr + 1, Target::Ret(default));
    }
    if let (true, Some(max)) = (stub, max) {
        // Everything above the highest named syscall: ENOSYS, before any
        // rule (runc's stub runs first; only i386's socketcall and ipc can
        // have rules up there).
        out.retain(|(start, _)| *start <= max + 1);
        push_range(&mut out, max + 1, Target::Ret(Action::Errno(ENOSYS)));
    }
    out
}

/// Set the target from `start` on (`start` is at or after the last range).
fn push_range(out: &mut Vec<(u32, Target)>, start: u32, t: Target) {
    if out.last().is_some_and(|(s, _)| *s == start) {
        out.pop();
    }
    if out.last().is_some_and(|(_, last)| *last == t) {
        return;
    }
    out.push((start, t));
}

/// Compile a profile into a BPF program.
pub fn compile(profile: &Profile) -> Result<Program> {
    let mut c = Compiler {
        asm: Asm::default(),
        rets: HashMap::new(),
        blocks: HashMap::new(),
        pending: Vec::new(),
    };
    let has = |a: Arch| profile.architectures.contains(&a);
    let default = c.ret(profile.default_action);
    let bad_arch = c.ret(BAD_ARCH);
    // runc's ENOSYS stub, unless the default already lets syscalls run or
    // already answers ENOSYS.
    let stub =
        !profile.default_action.permissive() && profile.default_action != Action::Errno(ENOSYS);

    // The architecture check.
    let sec_64 = c.asm.label();
    let sec_32 = c.asm.label();
    c.asm.push(Ins::Ld(OFF_ARCH));
    if has(Arch::I386) {
        let next = c.asm.label();
        c.asm.jmp(JEQ_K, AUDIT_ARCH_X86_64, sec_64, next);
        c.asm.here(next);
        c.asm.jmp(JEQ_K, AUDIT_ARCH_I386, sec_32, bad_arch);
    } else {
        c.asm.jmp(JEQ_K, AUDIT_ARCH_X86_64, sec_64, bad_arch);
    }

    // x86_64, and x32 under the same audit arch.
    c.asm.here(sec_64);
    c.asm.push(Ins::Ld(OFF_NR));
    let body_64 = c.asm.label();
    let sec_x32 = c.asm.label();
    if has(Arch::X32) {
        c.asm.jmp(JSET_K, X32_SYSCALL_BIT, sec_x32, body_64);
    } else {
        // x32 is a bad arch, except nr -1 (a tracer skipping the syscall),
        // which libseccomp lets through to the default action.
        let high = c.asm.label();
        c.asm.jmp(JGE_K, X32_SYSCALL_BIT, high, body_64);
        c.asm.here(high);
        c.asm.jmp(JEQ_K, u32::MAX, default, bad_arch);
    }
    let mut sections = vec![(body_64, Arch::X86_64, 0)];
    if has(Arch::X32) {
        sections.push((sec_x32, Arch::X32, X32_SYSCALL_BIT));
    }
    if has(Arch::I386) {
        sections.push((sec_32, Arch::I386, 0));
    }
    for (label, arch, start) in sections {
        c.asm.here(label);
        if arch == Arch::I386 {
            c.asm.push(Ins::Ld(OFF_NR));
        }
        let rs = ranges(profile, arch, stub, start);
        let starts: Vec<u32> = rs.iter().map(|(s, _)| *s).collect();
        let targets: Vec<Label> = rs.iter().map(|(_, t)| c.target(t)).collect();
        c.tree(&starts, &targets);
    }

    // Argument checks, then the returns.
    let mut i = 0;
    while i < c.pending.len() {
        let (label, wide, checks) = c.pending[i].clone();
        c.asm.here(label);
        c.checks(wide, &checks, default);
        i += 1;
    }
    let mut rets: Vec<(u32, Label)> = c.rets.iter().map(|(v, l)| (*v, *l)).collect();
    rets.sort_by_key(|(_, l)| *l);
    for (v, l) in rets {
        c.asm.here(l);
        c.asm.push(Ins::Ret(v));
    }
    Ok(Program {
        filter: c.asm.assemble()?,
        flags: profile.flags,
    })
}

/// A readable listing of a program, one instruction per line (for debug
/// logs and tests): `  12: jge #0x53 jt 14 jf 20`.
pub fn disassemble(filter: &[SockFilter]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (i, ins) in filter.iter().enumerate() {
        let next = i + 1;
        let (jt, jf) = (next + ins.jt as usize, next + ins.jf as usize);
        let _ = match ins.code {
            LD_W_ABS => match ins.k {
                OFF_NR => writeln!(out, "{i:4}: ld nr"),
                OFF_ARCH => writeln!(out, "{i:4}: ld arch"),
                k if k >= 16 => writeln!(
                    out,
                    "{i:4}: ld args[{}].{}",
                    (k - 16) / 8,
                    if k % 8 == 0 { "lo" } else { "hi" }
                ),
                k => writeln!(out, "{i:4}: ld [{k}]"),
            },
            ALU_AND_K => writeln!(out, "{i:4}: and #{:#x}", ins.k),
            JA => writeln!(out, "{i:4}: ja {}", next + ins.k as usize),
            JEQ_K => writeln!(out, "{i:4}: jeq #{:#x} jt {jt} jf {jf}", ins.k),
            JGT_K => writeln!(out, "{i:4}: jgt #{:#x} jt {jt} jf {jf}", ins.k),
            JGE_K => writeln!(out, "{i:4}: jge #{:#x} jt {jt} jf {jf}", ins.k),
            JSET_K => writeln!(out, "{i:4}: jset #{:#x} jt {jt} jf {jf}", ins.k),
            RET_K => writeln!(out, "{i:4}: ret #{:#x}", ins.k),
            c => writeln!(out, "{i:4}: ??? code {c:#x} k {:#x}", ins.k),
        };
    }
    out
}
