//! The v1 devices cgroup as the kernel keeps it, and the writes that take
//! one from what it allows now to what it should allow.
//!
//! The kernel keeps a policy for every device (allow or deny) and a set of
//! exceptions, each a group of devices (`c 1:3`, `b 8:*`) with the access
//! bits for which the policy is reversed. Writing `a` to devices.allow or
//! devices.deny sets the policy and empties the set (refused with EINVAL
//! once the cgroup has children). A line written to the file opposite the
//! policy adds bits to the exception naming exactly those devices; one
//! written to the policy's own file takes bits from exactly that exception,
//! never from a wider one. `devices.list` shows the exceptions under a deny
//! policy, and only `a *:* rwm` under an allow policy.
//!
//! A config's rule list is read for what it means rather than replayed: a
//! rule that gives a group of devices back to the policy takes the bits
//! from every exception inside the group, and one that would have to cut a
//! hole in a wider exception cannot be expressed and is refused. The writes
//! then follow from the difference of two states, gains before losses, so
//! that moving an exception from `c 4:1` to `c 4:*` never denies 4:1.

use crate::error::Result;
use crate::oci::resources::{self, DeviceRule};
use std::collections::BTreeMap;
use std::fmt;

/// What the cgroup does with a device no exception names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Allow,
    Deny,
}

impl Policy {
    /// The file that moves devices towards this policy.
    fn file(self) -> &'static str {
        match self {
            Policy::Allow => "devices.allow",
            Policy::Deny => "devices.deny",
        }
    }
    fn opposite(self) -> Policy {
        match self {
            Policy::Allow => Policy::Deny,
            Policy::Deny => Policy::Allow,
        }
    }
}

/// A group of devices: a type (`b` or `c`) and numbers, None for any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Devices {
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
}

impl Devices {
    /// Every device of `other` is one of ours.
    fn covers(&self, other: &Devices) -> bool {
        let within = |ours: Option<i64>, theirs: Option<i64>| ours.is_none() || ours == theirs;
        self.kind == other.kind
            && within(self.major, other.major)
            && within(self.minor, other.minor)
    }

    /// Some device is both ours and `other`'s.
    fn overlaps(&self, other: &Devices) -> bool {
        let meet = |a: Option<i64>, b: Option<i64>| a.is_none() || b.is_none() || a == b;
        self.kind == other.kind && meet(self.major, other.major) && meet(self.minor, other.minor)
    }
}

impl fmt::Display for Devices {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let number = |n: Option<i64>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{}",
            self.kind,
            number(self.major),
            number(self.minor)
        )
    }
}

/// Access bits (resources::ACCESS_*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Access(u8);

impl Access {
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn without(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }
    fn shares(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (bit, letter) in [
            (resources::ACCESS_READ, 'r'),
            (resources::ACCESS_WRITE, 'w'),
            (resources::ACCESS_MKNOD, 'm'),
        ] {
            if self.0 & bit != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// What a v1 devices cgroup allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCgroup {
    policy: Policy,
    exceptions: BTreeMap<Devices, Access>,
}

/// One line for devices.allow or devices.deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: &'static str,
    pub line: String,
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} < {}", self.file, self.line)
    }
}

/// The writes that take a cgroup from one state to another, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// The first write sets the policy (`a`), emptying the exceptions:
    /// the kernel refuses it while the cgroup has children.
    pub resets: bool,
}

impl DeviceCgroup {
    fn with_policy(policy: Policy) -> Self {
        DeviceCgroup {
            policy,
            exceptions: BTreeMap::new(),
        }
    }

    /// What `rules` mean, read in order from "deny everything".
    pub fn from_rules(rules: &[DeviceRule]) -> Result<Self> {
        let mut cgroup = Self::with_policy(Policy::Deny);
        for rule in rules {
            cgroup.apply(rule)?;
        }
        Ok(cgroup)
    }

    /// What a cgroup's `devices.list` shows. Under an allow policy that is
    /// only the policy: its exceptions cannot be read back.
    pub fn from_list(list: &str) -> Result<Self> {
        let mut cgroup = Self::with_policy(Policy::Deny);
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || crate::err!("devices.list: unexpected line {line:?}");
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [kind, numbers, letters] = fields[..] else {
                return Err(bad());
            };
            let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
            let number = |n: &str| match n {
                "*" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            };
            let devices = Devices {
                kind: match kind {
                    "a" => {
                        cgroup = Self::with_policy(Policy::Allow);
                        continue;
                    }
                    "b" => 'b',
                    "c" => 'c',
                    _ => return Err(bad()),
                },
                major: number(major)?,
                minor: number(minor)?,
            };
            cgroup.add_exception(devices, Access(resources::access_bits(letters)));
        }
        Ok(cgroup)
    }

    /// One rule of a config.
    fn apply(&mut self, rule: &DeviceRule) -> Result<()> {
        let policy = if rule.allow {
            Policy::Allow
        } else {
            Policy::Deny
        };
        if rule.kind == 'a' {
            *self = Self::with_policy(policy);
            return Ok(());
        }
        let devices = Devices {
            kind: rule.kind,
            major: rule.major,
            minor: rule.minor,
        };
        let access = Access(rule.access_bits());
        if policy != self.policy {
            self.add_exception(devices, access);
            return Ok(());
        }
        // Back to the policy: every exception inside the group loses these
        // bits; one that reaches outside it would keep part of the group.
        let keeping = self.exceptions.iter().find(|(other, bits)| {
            bits.shares(access) && other.overlaps(&devices) && !devices.covers(other)
        });
        if let Some((other, bits)) = keeping {
            let verb = if rule.allow { "allow" } else { "deny" };
            crate::bail!(
                "device rule `{verb} {devices} {access}`: a v1 devices cgroup cannot take \
                 {devices} out of the wider exception `{other} {bits}` before it"
            );
        }
        for (other, bits) in self.exceptions.iter_mut() {
            if devices.covers(other) {
                *bits = bits.without(access);
            }
        }
        self.exceptions.retain(|_, bits| !bits.is_empty());
        Ok(())
    }

    fn add_exception(&mut self, devices: Devices, access: Access) {
        if !access.is_empty() {
            let bits = self.exceptions.entry(devices).or_default();
            bits.0 |= access.0;
        }
    }

    /// Whether `devices.list` shows all of this (a deny policy).
    pub fn is_listed_whole(&self) -> bool {
        self.policy == Policy::Deny
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The writes that take a cgroup allowing `self` to allow `target`.
    ///
    /// Under an allow policy on both sides, with no exception wanted,
    /// nothing is written: the exceptions the cgroup may have (hidden from
    /// devices.list) could only deny more, and a reset would be refused
    /// anyway once the container has made sub-cgroups. Any other start
    /// from an allow policy, or a change of policy, resets first.
    pub fn plan_to(&self, target: &DeviceCgroup) -> Plan {
        let empty = BTreeMap::new();
        let (have, resets) = match (self.policy, target.policy) {
            (Policy::Allow, Policy::Allow) if target.exceptions.is_empty() => {
                return Plan::default()
            }
            (Policy::Deny, Policy::Deny) => (&self.exceptions, false),
            _ => (&empty, true),
        };
        let mut writes = Vec::new();
        if resets {
            writes.push(Write {
                file: target.policy.file(),
                line: "a".into(),
            });
        }
        let mut write = |policy: Policy, devices: &Devices, access: Access| {
            if !access.is_empty() {
                writes.push(Write {
                    file: policy.file(),
                    line: format!("{devices} {access}"),
                });
            }
        };
        let wanted = |set: &BTreeMap<Devices, Access>, devices| {
            set.get(devices).copied().unwrap_or_default()
        };
        // Gains first: the kernel takes bits only from the exception named
        // exactly, so a wider one added first covers the narrower one's
        // devices while it goes.
        for (devices, want) in &target.exceptions {
            write(
                target.policy.opposite(),
                devices,
                want.without(wanted(have, devices)),
            );
        }
        for (devices, had) in have {
            write(
                target.policy,
                devices,
                had.without(wanted(&target.exceptions, devices)),
            );
        }
        Plan { writes, resets }
    }
}

impl fmt::Display for DeviceCgroup {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.policy {
            Policy::Allow => write!(f, "allow all")?,
            Policy::Deny => write!(f, "deny all")?,
        }
        if !self.exceptions.is_empty() {
            write!(f, " but {} exception(s)", self.exceptions.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::resources::{access_bits, default_device_rules};

    fn r(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, a: &str) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: a.into(),
        }
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.writes
            .iter()
            .map(|w| {
                let verb = if w.file == "devices.allow" {
                    "allow"
                } else {
                    "deny"
                };
                format!("{verb} {}", w.line)
            })
            .collect()
    }

    fn container_rules(extra: &[DeviceRule]) -> Vec<DeviceRule> {
        let mut rules = vec![r(false, 'a', None, None, "rwm")];
        rules.extend_from_slice(extra);
        rules.extend(default_device_rules());
        rules
    }

    fn privileged_rules() -> Vec<DeviceRule> {
        let mut rules = vec![r(true, 'a', None, None, "rwm")];
        rules.extend(default_device_rules());
        rules
    }

    /// What the kernel would list for `cgroup`.
    fn list_of(cgroup: &DeviceCgroup) -> String {
        if cgroup.policy == Policy::Allow {
            return "a *:* rwm\n".into();
        }
        cgroup
            .exceptions
            .iter()
            .map(|(devices, bits)| format!("{devices} {bits}\n"))
            .collect()
    }

    /// `cgroup` after the kernel took `plan`'s writes (its semantics, as
    /// the module's comment gives them), to check that a plan arrives.
    fn kernel_after(cgroup: &DeviceCgroup, plan: &Plan) -> DeviceCgroup {
        let mut cg = cgroup.clone();
        for w in &plan.writes {
            let policy = if w.file == "devices.allow" {
                Policy::Allow
            } else {
                Policy::Deny
            };
            if w.line == "a" {
                cg = DeviceCgroup::with_policy(policy);
                continue;
            }
            let parsed = DeviceCgroup::from_list(&w.line).unwrap();
            let (devices, bits) = parsed.exceptions.into_iter().next().unwrap();
            if policy != cg.policy {
                cg.add_exception(devices, bits);
            } else if let Some(have) = cg.exceptions.get_mut(&devices) {
                *have = have.without(bits);
                if have.is_empty() {
                    cg.exceptions.remove(&devices);
                }
            }
        }
        cg
    }

    #[test]
    fn unknown_access_letters_are_ignored() {
        assert_eq!(
            access_bits("rwa"),
            resources::ACCESS_READ | resources::ACCESS_WRITE
        );
        assert_eq!(
            access_bits("mxr"),
            resources::ACCESS_READ | resources::ACCESS_MKNOD
        );
        let a = DeviceCgroup::from_rules(&[r(true, 'c', Some(4), Some(1), "rwa")]).unwrap();
        assert_eq!(list_of(&a), "c 4:1 rw\n");
        // Letters that mean nothing make a rule that does nothing.
        let a = DeviceCgroup::from_rules(&[r(true, 'c', Some(4), Some(1), "xa")]).unwrap();
        assert_eq!(a, DeviceCgroup::with_policy(Policy::Deny));
    }

    #[test]
    fn a_fresh_cgroup_is_reset_then_given_its_exceptions() {
        let fresh = DeviceCgroup::from_list("a *:* rwm\n").unwrap();
        assert_eq!(fresh.policy(), Policy::Allow);
        let target = DeviceCgroup::from_rules(&container_rules(&[])).unwrap();
        let plan = fresh.plan_to(&target);
        assert!(plan.resets);
        let t = lines(&plan);
        assert_eq!(t[0], "deny a");
        assert!(t.contains(&"allow c 1:3 rwm".to_string()), "{t:?}");
        assert_eq!(t.len(), 1 + 11, "{t:?}");
        assert_eq!(kernel_after(&fresh, &plan), target);
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        let target = DeviceCgroup::from_rules(&container_rules(&[])).unwrap();
        let current = DeviceCgroup::from_list(&list_of(&target)).unwrap();
        assert_eq!(current, target);
        assert_eq!(current.plan_to(&target), Plan::default());
    }

    #[test]
    fn adding_and_removing_a_few_touches_only_those() {
        let before = DeviceCgroup::from_rules(&container_rules(&[r(
            true,
            'c',
            Some(10),
            Some(237),
            "rwm",
        )]))
        .unwrap();
        let after = DeviceCgroup::from_rules(&container_rules(&[
            r(true, 'c', Some(4), Some(1), "rw"),
            r(true, 'b', Some(8), None, "r"),
        ]))
        .unwrap();
        let current = DeviceCgroup::from_list(&list_of(&before)).unwrap();
        let plan = current.plan_to(&after);
        assert!(!plan.resets);
        assert_eq!(
            lines(&plan),
            ["allow b 8:* r", "allow c 4:1 rw", "deny c 10:237 rwm"]
        );
        assert_eq!(kernel_after(&current, &plan), after);
        // Narrowing an exception takes back only the letters dropped.
        let narrower =
            DeviceCgroup::from_rules(&container_rules(&[r(true, 'c', Some(10), Some(237), "r")]))
                .unwrap();
        assert_eq!(lines(&current.plan_to(&narrower)), ["deny c 10:237 wm"]);
    }

    #[test]
    fn a_wider_exception_is_added_before_the_narrower_one_goes() {
        let before =
            DeviceCgroup::from_rules(&container_rules(&[r(true, 'c', Some(4), Some(1), "rw")]))
                .unwrap();
        let after =
            DeviceCgroup::from_rules(&container_rules(&[r(true, 'c', Some(4), None, "rw")]))
                .unwrap();
        let plan = before.plan_to(&after);
        assert_eq!(lines(&plan), ["allow c 4:* rw", "deny c 4:1 rw"]);
        assert_eq!(kernel_after(&before, &plan), after);
        // And the way back.
        let plan = after.plan_to(&before);
        assert_eq!(lines(&plan), ["allow c 4:1 rw", "deny c 4:* rw"]);
        assert_eq!(kernel_after(&after, &plan), before);
    }

    #[test]
    fn a_change_of_policy_resets() {
        let current = DeviceCgroup::from_rules(&container_rules(&[])).unwrap();
        let target = DeviceCgroup::from_rules(&[
            r(true, 'a', None, None, "rwm"),
            r(false, 'c', Some(1), Some(11), "rwm"),
        ])
        .unwrap();
        let plan = current.plan_to(&target);
        assert!(plan.resets);
        assert_eq!(lines(&plan), ["allow a", "deny c 1:11 rwm"]);
        let plan = target.plan_to(&current);
        assert!(plan.resets);
        assert_eq!(plan.writes[0].line, "a");
        assert_eq!(plan.writes[0].file, "devices.deny");
    }

    #[test]
    fn allow_all_to_allow_all_writes_nothing() {
        // A privileged container's cgroup, as devices.list shows it, given
        // its rules again (containerd's CRI sends them on every update).
        let current = DeviceCgroup::from_list("a *:* rwm\n").unwrap();
        let target = DeviceCgroup::from_rules(&privileged_rules()).unwrap();
        assert_eq!(target.policy(), Policy::Allow);
        assert_eq!(current.plan_to(&target), Plan::default());
        // With an exception wanted, the hidden ones must go: a reset.
        let mut narrower = privileged_rules();
        narrower.push(r(false, 'c', Some(1), Some(1), "rwm"));
        let target = DeviceCgroup::from_rules(&narrower).unwrap();
        assert!(current.plan_to(&target).resets);
    }

    #[test]
    fn a_rule_back_to_the_policy_takes_bits_from_the_exceptions_inside_it() {
        let cg = DeviceCgroup::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', Some(1), Some(3), "rwm"),
            r(true, 'c', Some(1), Some(5), "r"),
            r(false, 'c', Some(1), None, "w"),
        ])
        .unwrap();
        assert_eq!(list_of(&cg), "c 1:3 rm\nc 1:5 r\n");
    }

    #[test]
    fn a_hole_in_a_wider_exception_is_refused() {
        let e = DeviceCgroup::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', Some(1), None, "rw"),
            r(false, 'c', Some(1), Some(3), "w"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "device rule `deny c 1:3 w`: a v1 devices cgroup cannot take c 1:3 out of \
             the wider exception `c 1:* rw` before it"
        );
        // An exception that only crosses the group is as wide.
        DeviceCgroup::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', None, Some(3), "r"),
            r(false, 'c', Some(1), None, "r"),
        ])
        .unwrap_err();
        // A deny that does not overlap the wider exception's letters is fine.
        DeviceCgroup::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', None, None, "m"),
            r(false, 'c', Some(1), Some(3), "rw"),
        ])
        .unwrap();
    }
}
