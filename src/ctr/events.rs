//! `ctr events` lines: `TIME NAMESPACE TOPIC JSON`, the event decoded from
//! its Any and written as Go's protobuf JSON would (snake_case names, zero
//! values left out, timestamps RFC 3339).

use crate::proto::events as ev;
use crate::proto::types::{Any, Mount, Timestamp};
use prost::Message;

/// The event as JSON; an unknown type gives `{"type_url":…}`.
pub fn json(any: &Any) -> String {
    let name = any.type_url.rsplit('/').next().unwrap_or(&any.type_url);
    let mut o = Obj::default();
    let v = &any.value[..];
    let ok = match name {
        ev::TASK_CREATE => ev::TaskCreate::decode(v).map(|e| {
            o.s("container_id", &e.container_id)
                .s("bundle", &e.bundle)
                .raw_if(!e.rootfs.is_empty(), "rootfs", &mounts(&e.rootfs));
            if let Some(io) = &e.io {
                let mut i = Obj::default();
                i.s("stdin", &io.stdin)
                    .s("stdout", &io.stdout)
                    .s("stderr", &io.stderr)
                    .b("terminal", io.terminal);
                o.raw_if(true, "io", &i.end());
            }
            o.s("checkpoint", &e.checkpoint).n("pid", e.pid as u64);
        }),
        ev::TASK_START => ev::TaskStart::decode(v).map(|e| {
            o.s("container_id", &e.container_id).n("pid", e.pid as u64);
        }),
        ev::TASK_EXIT => ev::TaskExit::decode(v).map(|e| {
            o.s("container_id", &e.container_id)
                .s("id", &e.id)
                .n("pid", e.pid as u64)
                .n("exit_status", e.exit_status as u64)
                .t("exited_at", e.exited_at);
        }),
        ev::TASK_DELETE => ev::TaskDelete::decode(v).map(|e| {
            o.s("container_id", &e.container_id)
                .n("pid", e.pid as u64)
                .n("exit_status", e.exit_status as u64)
                .t("exited_at", e.exited_at)
                .s("id", &e.id);
        }),
        ev::TASK_OOM => ev::TaskOom::decode(v).map(|e| {
            o.s("container_id", &e.container_id);
        }),
        ev::TASK_EXEC_ADDED => ev::TaskExecAdded::decode(v).map(|e| {
            o.s("container_id", &e.container_id)
                .s("exec_id", &e.exec_id);
        }),
        ev::TASK_EXEC_STARTED => ev::TaskExecStarted::decode(v).map(|e| {
            o.s("container_id", &e.container_id)
                .s("exec_id", &e.exec_id)
                .n("pid", e.pid as u64);
        }),
        ev::TASK_PAUSED => ev::TaskPaused::decode(v).map(|e| {
            o.s("container_id", &e.container_id);
        }),
        ev::TASK_RESUMED => ev::TaskResumed::decode(v).map(|e| {
            o.s("container_id", &e.container_id);
        }),
        _ => {
            o.s("type_url", &any.type_url);
            Ok(())
        }
    };
    if ok.is_err() {
        let mut o = Obj::default();
        o.s("type_url", &any.type_url);
        return o.end();
    }
    o.end()
}

fn mounts(list: &[Mount]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|m| {
            let mut o = Obj::default();
            o.s("type", &m.r#type)
                .s("source", &m.source)
                .s("target", &m.target);
            if !m.options.is_empty() {
                let opts: Vec<String> = m.options.iter().map(|s| crate::json::quote(s)).collect();
                o.raw_if(true, "options", &format!("[{}]", opts.join(",")));
            }
            o.end()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A JSON object built field by field, zero values left out.
#[derive(Default)]
struct Obj(Vec<String>);

impl Obj {
    fn s(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.0.push(format!("\"{k}\":{}", crate::json::quote(v)));
        }
        self
    }
    fn n(&mut self, k: &str, v: u64) -> &mut Self {
        if v != 0 {
            self.0.push(format!("\"{k}\":{v}"));
        }
        self
    }
    fn b(&mut self, k: &str, v: bool) -> &mut Self {
        if v {
            self.0.push(format!("\"{k}\":true"));
        }
        self
    }
    fn t(&mut self, k: &str, v: Option<Timestamp>) -> &mut Self {
        if let Some(t) = v {
            let s = crate::time::rfc3339_nano(t.seconds, t.nanos.max(0) as u32);
            self.0.push(format!("\"{k}\":\"{s}\""));
        }
        self
    }
    fn raw_if(&mut self, cond: bool, k: &str, raw: &str) -> &mut Self {
        if cond {
            self.0.push(format!("\"{k}\":{raw}"));
        }
        self
    }
    fn end(&self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_as_ctr_prints_it() {
        let e = ev::TaskExit {
            container_id: "e1".into(),
            id: "e1".into(),
            pid: 22371,
            exit_status: 0,
            exited_at: Some(Timestamp {
                seconds: 1_796_310_805,
                nanos: 516_297_957,
            }),
        };
        let any = ev::any(ev::TASK_EXIT, &e);
        assert_eq!(
            json(&any),
            r#"{"container_id":"e1","id":"e1","pid":22371,"exited_at":"2026-12-03T15:13:25.516297957Z"}"#
        );
    }
}
