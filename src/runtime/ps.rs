//! The processes of a container.

use super::container::Container;
use crate::error::{Context, Result};
use crate::sys::process::Pid;

fn numeric_proc_entries() -> Vec<Pid> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Pids of every process in the container: those in the init's pid
/// namespace when it has its own, else the init and its descendants.
pub fn pids(c: &Container) -> Result<Vec<Pid>> {
    if !c.init_alive() {
        return Ok(Vec::new());
    }
    if !c.state.cgroup.is_empty() {
        return Ok(c.cgroup().procs());
    }
    let init = c.state.pid;
    let mut found = vec![init];
    if c.state.own_pid_ns {
        let ns = std::fs::read_link(format!("/proc/{init}/ns/pid"))
            .context("read the container's pid namespace")?;
        for pid in numeric_proc_entries() {
            if pid != init
                && std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| n == ns)
            {
                found.push(pid);
            }
        }
    } else {
        let all: Vec<(Pid, Pid)> = numeric_proc_entries()
            .into_iter()
            .filter_map(|p| Some((p, parent_of(p)?)))
            .collect();
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
            i += 1;
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// `ps` output (default `-ef`) cut down to the container's processes, as
/// `runc ps` prints it.
pub fn table(c: &Container, ps_args: &[String]) -> Result<String> {
    let pids = pids(c)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        crate::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| crate::err!("ps {}: no PID column in its output", args.join(" ")))?;
    let mut result = format!("{header}\n");
    for line in lines {
        let pid: Option<Pid> = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|f| f.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            result.push_str(line);
            result.push('\n');
        }
    }
    Ok(result)
}
