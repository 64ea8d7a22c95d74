//! Seccomp: the OCI `linux.seccomp` section, parsed into a [`Profile`] and
//! compiled by [`compile`] into a classic BPF [`Program`] that
//! `sys::seccomp::install` loads. No libseccomp: the syscall tables are
//! generated facts (`table.rs`), the compiler is ours (`bpf.rs`).
//!
//! Semantics follow runc with libseccomp, so profiles written for Docker,
//! podman and containerd behave the same:
//! - the native architecture (x86_64) is always filtered; `architectures`
//!   adds i386 (`SCMP_ARCH_X86`) and x32 (`SCMP_ARCH_X32`); other known
//!   architectures are accepted and ignored (no task on this host can have
//!   them). A syscall from an architecture not in the filter kills the
//!   thread (libseccomp's default "bad arch" action), and on x86_64 that
//!   includes x32 syscalls (`nr >= 0x40000000`, except -1) when x32 is not
//!   listed;
//! - syscall names unknown on every architecture are skipped (runc logs
//!   them at debug level; they are kept in [`Profile::unknown_syscalls`]);
//! - a rule whose action equals the default action is dropped;
//! - `errnoRet` of a rule defaults to EPERM (runc does not fall back to
//!   `defaultErrnoRet`, which only applies to `defaultAction`); SCMP_ACT_TRACE
//!   uses `errnoRet` (default EPERM) as its message value;
//! - several `args` in one rule must all hold (AND), except that when two
//!   of them name the same argument index each becomes a rule of its own
//!   (OR), as runc does; several rules for one syscall are tried in profile
//!   order, the first unconditional one taking precedence over all others
//!   (as in libseccomp). Where conditional rules with *different* actions
//!   overlap, libseccomp's choice follows the shape of its decision tree
//!   (and it refuses some such profiles with EEXIST); ours is the first
//!   matching rule in profile order;
//! - on i386, rules for socket and SysV IPC calls also filter socketcall(2)
//!   and ipc(2) with arg0 == the subcall, as libseccomp does;
//! - comparisons are unsigned over 64 bits on x86_64 and over the low 32
//!   bits on i386 and x32 (libseccomp's argument width for those ABIs);
//! - syscalls numbered above the highest one the profile names (per
//!   architecture) return ENOSYS unless the default action allows them,
//!   runc's "-ENOSYS stub", so that programs fall back from syscalls newer
//!   than the profile instead of failing with EPERM. Like runc's stub it
//!   comes before the rules (which matters only for i386's socketcall and
//!   ipc).
//!
//! The unit tests check compiled programs in a BPF interpreter against a
//! direct evaluation of the profile and, when python3-seccomp is installed,
//! against libseccomp's programs for the same profiles.

mod bpf;
mod table;

pub use bpf::{compile, disassemble, Program, SockFilter};

use crate::error::Result;
use crate::json::Node;

/// AUDIT_ARCH_X86_64 (EM_X86_64 | 64BIT | LE).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// AUDIT_ARCH_I386 (EM_386 | LE).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 syscalls are x86_64 syscalls with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// SECCOMP_FILTER_FLAG_* values for seccomp(2).
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;

/// What the filter does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
}

impl Action {
    /// The SECCOMP_RET_* value the filter returns.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => 0x0000_0000,
            Action::KillProcess => 0x8000_0000,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | e as u32,
            Action::Trace(m) => 0x7ff0_0000 | m as u32,
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }

    /// Actions that let the syscall run (runc adds no ENOSYS stub then).
    fn permissive(self) -> bool {
        matches!(self, Action::Allow | Action::Log | Action::Trace(_))
    }
}

/// The x86 ABIs a filter can see on an x86_64 kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    I386,
    X32,
}

impl Arch {
    /// This ABI's number for a syscall name, if it has one (x32 numbers
    /// include [`X32_SYSCALL_BIT`]).
    pub fn syscall(self, name: &str) -> Option<u32> {
        Syscall::from_name(name)?.number(self)
    }

    /// Whether syscall arguments are compared over 64 bits (x86_64) or only
    /// their low 32 bits (i386, x32), as libseccomp does.
    fn wide_args(self) -> bool {
        self == Arch::X86_64
    }
}

/// A syscall the tables know, by its index in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Syscall(u16);

impl Syscall {
    pub fn from_name(name: &str) -> Option<Syscall> {
        let i = table::SYSCALLS.binary_search_by(|e| e.0.cmp(name)).ok()?;
        Some(Syscall(i as u16))
    }

    pub fn name(self) -> &'static str {
        table::SYSCALLS[self.0 as usize].0
    }

    /// Its number on an ABI, if that ABI has it (x32 numbers include
    /// [`X32_SYSCALL_BIT`]).
    pub fn number(self, arch: Arch) -> Option<u32> {
        let (_, x86_64, i386, x32) = table::SYSCALLS[self.0 as usize];
        let n = match arch {
            Arch::X86_64 => x86_64,
            Arch::I386 => i386,
            Arch::X32 => x32,
        };
        match (n, arch) {
            (table::NONE, _) => None,
            (n, Arch::X32) => Some(n as u32 | X32_SYSCALL_BIT),
            (n, _) => Some(n as u32),
        }
    }
}

/// i386's multiplexed calls: (name, socketcall(2) or ipc(2) number, the
/// subcall in arg0). Like libseccomp, a rule for one of these on i386 also
/// filters the multiplexer with `arg0 == subcall` when the call has no
/// direct number there or its direct number is in 359..=373 (socket) or
/// 393..=402 (SysV IPC).
const I386_MUX: &[(&str, u32, u32)] = &[
    ("accept", 102, 5),
    ("accept4", 102, 18),
    ("bind", 102, 2),
    ("connect", 102, 3),
    ("getpeername", 102, 7),
    ("getsockname", 102, 6),
    ("getsockopt", 102, 15),
    ("listen", 102, 4),
    ("msgctl", 117, 14),
    ("msgget", 117, 13),
    ("msgrcv", 117, 12),
    ("msgsnd", 117, 11),
    ("recvfrom", 102, 12),
    ("recvmmsg", 102, 19),
    ("recvmsg", 102, 17),
    ("semctl", 117, 3),
    ("semget", 117, 2),
    ("semop", 117, 1),
    ("semtimedop", 117, 4),
    ("sendmmsg", 102, 20),
    ("sendmsg", 102, 16),
    ("sendto", 102, 11),
    ("setsockopt", 102, 14),
    ("shmat", 117, 21),
    ("shmctl", 117, 24),
    ("shmdt", 117, 22),
    ("shmget", 117, 23),
    ("shutdown", 102, 13),
    ("socket", 102, 1),
    ("socketpair", 102, 8),
];

impl Syscall {
    /// On i386: the multiplexer number and subcall this syscall is also
    /// filtered as (see [`I386_MUX`]).
    pub(crate) fn i386_mux(self) -> Option<(u32, u32)> {
        match self.number(Arch::I386) {
            Some(n) if !(359..=373).contains(&n) && !(393..=402).contains(&n) => None,
            _ => {
                let i = I386_MUX.binary_search_by(|e| e.0.cmp(self.name())).ok()?;
                Some((I386_MUX[i].1, I386_MUX[i].2))
            }
        }
    }
}

/// `args` for the multiplexer: arg0 is the subcall (replacing a condition
/// on arg0, as libseccomp does).
pub(crate) fn mux_args(args: &[Arg], sub: u32) -> Vec<Arg> {
    let mut out = vec![Arg {
        index: 0,
        op: Op::Eq,
        value: sub as u64,
        value_two: 0,
    }];
    out.extend(args.iter().filter(|a| a.index != 0));
    out
}

/// A comparison operator of a rule argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

/// One argument condition: `args[index] <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arg {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

impl Arg {
    /// Evaluate on an argument value (64-bit unsigned semantics).
    pub fn holds(&self, arg: u64) -> bool {
        match self.op {
            Op::Ne => arg != self.value,
            Op::Lt => arg < self.value,
            Op::Le => arg <= self.value,
            Op::Eq => arg == self.value,
            Op::Ge => arg >= self.value,
            Op::Gt => arg > self.value,
            Op::MaskedEq => arg & self.value == self.value_two,
        }
    }
}

/// One rule: these syscalls, when all `args` hold, get `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The syscalls (names no table knows are dropped at parse).
    pub syscalls: Vec<Syscall>,
    pub action: Action,
    pub args: Vec<Arg>,
}

/// A parsed `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    /// The x86 ABIs filtered, sorted; always holds [`Arch::X86_64`].
    pub architectures: Vec<Arch>,
    /// SECCOMP_FILTER_FLAG_* bits for seccomp(2).
    pub flags: u32,
    pub rules: Vec<Rule>,
    /// Syscall names that no table knows; skipped, as runc does (with a
    /// debug log).
    pub unknown_syscalls: Vec<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            default_action: Action::Allow,
            architectures: vec![Arch::X86_64],
            flags: 0,
            rules: Vec::new(),
            unknown_syscalls: Vec::new(),
        }
    }
}

/// Architecture names libseccomp knows that can never appear on an x86_64
/// host: accepted and ignored.
const FOREIGN_ARCHES: &[&str] = &[
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// Parse the `linux.seccomp` node of config.json. Errors name the field,
/// e.g. `linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"`.
pub fn parse(node: &Node) -> Result<Profile> {
    node.object()?;
    let default_errno = node
        .get("defaultErrnoRet")?
        .map(|n| errno(&n))
        .transpose()?;
    let default_action = action(&node.need("defaultAction")?, default_errno)?;
    let mut profile = Profile {
        default_action,
        ..Profile::default()
    };
    if let Some(arches) = node.get("architectures")? {
        for item in arches.items()? {
            let arch = match item.str()? {
                "SCMP_ARCH_X86_64" | "SCMP_ARCH_NATIVE" => Arch::X86_64,
                "SCMP_ARCH_X86" => Arch::I386,
                "SCMP_ARCH_X32" => Arch::X32,
                name if FOREIGN_ARCHES.contains(&name) => continue,
                name => return Err(item.invalid(format!("unknown architecture {name:?}"))),
            };
            if !profile.architectures.contains(&arch) {
                profile.architectures.push(arch);
            }
        }
        profile.architectures.sort();
    }
    if let Some(flags) = node.get("flags")? {
        for item in flags.items()? {
            profile.flags |= match item.str()? {
                "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
                "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
                name => return Err(item.invalid(format!("unsupported flag {name:?}"))),
            };
        }
    }
    if let Some(rules) = node.get("syscalls")? {
        for item in rules.items()? {
            parse_rule(&item, &mut profile)?;
        }
    }
    Ok(profile)
}

fn parse_rule(item: &Node, profile: &mut Profile) -> Result<()> {
    item.object()?;
    let names_node = item.need("names")?;
    let mut names = Vec::new();
    for n in names_node.items()? {
        let name = n.str()?;
        if name.is_empty() {
            return Err(n.invalid("empty string is not a syscall name"));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(names_node.invalid("must name at least one syscall"));
    }
    let errno_ret = item.get("errnoRet")?.map(|n| errno(&n)).transpose()?;
    let action = action(&item.need("action")?, errno_ret)?;
    let mut args = Vec::new();
    if let Some(list) = item.get("args")? {
        for a in list.items()? {
            a.object()?;
            let index_node = a.need("index")?;
            let index = index_node.u32()?;
            if index > 5 {
                return Err(
                    index_node.invalid(format!("{index} is not an argument index (0 to 5)"))
                );
            }
            let op_node = a.need("op")?;
            let op = match op_node.str()? {
                "SCMP_CMP_NE" => Op::Ne,
                "SCMP_CMP_LT" => Op::Lt,
                "SCMP_CMP_LE" => Op::Le,
                "SCMP_CMP_EQ" => Op::Eq,
                "SCMP_CMP_GE" => Op::Ge,
                "SCMP_CMP_GT" => Op::Gt,
                "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
                other => return Err(op_node.invalid(format!("unknown operator {other:?}"))),
            };
            let value = a.get("value")?.map_or(Ok(0), |n| n.u64())?;
            let value_two = a.get("valueTwo")?.map_or(Ok(0), |n| n.u64())?;
            args.push(Arg {
                index: index as u8,
                op,
                value,
                value_two,
            });
        }
    }
    let mut known = Vec::new();
    for name in names {
        if let Some(sc) = Syscall::from_name(name) {
            known.push(sc);
        } else if !profile.unknown_syscalls.iter().any(|u| u == name) {
            profile.unknown_syscalls.push(name.to_string());
        }
    }
    if known.is_empty() {
        return Ok(());
    }
    // runc: when two conditions test the same argument, each condition
    // becomes a rule of its own.
    let repeated = (0..args.len()).any(|i| args[..i].iter().any(|b| b.index == args[i].index));
    if repeated {
        for arg in args {
            profile.rules.push(Rule {
                syscalls: known.clone(),
                action,
                args: vec![arg],
            });
        }
    } else {
        profile.rules.push(Rule {
            syscalls: known,
            action,
            args,
        });
    }
    Ok(())
}

fn errno(n: &Node) -> Result<u16> {
    let v = n.u32()?;
    u16::try_from(v).map_err(|_| n.invalid(format!("{v} is out of range for an errno")))
}

fn action(n: &Node, errno_ret: Option<u16>) -> Result<Action> {
    Ok(match n.str()? {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_ERRNO" => Action::Errno(errno_ret.unwrap_or(libc::EPERM as u16)),
        "SCMP_ACT_TRACE" => Action::Trace(errno_ret.unwrap_or(libc::EPERM as u16)),
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(n.invalid("SCMP_ACT_NOTIFY is not supported by this build"))
        }
        other => return Err(n.invalid(format!("unknown action {other:?}"))),
    })
}

#[cfg(test)]
mod tests;
