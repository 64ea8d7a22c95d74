//! What a cgroup v1 devices controller allows, worked out from rule lists
//! and from `devices.list`, and the fewest rules that take a cgroup from
//! what it allows to what it should: a running container must not lose
//! /dev/null for a moment because `update` wrote "deny all" first.
//!
//! The model is the kernel's: a default (allow or deny everything) and
//! exceptions, each a (type, major, minor) with a set of r/w/m; a rule of
//! type `a` resets both. Letters other than r, w and m in a rule's access
//! are ignored, as runc ignores them ("rwa" is "rw").

use crate::error::Result;
use crate::oci::resources::DeviceRule;
use std::collections::BTreeMap;

const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;

/// The r/w/m bits of an access string; other letters count for nothing.
pub fn access_bits(access: &str) -> u8 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => 0,
        }
    })
}

fn access_string(bits: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Which devices an exception is about: type `b` or `c`, None = any.
type Device = (char, Option<i64>, Option<i64>);

/// What a devices cgroup allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceAccess {
    /// Everything is allowed except the exceptions (else: denied except).
    default_allow: bool,
    exceptions: BTreeMap<Device, u8>,
}

impl DeviceAccess {
    /// The access `rules` give a cgroup that starts denying everything.
    pub fn from_rules(rules: &[DeviceRule]) -> Result<Self> {
        let mut access = DeviceAccess::default();
        for rule in rules {
            access.apply(rule)?;
        }
        Ok(access)
    }

    /// What a v1 cgroup's `devices.list` says it allows. In allow-all mode
    /// the file shows only `a *:* rwm`: the deny exceptions, if any, cannot
    /// be known.
    pub fn from_list(list: &str) -> Result<Self> {
        let mut access = DeviceAccess::default();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || crate::err!("devices.list: unexpected line {line:?}");
            let mut fields = line.split_whitespace();
            let (Some(kind), Some(numbers), Some(perms)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
            let number = |n: &str| -> Result<Option<i64>> {
                if n == "*" {
                    Ok(None)
                } else {
                    n.parse().map(Some).map_err(|_| bad())
                }
            };
            let kind = match kind {
                "a" => 'a',
                "b" => 'b',
                "c" => 'c',
                _ => return Err(bad()),
            };
            access.apply(&DeviceRule {
                allow: true,
                kind,
                major: number(major)?,
                minor: number(minor)?,
                access: perms.to_string(),
            })?;
        }
        Ok(access)
    }

    /// One rule, as the kernel applies it to a v1 cgroup.
    pub fn apply(&mut self, rule: &DeviceRule) -> Result<()> {
        if rule.kind == 'a' {
            *self = DeviceAccess {
                default_allow: rule.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        }
        let device = (rule.kind, rule.major, rule.minor);
        let bits = access_bits(&rule.access);
        if rule.allow != self.default_allow {
            if bits != 0 {
                *self.exceptions.entry(device).or_insert(0) |= bits;
            }
            return Ok(());
        }
        // Taking an exception back: the kernel only takes back an exception
        // for exactly this device, and would silently leave a wildcard one
        // that covers it in force. Refuse that, as runc does.
        let (kind, major, minor) = device;
        for wider in [(kind, None, minor), (kind, major, None), (kind, None, None)] {
            if wider == device {
                continue;
            }
            if let Some(wide_bits) = self.exceptions.get(&wider) {
                if wide_bits & bits != 0 {
                    crate::bail!(
                        "device rule {:?}: a v1 devices cgroup cannot make an exception \
                         inside the wider rule {:?} {}",
                        rule.v1_line(),
                        wider,
                        access_string(*wide_bits)
                    );
                }
            }
        }
        if let Some(have) = self.exceptions.get_mut(&device) {
            *have &= !bits;
            if *have == 0 {
                self.exceptions.remove(&device);
            }
        }
        Ok(())
    }

    /// The fewest rules that take a cgroup allowing `self` to `target`.
    /// Only a change of default, or a start in allow-all mode (whose deny
    /// exceptions cannot be read back), needs the disruptive reset.
    pub fn transition(&self, target: &DeviceAccess) -> Vec<DeviceRule> {
        let rule = |(kind, major, minor): Device, bits: u8, allow: bool| DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access_string(bits),
        };
        let mut rules = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            rules.push(DeviceRule {
                allow: target.default_allow,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            });
            &empty
        } else {
            &self.exceptions
        };
        for (device, bits) in old {
            let dropped = bits & !target.exceptions.get(device).copied().unwrap_or(0);
            if dropped != 0 {
                rules.push(rule(*device, dropped, target.default_allow));
            }
        }
        for (device, bits) in &target.exceptions {
            let gained = bits & !old.get(device).copied().unwrap_or(0);
            if gained != 0 {
                rules.push(rule(*device, gained, !target.default_allow));
            }
        }
        rules
    }

    /// Allow-all mode (whose `devices.list` cannot show its exceptions).
    pub fn allows_by_default(&self) -> bool {
        self.default_allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::resources::default_device_rules;

    fn r(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, a: &str) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: a.into(),
        }
    }

    fn lines(rules: &[DeviceRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{} {}", if r.allow { "allow" } else { "deny" }, r.v1_line()))
            .collect()
    }

    fn container_rules(extra: &[DeviceRule]) -> Vec<DeviceRule> {
        let mut rules = vec![r(false, 'a', None, None, "rwm")];
        rules.extend_from_slice(extra);
        rules.extend(default_device_rules());
        rules
    }

    /// What the kernel would list for `access` (allow-deny mode only).
    fn list_of(access: &DeviceAccess) -> String {
        let n = |x: Option<i64>| x.map_or("*".into(), |x| x.to_string());
        access
            .exceptions
            .iter()
            .map(|((k, ma, mi), bits)| {
                format!("{k} {}:{} {}\n", n(*ma), n(*mi), access_string(*bits))
            })
            .collect()
    }

    #[test]
    fn unknown_access_letters_are_ignored() {
        assert_eq!(access_bits("rwa"), READ | WRITE);
        assert_eq!(access_bits("mxr"), READ | MKNOD);
        let a = DeviceAccess::from_rules(&[r(true, 'c', Some(4), Some(1), "rwa")]).unwrap();
        assert_eq!(list_of(&a), "c 4:1 rw\n");
        // Letters that mean nothing make a rule that does nothing.
        let a = DeviceAccess::from_rules(&[r(true, 'c', Some(4), Some(1), "xa")]).unwrap();
        assert_eq!(a, DeviceAccess::default());
    }

    #[test]
    fn a_fresh_cgroup_is_reset_then_given_its_exceptions() {
        let fresh = DeviceAccess::from_list("a *:* rwm\n").unwrap();
        assert!(fresh.allows_by_default());
        let target = DeviceAccess::from_rules(&container_rules(&[])).unwrap();
        let t = lines(&fresh.transition(&target));
        assert_eq!(t[0], "deny a");
        assert!(t.contains(&"allow c 1:3 rwm".to_string()), "{t:?}");
        assert_eq!(t.len(), 1 + 11, "{t:?}");
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        let target = DeviceAccess::from_rules(&container_rules(&[])).unwrap();
        let current = DeviceAccess::from_list(&list_of(&target)).unwrap();
        assert_eq!(current, target);
        assert!(current.transition(&target).is_empty());
    }

    #[test]
    fn adding_and_removing_a_few_touches_only_those() {
        let before = DeviceAccess::from_rules(&container_rules(&[r(
            true,
            'c',
            Some(10),
            Some(237),
            "rwm",
        )]))
        .unwrap();
        let after = DeviceAccess::from_rules(&container_rules(&[
            r(true, 'c', Some(4), Some(1), "rw"),
            r(true, 'b', Some(8), None, "r"),
        ]))
        .unwrap();
        let current = DeviceAccess::from_list(&list_of(&before)).unwrap();
        assert_eq!(
            lines(&current.transition(&after)),
            ["deny c 10:237 rwm", "allow b 8:* r", "allow c 4:1 rw"]
        );
        // Narrowing an exception takes back only the letters dropped.
        let narrower =
            DeviceAccess::from_rules(&container_rules(&[r(true, 'c', Some(10), Some(237), "r")]))
                .unwrap();
        assert_eq!(lines(&current.transition(&narrower)), ["deny c 10:237 wm"]);
    }

    #[test]
    fn a_change_of_default_resets() {
        let current = DeviceAccess::from_rules(&container_rules(&[])).unwrap();
        let target = DeviceAccess::from_rules(&[
            r(true, 'a', None, None, "rwm"),
            r(false, 'c', Some(1), Some(11), "rwm"),
        ])
        .unwrap();
        assert_eq!(
            lines(&current.transition(&target)),
            ["allow a", "deny c 1:11 rwm"]
        );
    }

    #[test]
    fn a_hole_in_a_wildcard_exception_is_refused() {
        let e = DeviceAccess::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', Some(1), None, "rw"),
            r(false, 'c', Some(1), Some(3), "w"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("wider rule"), "{e}");
        // A deny that does not overlap the wildcard's letters is fine.
        DeviceAccess::from_rules(&[
            r(false, 'a', None, None, "rwm"),
            r(true, 'c', None, None, "m"),
            r(false, 'c', Some(1), Some(3), "rw"),
        ])
        .unwrap();
    }
}
