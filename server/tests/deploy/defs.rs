//! The real definitions: `adapter-registry`'s clap tree, `adapterctl --help`, and the
//! scanners that find flags and variable names in text.

use std::collections::{BTreeMap, BTreeSet};

use adapter_registry::config::Cli;
use clap::CommandFactory;

/// One argument as clap declares it: `--flag` (or a positional's value name), its variable
/// and its default.
#[derive(Debug, Clone)]
pub struct ArgDef {
    pub name: String,
    pub env: Option<String>,
    pub default: Option<String>,
}

/// Every leaf subcommand of `adapter-registry` (`serve`, `token create`, …) and its arguments.
pub fn subcommands() -> BTreeMap<String, Vec<ArgDef>> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut BTreeMap<String, Vec<ArgDef>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{prefix}{}", sub.get_name());
            if sub.has_subcommands() {
                walk(sub, &format!("{path} "), out);
                continue;
            }
            let args = sub
                .get_arguments()
                .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
                .map(|a| ArgDef {
                    name: match a.get_long() {
                        Some(long) => format!("--{long}"),
                        None => a
                            .get_value_names()
                            .and_then(|n| n.first())
                            .map_or_else(|| a.get_id().as_str().to_uppercase(), |n| n.to_string()),
                    },
                    env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                    default: a
                        .get_default_values()
                        .first()
                        .map(|d| d.to_string_lossy().into_owned()),
                })
                .collect();
            out.insert(path, args);
        }
    }
    // Built, as a run sees it (switches get their `false` default then).
    let mut cli = Cli::command();
    cli.build();
    let mut out = BTreeMap::new();
    walk(&cli, "", &mut out);
    out
}

pub fn flags_of(sub: &str) -> BTreeSet<String> {
    let subs = subcommands();
    let args = subs
        .get(sub)
        .unwrap_or_else(|| panic!("`adapter-registry {sub}` does not exist"));
    args.iter()
        .filter(|a| a.name.starts_with("--"))
        .map(|a| a.name.clone())
        .collect()
}

pub fn envs_of(sub: &str) -> BTreeSet<String> {
    subcommands()[sub]
        .iter()
        .filter_map(|a| a.env.clone())
        .collect()
}

pub fn all_server_flags() -> BTreeSet<String> {
    subcommands()
        .values()
        .flatten()
        .filter(|a| a.name.starts_with("--"))
        .map(|a| a.name.clone())
        .chain(["--help".to_owned(), "--version".to_owned()])
        .collect()
}

pub fn all_server_envs() -> BTreeSet<String> {
    subcommands()
        .values()
        .flatten()
        .filter_map(|a| a.env.clone())
        .collect()
}

/// `adapterctl --help`: its global long options and their variables.
pub fn adapterctl_globals() -> BTreeMap<String, Option<String>> {
    let out = std::process::Command::new(adapter_testkit::bin("adapterctl"))
        .arg("--help")
        .output()
        .expect("running adapterctl --help");
    assert!(out.status.success(), "adapterctl --help failed");
    let help = String::from_utf8(out.stdout).unwrap();
    let mut globals = BTreeMap::new();
    for line in help.lines() {
        let t = line.trim_start();
        let t = t
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-'))
            .map_or(t, |r| r.split_once(", ").map_or(r, |(_, rest)| rest));
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if matches!(name.as_str(), "help" | "version") {
            continue;
        }
        let env = line.split_once("[env: ").map(|(_, e)| {
            e.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        });
        globals.insert(format!("--{name}"), env);
    }
    assert!(
        globals.contains_key("--url"),
        "no --url in adapterctl --help:\n{help}"
    );
    globals
}

/// Occurrences of `--name` (a long flag) in a text.
pub fn long_flags_in(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("--") {
        let start = i + pos;
        i = start + 2;
        let before = start.checked_sub(1).map(|p| bytes[p]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-') {
            continue;
        }
        let name: String = text[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert(format!("--{}", name.trim_end_matches('-')));
        }
    }
    out
}

/// Occurrences of environment variable names starting with `prefix` in a text.
pub fn names_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find(prefix) {
        let start = i + pos;
        i = start + prefix.len();
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // `ADAPTER_REGISTRY_JOB_*` stands for a family of names.
        let wildcard = text[start + name.len()..].starts_with('*');
        out.insert(if wildcard {
            format!("{name}*")
        } else {
            name.trim_end_matches('_').to_owned()
        });
    }
    out
}

/// Whether `name` (or, for `PREFIX*`, some name with that prefix) is in `known`.
pub fn is_known(name: &str, known: &BTreeSet<String>) -> bool {
    match name.strip_suffix('*') {
        Some(prefix) => known.iter().any(|k| k.starts_with(prefix)),
        None => known.contains(name),
    }
}

/// The flags of a command line (`--flag value` or `--flag=value`), each with what follows.
pub fn flag_values(words: &[String]) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (i, w) in words.iter().enumerate() {
        if let Some(rest) = w.strip_prefix("--") {
            match rest.split_once('=') {
                Some((name, value)) => out.insert(format!("--{name}"), Some(value.to_owned())),
                None => out.insert(w.clone(), words.get(i + 1).cloned()),
            };
        }
    }
    out
}

/// Every flag of a command line is a flag of `adapter-registry SUB`.
pub fn assert_flags_of(sub: &str, words: &[String], ctx: &str) {
    let known = flags_of(sub);
    for flag in flag_values(words).keys() {
        assert!(
            known.contains(flag),
            "{ctx}: `adapter-registry {sub}` has no {flag} (it has {known:?})"
        );
    }
}

pub fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` has no port"))
}

pub fn assert_known_env_names(text: &str, ctx: &str) {
    let envs = all_server_envs();
    let unknown: Vec<_> = names_with_prefix(text, "ADAPTER_REGISTRY_")
        .into_iter()
        .filter(|n| !is_known(n, &envs))
        .collect();
    assert!(
        unknown.is_empty(),
        "{ctx} names {unknown:?}: no such variable (docs/CONFIG.md lists them)"
    );
}
