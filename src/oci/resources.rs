//! `linux.resources` (also the JSON `runc update --resources` reads).

use crate::error::Result;
use crate::json::Node;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub memory: Memory,
    pub cpu: Cpu,
    /// pids.limit: None = not set; Some(n <= 0) = unlimited.
    pub pids_limit: Option<i64>,
    pub block_io: BlockIo,
    pub hugepage_limits: Vec<(String, u64)>,
    pub network_class_id: Option<u32>,
    pub network_priorities: Vec<(String, u32)>,
    pub devices: Vec<DeviceRule>,
    /// linux.resources.unified: raw cgroup v2 files.
    pub unified: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    /// memory + swap, as OCI defines it (-1 = unlimited).
    pub swap: Option<i64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    /// (major, minor, weight, leaf weight)
    pub weight_device: Vec<(i64, i64, Option<u16>, Option<u16>)>,
    pub throttle_read_bps: Vec<Throttle>,
    pub throttle_write_bps: Vec<Throttle>,
    pub throttle_read_iops: Vec<Throttle>,
    pub throttle_write_iops: Vec<Throttle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// One device cgroup rule; None fields are wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a', 'c' or 'b'
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// Device access bits as the kernel numbers them, in the v1 devices
/// cgroup and in the v2 device program alike.
pub const ACCESS_MKNOD: u8 = 1;
pub const ACCESS_READ: u8 = 2;
pub const ACCESS_WRITE: u8 = 4;

/// The access bits of `letters`. Letters other than r, w and m count for
/// nothing, as runc ignores them ("rwa" is "rw").
pub fn access_bits(letters: &str) -> u8 {
    letters.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACCESS_READ,
            'w' => ACCESS_WRITE,
            'm' => ACCESS_MKNOD,
            _ => 0,
        }
    })
}

impl DeviceRule {
    /// The rule's access bits (see [`access_bits`]).
    pub fn access_bits(&self) -> u8 {
        access_bits(&self.access)
    }

    /// The line the v1 devices.allow/devices.deny files take: `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        if self.kind == 'a' {
            return "a".to_string();
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

fn opt_i64(n: &Node, k: &str) -> Result<Option<i64>> {
    n.get(k)?.map(|v| v.i64()).transpose()
}
fn opt_u64(n: &Node, k: &str) -> Result<Option<u64>> {
    n.get(k)?.map(|v| v.u64()).transpose()
}
fn opt_u16(n: &Node, k: &str) -> Result<Option<u16>> {
    match n.get(k)? {
        Some(v) => {
            let x = v.u64()?;
            u16::try_from(x)
                .map(Some)
                .map_err(|_| v.invalid(format!("{x} is out of range")))
        }
        None => Ok(None),
    }
}

fn throttles(n: &Node, k: &str) -> Result<Vec<Throttle>> {
    let Some(list) = n.get(k)? else {
        return Ok(Vec::new());
    };
    list.items()?
        .iter()
        .map(|t| {
            Ok(Throttle {
                major: t.need("major")?.i64()?,
                minor: t.need("minor")?.i64()?,
                rate: t.need("rate")?.u64()?,
            })
        })
        .collect()
}

/// Parse a `resources` object (of config.json, or of `update`'s file).
pub fn parse(r: &Node) -> Result<Resources> {
    r.object()?;
    let mut res = Resources::default();
    if let Some(m) = r.get("memory")? {
        res.memory = Memory {
            limit: opt_i64(&m, "limit")?,
            reservation: opt_i64(&m, "reservation")?,
            swap: opt_i64(&m, "swap")?,
            swappiness: opt_u64(&m, "swappiness")?,
            disable_oom_killer: m.get("disableOOMKiller")?.map(|v| v.bool()).transpose()?,
        };
        if let Some(s) = res.memory.swappiness.filter(|s| *s > 100) {
            return Err(m
                .need("swappiness")?
                .invalid(format!("{s} is not between 0 and 100")));
        }
    }
    if let Some(c) = r.get("cpu")? {
        res.cpu = Cpu {
            shares: opt_u64(&c, "shares")?,
            quota: opt_i64(&c, "quota")?,
            period: opt_u64(&c, "period")?,
            realtime_runtime: opt_i64(&c, "realtimeRuntime")?,
            realtime_period: opt_u64(&c, "realtimePeriod")?,
            cpus: c
                .get("cpus")?
                .map(|v| v.string())
                .transpose()?
                .filter(|s| !s.is_empty()),
            mems: c
                .get("mems")?
                .map(|v| v.string())
                .transpose()?
                .filter(|s| !s.is_empty()),
        };
    }
    if let Some(p) = r.get("pids")? {
        res.pids_limit = Some(p.need("limit")?.i64()?);
    }
    if let Some(b) = r.get("blockIO")? {
        res.block_io.weight = opt_u16(&b, "weight")?;
        res.block_io.leaf_weight = opt_u16(&b, "leafWeight")?;
        if let Some(list) = b.get("weightDevice")? {
            for d in list.items()? {
                res.block_io.weight_device.push((
                    d.need("major")?.i64()?,
                    d.need("minor")?.i64()?,
                    opt_u16(&d, "weight")?,
                    opt_u16(&d, "leafWeight")?,
                ));
            }
        }
        res.block_io.throttle_read_bps = throttles(&b, "throttleReadBpsDevice")?;
        res.block_io.throttle_write_bps = throttles(&b, "throttleWriteBpsDevice")?;
        res.block_io.throttle_read_iops = throttles(&b, "throttleReadIOPSDevice")?;
        res.block_io.throttle_write_iops = throttles(&b, "throttleWriteIOPSDevice")?;
    }
    if let Some(h) = r.get("hugepageLimits")? {
        for item in h.items()? {
            res.hugepage_limits
                .push((item.need("pageSize")?.string()?, item.need("limit")?.u64()?));
        }
    }
    if let Some(n) = r.get("network")? {
        res.network_class_id = n.get("classID")?.map(|v| v.u32()).transpose()?;
        if let Some(prios) = n.get("priorities")? {
            for p in prios.items()? {
                res.network_priorities
                    .push((p.need("name")?.string()?, p.need("priority")?.u32()?));
            }
        }
    }
    if let Some(d) = r.get("devices")? {
        for rule in d.items()? {
            let kind = match rule.get("type")? {
                None => 'a',
                Some(t) => match t.str()? {
                    "a" | "" => 'a',
                    "c" => 'c',
                    "b" => 'b',
                    other => return Err(t.invalid(format!("unknown device type {other:?}"))),
                },
            };
            let access = rule
                .get("access")?
                .map(|v| v.string())
                .transpose()?
                .unwrap_or_else(|| "rwm".into());
            // Letters other than r, w and m are ignored, as runc ignores
            // them (it takes "rwa" as "rw"); an empty access is refused, as
            // runc refuses it.
            if access.is_empty() {
                return Err(rule.invalid("access \"\": give letters of rwm"));
            }
            res.devices.push(DeviceRule {
                allow: rule.need("allow")?.bool()?,
                kind,
                major: opt_i64(&rule, "major")?.filter(|n| *n >= 0),
                minor: opt_i64(&rule, "minor")?.filter(|n| *n >= 0),
                access,
            });
        }
    }
    if let Some(u) = r.get("unified")? {
        res.unified = u.string_map()?;
    }
    if let Some((keys, why)) = res.impossible() {
        let mut node = r.need(keys[0])?;
        for k in &keys[1..] {
            node = node.need(k)?;
        }
        return Err(node.invalid(why));
    }
    Ok(res)
}

/// The kernel's bounds on the CFS period and the smallest quota (1 ms).
const CFS_PERIOD_US: std::ops::RangeInclusive<u64> = 1000..=1_000_000;
const CFS_MIN_QUOTA_US: i64 = 1000;

impl Resources {
    /// Refuse values no kernel takes, or that would silently become other
    /// values (a negative limit read as "no limit", memory+swap below
    /// memory clamped to no swap): an error naming the field, under `at`
    /// (e.g. `linux.resources`; "" for the fields alone).
    pub fn validate(&self, at: &str) -> Result<()> {
        match self.impossible() {
            None => Ok(()),
            Some((keys, why)) => {
                let field = keys.join(".");
                Err(crate::error::Error::of(
                    crate::error::Kind::InvalidArgument,
                    if at.is_empty() {
                        format!("{field}: {why}")
                    } else {
                        format!("{at}.{field}: {why}")
                    },
                ))
            }
        }
    }

    /// The first impossible value: its JSON keys and why.
    fn impossible(&self) -> Option<(Vec<&'static str>, String)> {
        let m = &self.memory;
        let c = &self.cpu;
        let neg = |v: Option<i64>| v.filter(|v| *v < -1);
        let negative = |v: i64| format!("{v} is negative (only -1, no limit, is allowed)");
        for (key, v) in [
            ("limit", m.limit),
            ("reservation", m.reservation),
            ("swap", m.swap),
        ] {
            if let Some(v) = neg(v) {
                return Some((vec!["memory", key], negative(v)));
            }
        }
        if let (Some(limit), Some(swap)) = (m.limit, m.swap) {
            if limit > 0 && swap > 0 && swap < limit {
                return Some((
                    vec!["memory", "swap"],
                    format!("memory+swap ({swap}) is less than memory.limit ({limit})"),
                ));
            }
            if limit == -1 && swap > 0 {
                return Some((
                    vec!["memory", "swap"],
                    format!("memory+swap ({swap}) is limited but memory.limit is not (-1)"),
                ));
            }
        }
        if let Some(q) = neg(c.quota) {
            return Some((vec!["cpu", "quota"], negative(q)));
        }
        if let Some(q) = c.quota.filter(|q| (1..CFS_MIN_QUOTA_US).contains(q)) {
            return Some((
                vec!["cpu", "quota"],
                format!("{q} is below the kernel's minimum of {CFS_MIN_QUOTA_US} (1 ms)"),
            ));
        }
        if let Some(p) = c.period.filter(|p| *p != 0 && !CFS_PERIOD_US.contains(p)) {
            return Some((
                vec!["cpu", "period"],
                format!(
                    "{p} is not between {} and {} (microseconds)",
                    CFS_PERIOD_US.start(),
                    CFS_PERIOD_US.end()
                ),
            ));
        }
        if let Some(r) = neg(c.realtime_runtime) {
            return Some((vec!["cpu", "realtimeRuntime"], negative(r)));
        }
        if let (Some(r), Some(p)) = (c.realtime_runtime, c.realtime_period) {
            if r > 0 && p > 0 && r as u64 > p {
                return Some((
                    vec!["cpu", "realtimeRuntime"],
                    format!("{r} is more than realtimePeriod ({p})"),
                ));
            }
        }
        let b = &self.block_io;
        for (key, list) in [
            ("throttleReadBpsDevice", &b.throttle_read_bps),
            ("throttleWriteBpsDevice", &b.throttle_write_bps),
            ("throttleReadIOPSDevice", &b.throttle_read_iops),
            ("throttleWriteIOPSDevice", &b.throttle_write_iops),
        ] {
            if let Some(t) = list.iter().find(|t| t.major < 0 || t.minor < 0) {
                return Some((
                    vec!["blockIO", key],
                    format!("device {}:{} is not a device number", t.major, t.minor),
                ));
            }
        }
        if let Some(d) = b.weight_device.iter().find(|d| d.0 < 0 || d.1 < 0) {
            return Some((
                vec!["blockIO", "weightDevice"],
                format!("device {}:{} is not a device number", d.0, d.1),
            ));
        }
        None
    }
}

/// The rules every container gets after the config's own (runc's list):
/// mknod of anything, and use of the standard character devices.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let c = |major: Option<i64>, minor: Option<i64>, access: &str| DeviceRule {
        allow: true,
        kind: 'c',
        major,
        minor,
        access: access.into(),
    };
    vec![
        c(None, None, "m"),
        DeviceRule {
            kind: 'b',
            ..c(None, None, "m")
        },
        c(Some(1), Some(3), "rwm"),
        c(Some(1), Some(8), "rwm"),
        c(Some(1), Some(7), "rwm"),
        c(Some(5), Some(0), "rwm"),
        c(Some(1), Some(5), "rwm"),
        c(Some(1), Some(9), "rwm"),
        c(Some(136), None, "rwm"),
        c(Some(5), Some(2), "rwm"),
        c(Some(10), Some(200), "rwm"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_fields() {
        let v = crate::json::parse(
            r#"{"memory":{"limit":1048576,"swappiness":10},"pids":{"limit":32},
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3}]}"#,
            "r",
        )
        .unwrap();
        let r = parse(&Node::new(&v, "linux.resources")).unwrap();
        assert_eq!(r.memory.limit, Some(1 << 20));
        assert_eq!(r.pids_limit, Some(32));
        assert_eq!(r.devices[0].v1_line(), "a");
        assert_eq!(r.devices[1].v1_line(), "c 1:3 rwm");
        let v = crate::json::parse(r#"{"memory":{"swappiness":300}}"#, "r").unwrap();
        assert_eq!(
            parse(&Node::new(&v, "linux.resources"))
                .unwrap_err()
                .message(),
            "linux.resources.memory.swappiness: 300 is not between 0 and 100"
        );
    }

    #[test]
    fn impossible_limits_name_the_field() {
        let err = |text: &str| {
            let v = crate::json::parse(text, "r").unwrap();
            parse(&Node::new(&v, "linux.resources"))
                .unwrap_err()
                .message()
                .to_string()
        };
        let cases = [
            (
                r#"{"memory":{"limit":200000000,"swap":100000000}}"#,
                "linux.resources.memory.swap: memory+swap (100000000) is less than memory.limit (200000000)",
            ),
            (
                r#"{"memory":{"limit":-1,"swap":100000000}}"#,
                "linux.resources.memory.swap: memory+swap (100000000) is limited but memory.limit is not (-1)",
            ),
            (
                r#"{"memory":{"limit":-5}}"#,
                "linux.resources.memory.limit: -5 is negative (only -1, no limit, is allowed)",
            ),
            (
                r#"{"memory":{"reservation":-2}}"#,
                "linux.resources.memory.reservation: -2 is negative",
            ),
            (
                r#"{"memory":{"swap":-7}}"#,
                "linux.resources.memory.swap: -7 is negative",
            ),
            (
                r#"{"cpu":{"quota":-3}}"#,
                "linux.resources.cpu.quota: -3 is negative",
            ),
            (
                r#"{"cpu":{"quota":500,"period":100000}}"#,
                "linux.resources.cpu.quota: 500 is below the kernel's minimum of 1000",
            ),
            (
                r#"{"cpu":{"quota":50000,"period":100}}"#,
                "linux.resources.cpu.period: 100 is not between 1000 and 1000000",
            ),
            (
                r#"{"cpu":{"period":2000000}}"#,
                "linux.resources.cpu.period: 2000000 is not between",
            ),
            (
                r#"{"cpu":{"realtimeRuntime":-9}}"#,
                "linux.resources.cpu.realtimeRuntime: -9 is negative",
            ),
            (
                r#"{"cpu":{"realtimeRuntime":2000,"realtimePeriod":1000}}"#,
                "linux.resources.cpu.realtimeRuntime: 2000 is more than realtimePeriod (1000)",
            ),
            (
                r#"{"blockIO":{"throttleReadBpsDevice":[{"major":-1,"minor":0,"rate":1}]}}"#,
                "linux.resources.blockIO.throttleReadBpsDevice: device -1:0 is not a device number",
            ),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.starts_with(want), "{text}: {got}");
        }
        // What is fine stays fine: -1 everywhere, swap = memory, no swap
        // limit, the kernel's bounds themselves.
        let v = crate::json::parse(
            r#"{"memory":{"limit":100,"swap":100,"reservation":-1},
                "cpu":{"quota":1000,"period":1000000,"realtimeRuntime":-1,"realtimePeriod":1000}}"#,
            "r",
        )
        .unwrap();
        parse(&Node::new(&v, "linux.resources")).unwrap();
        let v = crate::json::parse(
            r#"{"memory":{"limit":-1,"swap":-1},"cpu":{"quota":-1}}"#,
            "r",
        )
        .unwrap();
        let r = parse(&Node::new(&v, "linux.resources")).unwrap();
        r.validate("").unwrap();
        let mut r = r;
        r.memory.limit = Some(300);
        r.memory.swap = Some(200);
        assert_eq!(
            r.validate("").unwrap_err().message(),
            "memory.swap: memory+swap (200) is less than memory.limit (300)"
        );
    }
}
