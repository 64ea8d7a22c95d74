//! Go's `flag` package habits, as urfave/cli (ctr's parser) has them:
//! `-name` and `--name` alike, `-name=value` or `-name value`, booleans
//! only as `-name` or `-name=true|false`, flags repeatable, parsing stops
//! at the first argument that is not a flag (so `ctr run IMAGE ID sh -c x`
//! leaves `-c` to the command) or after `--`.

/// One flag of a command: every name it answers to (the first is the one
/// lookups use), whether it takes a value, and its help line.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub takes_value: bool,
    pub usage: &'static str,
}

impl Flag {
    pub const fn bool(names: &'static [&'static str], usage: &'static str) -> Flag {
        Flag {
            names,
            takes_value: false,
            usage,
        }
    }

    pub const fn value(names: &'static [&'static str], usage: &'static str) -> Flag {
        Flag {
            names,
            takes_value: true,
            usage,
        }
    }

    /// urfave's help line: `--name value, -n value` (long names first).
    pub fn help_names(&self) -> String {
        let mut names: Vec<&str> = self.names.to_vec();
        names.sort_by_key(|n| n.len() == 1);
        names
            .iter()
            .map(|n| {
                let dash = if n.len() == 1 { "-" } else { "--" };
                if self.takes_value {
                    format!("{dash}{n} value")
                } else {
                    format!("{dash}{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the command line said: flag values by the flag's first name, in
/// order, and the positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: Vec<(&'static str, String)>,
    pub args: Vec<String>,
    /// `-h`/`--help` was given.
    pub help: bool,
}

impl Parsed {
    pub fn bool(&self, name: &str) -> bool {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .is_some_and(|(_, v)| v == "true")
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for a repeatable flag, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Set a value unless the command line gave one (environment defaults).
    pub fn set_default(&mut self, name: &'static str, value: Option<String>) {
        if self.get(name).is_none() {
            if let Some(v) = value {
                self.values.push((name, v));
            }
        }
    }
}

/// Parse `argv` against `flags` with Go's rules. The error is Go's message
/// (`flag provided but not defined: -bogus`).
pub fn parse(flags: &[Flag], argv: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(body) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !a.starts_with("---"))
        else {
            break;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            parsed.help = true;
            i += 1;
            continue;
        }
        let Some(flag) = flags.iter().find(|f| f.names.contains(&name)) else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let value = if flag.takes_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    argv.get(i)
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?
                }
            }
        } else {
            match inline.as_deref() {
                None => "true".to_string(),
                Some(v) => parse_go_bool(v)
                    .ok_or_else(|| format!("invalid boolean value {v:?} for -{name}: parse error"))?
                    .to_string(),
            }
        };
        parsed.values.push((flag.names[0], value));
        i += 1;
    }
    parsed.args = argv[i..].to_vec();
    Ok(parsed)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::bool(&["rm"], "remove"),
        Flag::value(&["env"], "env"),
        Flag::value(&["namespace", "n"], "ns"),
    ];

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_forms() {
        let p = parse(
            FLAGS,
            &v(&[
                "-rm",
                "--env=A=1",
                "-env",
                "B=2",
                "-n=k8s",
                "img",
                "id",
                "sh",
                "-c",
                "x",
            ]),
        )
        .unwrap();
        assert!(p.bool("rm"));
        assert_eq!(p.all("env"), ["A=1", "B=2"]);
        assert_eq!(p.get("namespace"), Some("k8s"));
        assert_eq!(p.args, v(&["img", "id", "sh", "-c", "x"]));
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            parse(FLAGS, &v(&["--bogus"])).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(FLAGS, &v(&["--env"])).unwrap_err(),
            "flag needs an argument: -env"
        );
        assert!(parse(FLAGS, &v(&["--rm=maybe"])).is_err());
        assert!(!parse(FLAGS, &v(&["--rm=false"])).unwrap().bool("rm"));
        assert_eq!(parse(FLAGS, &v(&["--", "-x"])).unwrap().args, v(&["-x"]));
    }
}
