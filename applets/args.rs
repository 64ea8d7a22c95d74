//! Normalize argv before argh sees it. runc (Go's flag package) accepts
//! `--flag=value`, `-flag value` and `--switch=true`; argh accepts only
//! `--flag value`. `-h` is `--help`. The rewrite stops at `--` and after
//! `stop_after` positionals (the start of a container's own command line,
//! or of ps's arguments): what follows is passed on behind a `--`, so argh
//! takes it as positionals even when it looks like flags.

pub struct Flags<'a> {
    /// Long names that take a value.
    pub options: &'a [&'a str],
    /// Long names that are switches.
    pub switches: &'a [&'a str],
}

impl Flags<'_> {
    fn is_option(&self, name: &str) -> bool {
        self.options.contains(&name)
    }
    fn is_switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }
}

/// Rewrite `args` for argh. `stop_after` counts positionals (subcommand names
/// included) after which nothing more is touched.
pub fn normalize(args: Vec<String>, flags: &Flags, stop_after: Option<usize>) -> Vec<String> {
    normalize_with_shorts(args, flags, "", stop_after)
}

/// [`normalize`], knowing which one-letter flags take a value
/// (`short_options`), so that value is not counted as a positional.
pub fn normalize_with_shorts(
    args: Vec<String>,
    flags: &Flags,
    short_options: &str,
    stop_after: Option<usize>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut positionals = 0;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if stop_after.is_some_and(|n| positionals >= n) || arg == "--" {
            if arg != "--" && arg.starts_with('-') {
                out.push("--".to_string());
            }
            out.push(arg);
            out.extend(iter);
            break;
        }
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            positionals += 1;
            out.push(arg);
            continue;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let single_dash_short = !arg.starts_with("--") && name.len() == 1;
        if single_dash_short && name == "h" && value.is_none() {
            out.push("--help".to_string());
            continue;
        }
        if single_dash_short {
            // `-b=dir` is Go-legal too.
            match value {
                Some(v) => {
                    out.push(format!("-{name}"));
                    out.push(v.to_string());
                }
                None => {
                    let takes_value = short_options.contains(name);
                    out.push(arg);
                    if takes_value {
                        out.extend(iter.next());
                    }
                }
            }
            continue;
        }
        if flags.is_switch(name) {
            match value.map(str::to_ascii_lowercase).as_deref() {
                None | Some("true" | "1" | "t") => out.push(format!("--{name}")),
                Some("false" | "0" | "f") => {}
                Some(_) => out.push(arg),
            }
        } else if flags.is_option(name) {
            out.push(format!("--{name}"));
            if let Some(v) = value {
                out.push(v.to_string());
            } else if let Some(next) = iter.next() {
                // The value may itself start with '-': keep it verbatim.
                out.push(next);
            }
        } else {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Flags = Flags {
        options: &["root", "bundle", "log-format"],
        switches: &["detach", "debug"],
    };

    fn n(args: &[&str], stop: Option<usize>) -> Vec<String> {
        normalize(args.iter().map(|s| s.to_string()).collect(), &F, stop)
    }

    #[test]
    fn rewrites_go_style_flags() {
        assert_eq!(
            n(
                &[
                    "-root",
                    "/r",
                    "--log-format=json",
                    "run",
                    "-b=/x",
                    "--detach=true",
                    "--debug=false",
                    "id"
                ],
                None
            ),
            [
                "--root",
                "/r",
                "--log-format",
                "json",
                "run",
                "-b",
                "/x",
                "--detach",
                "id"
            ]
        );
    }

    #[test]
    fn leaves_the_container_command_alone() {
        assert_eq!(
            n(&["exec", "id", "sh", "-root=x"], Some(3)),
            ["exec", "id", "sh", "--", "-root=x"]
        );
        assert_eq!(n(&["--", "--root=x"], None), ["--", "--root=x"]);
        // Arguments that look like flags are marked as positionals.
        assert_eq!(
            n(&["ps", "id", "-e", "-x"], Some(2)),
            ["ps", "id", "--", "-e", "-x"]
        );
        assert_eq!(
            n(&["ps", "id", "--", "-e"], Some(2)),
            ["ps", "id", "--", "-e"]
        );
    }

    #[test]
    fn values_of_short_options_are_not_positionals() {
        let n = |args: &[&str]| {
            normalize_with_shorts(
                args.iter().map(|s| s.to_string()).collect(),
                &F,
                "e",
                Some(2),
            )
        };
        assert_eq!(
            n(&["exec", "-e", "A=b c", "-e", "X=y", "id", "-x"]),
            ["exec", "-e", "A=b c", "-e", "X=y", "id", "--", "-x"]
        );
    }

    #[test]
    fn short_h_is_help() {
        assert_eq!(n(&["-h"], None), ["--help"]);
        assert_eq!(n(&["kill", "-h"], None), ["kill", "--help"]);
        assert_eq!(
            n(&["exec", "id", "ls", "-h"], Some(2)),
            ["exec", "id", "ls", "-h"]
        );
    }
}
