//! tollgatectl's command lines, shared by every command: why a command failed (`Fail`: exit 2
//! for a usage error, 1 for a failure) and the arguments of one command (`Args`: positionals,
//! `--flag VALUE` or `--flag=VALUE`, boolean flags, and `--` to end the flags).

use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug)]
pub enum Fail {
    /// Wrong arguments: exit 2.
    Usage(String),
    /// The store could not be reached or refused: exit 1.
    Error(String),
}

impl Fail {
    pub fn exit(self) -> ExitCode {
        match self {
            Fail::Usage(m) => {
                eprintln!("tollgatectl: {m} (see tollgatectl --help)");
                ExitCode::from(2)
            }
            Fail::Error(m) => {
                eprintln!("tollgatectl: {m}");
                ExitCode::from(1)
            }
        }
    }
}

pub fn usage(m: impl Into<String>) -> Fail {
    Fail::Usage(m.into())
}

/// Flags common to every store command (with a value).
const COMMON_VALUES: &[&str] = &["store", "token", "admin", "reason"];
const COMMON_BOOLS: &[&str] = &["json"];

/// Parsed arguments of one command.
pub struct Args {
    /// The arguments that are not flags, in order.
    pub positionals: Vec<String>,
    values: Vec<(String, String)>,
    bools: Vec<String>,
}

impl Args {
    pub fn parse(args: &[String], values: &[&str], bools: &[&str]) -> Result<Args, Fail> {
        let mut out = Args { positionals: Vec::new(), values: Vec::new(), bools: Vec::new() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--") else {
                out.positionals.push(a.clone());
                continue;
            };
            if flag.is_empty() {
                out.positionals.extend(it.by_ref().cloned());
                break;
            }
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if values.contains(&name) || COMMON_VALUES.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| usage(format!("--{name} needs a value")))?,
                };
                out.values.push((name.to_string(), v));
            } else if bools.contains(&name) || COMMON_BOOLS.contains(&name) {
                if inline.is_some() {
                    return Err(usage(format!("--{name} takes no value")));
                }
                out.bools.push(name.to_string());
            } else {
                return Err(usage(format!("unknown option --{name}")));
            }
        }
        Ok(out)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.bools.iter().any(|b| b == name)
    }

    /// Exactly `names.len()` positionals.
    pub fn positionals<const N: usize>(&self, names: [&str; N]) -> Result<[&str; N], Fail> {
        if self.positionals.len() > N {
            return Err(usage(format!("unexpected argument {:?}", self.positionals[N])));
        }
        let mut out = [""; N];
        for (i, name) in names.iter().enumerate() {
            out[i] = self.positionals.get(i).ok_or_else(|| usage(format!("missing {name}")))?.as_str();
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(a: &[&str], values: &[&str], bools: &[&str]) -> Result<Args, Fail> {
        Args::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>(), values, bools)
    }

    #[test]
    fn flags_values_and_positionals() {
        let a = args(&["sk-1", "--tier", "pro", "--limit=r=5", "--json", "--limit", "q=1"], &["tier", "limit"], &[])
            .unwrap();
        assert_eq!(a.positionals(["KEY"]).unwrap(), ["sk-1"]);
        assert_eq!(a.value("tier"), Some("pro"));
        assert_eq!(a.all("limit").collect::<Vec<_>>(), ["r=5", "q=1"]);
        assert!(a.flag("json"));
        assert!(matches!(args(&["--nope"], &[], &[]), Err(Fail::Usage(m)) if m == "unknown option --nope"));
        assert!(matches!(args(&["--tier"], &["tier"], &[]), Err(Fail::Usage(m)) if m == "--tier needs a value"));
        let a = args(&["--", "--weird-key"], &[], &[]).unwrap();
        assert_eq!(a.positionals(["KEY"]).unwrap(), ["--weird-key"]);
        assert!(matches!(args(&[], &[], &[]).unwrap().positionals(["KEY"]), Err(Fail::Usage(m)) if m == "missing KEY"));
    }
}
