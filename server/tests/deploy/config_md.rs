//! docs/CONFIG.md against the definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::defs::{
    adapterctl_globals, all_server_envs, all_server_flags, assert_flags_of, is_known,
    long_flags_in, names_with_prefix, subcommands,
};
use crate::{read, repo_root};

/// A heading and the text up to the next heading.
#[derive(Debug)]
struct Section {
    title: String,
    body: String,
}

/// One row of a `| flag | environment variable | default | meaning |` table.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    env: Option<String>,
    default: String,
    meaning: String,
}

impl Row {
    /// A row of a flag that only a `test-hooks` build has.
    fn test_hooks_only(&self) -> bool {
        self.meaning.contains("`test-hooks`")
    }
}

fn sections(doc: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in doc.lines() {
        if line.starts_with('#') {
            out.push(Section {
                title: line.trim_start_matches('#').trim().to_owned(),
                body: String::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
        }
    }
    out
}

/// GitHub's anchor for a heading.
fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn unquote(cell: &str) -> String {
    cell.trim().trim_matches('`').to_owned()
}

/// The rows of the flag tables in a section.
fn flag_rows(body: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_flag_table = false;
    for line in body.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_flag_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells[0] == "flag" {
            assert_eq!(
                cells,
                ["flag", "environment variable", "default", "meaning"],
                "CONFIG.md: a flag table's header"
            );
            in_flag_table = true;
            continue;
        }
        if !in_flag_table || cells[0].starts_with("---") {
            continue;
        }
        assert_eq!(cells.len(), 4, "CONFIG.md: a flag row has 4 cells: {line}");
        rows.push(Row {
            name: unquote(cells[0]),
            env: (cells[1] != "—").then(|| unquote(cells[1])),
            default: cells[2].to_owned(),
            meaning: cells[3].to_owned(),
        });
    }
    rows
}

/// The anchors a section links to (`](#storage-flags)`).
fn links(body: &str) -> Vec<String> {
    body.split("](#")
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(a, _)| a.to_owned()))
        .collect()
}

fn config_md() -> String {
    read("docs/CONFIG.md")
}

/// Names a `test-hooks`-only row documents, when this build lacks that feature.
fn absent_feature_names(doc: &str) -> BTreeSet<String> {
    if cfg!(feature = "test-hooks") {
        return BTreeSet::new();
    }
    sections(doc)
        .iter()
        .flat_map(|s| flag_rows(&s.body))
        .filter(Row::test_hooks_only)
        .flat_map(|r| [Some(r.name), r.env])
        .flatten()
        .collect()
}

#[test]
fn config_md_documents_every_subcommand_exactly() {
    let doc = config_md();
    let sections = sections(&doc);
    let by_anchor: BTreeMap<String, &Section> =
        sections.iter().map(|s| (anchor(&s.title), s)).collect();
    let mut problems = Vec::new();
    for (path, args) in subcommands() {
        let title = format!("adapter-registry {path}");
        let Some(section) = sections.iter().find(|s| s.title == title) else {
            problems.push(format!("no section `### {title}`"));
            continue;
        };
        // The global flags (`--log-format`) count for every subcommand.
        let mut rows: Vec<Row> = sections
            .iter()
            .filter(|s| s.title == "Global flags")
            .flat_map(|s| flag_rows(&s.body))
            .collect();
        rows.extend(flag_rows(&section.body));
        for link in links(&section.body) {
            match by_anchor.get(&link) {
                Some(s) => rows.extend(flag_rows(&s.body)),
                None => problems.push(format!("{title}: link to a missing section #{link}")),
            }
        }
        if !cfg!(feature = "test-hooks") {
            rows.retain(|r| !r.test_hooks_only());
        }
        let documented: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
        for arg in &args {
            let Some(row) = documented.get(arg.name.as_str()) else {
                problems.push(format!("{title}: {} is not documented", arg.name));
                continue;
            };
            if row.env != arg.env {
                problems.push(format!(
                    "{title}: {} has the variable {:?}, CONFIG.md says {:?}",
                    arg.name, arg.env, row.env
                ));
            }
            let want = arg
                .default
                .as_ref()
                .map_or_else(|| "—".to_owned(), |d| format!("`{d}`"));
            if row.default != want {
                problems.push(format!(
                    "{title}: {} defaults to {want}, CONFIG.md says {}",
                    arg.name, row.default
                ));
            }
        }
        for name in documented.keys() {
            if !args.iter().any(|a| a.name == *name) {
                problems.push(format!("{title}: documents {name}, which it does not take"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/CONFIG.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn config_md_documents_adapterctl_globals_exactly() {
    let doc = config_md();
    let section = sections(&doc)
        .into_iter()
        .find(|s| s.title == "adapterctl")
        .expect("CONFIG.md has a section `## adapterctl`");
    let rows: BTreeMap<String, Option<String>> = flag_rows(&section.body)
        .into_iter()
        .map(|r| (r.name, r.env))
        .collect();
    assert_eq!(
        rows,
        adapterctl_globals(),
        "CONFIG.md's adapterctl table (left) and `adapterctl --help` (right) differ"
    );
}

#[test]
fn config_md_names_only_real_flags_and_variables() {
    let doc = config_md();
    let extra = absent_feature_names(&doc);
    let ctl = adapterctl_globals();
    let flags: BTreeSet<String> = all_server_flags()
        .into_iter()
        .chain(ctl.keys().cloned())
        .chain(extra.iter().cloned())
        .collect();
    let envs: BTreeSet<String> = all_server_envs()
        .into_iter()
        .chain(ctl.values().flatten().cloned())
        .chain(extra)
        .collect();
    let unknown_flags: Vec<_> = long_flags_in(&doc).difference(&flags).cloned().collect();
    let names = names_with_prefix(&doc, "ADAPTER_REGISTRY_")
        .into_iter()
        .chain(names_with_prefix(&doc, "ADAPTERCTL_"));
    let unknown_envs: Vec<_> = names.filter(|n| !is_known(n, &envs)).collect();
    assert!(
        unknown_flags.is_empty() && unknown_envs.is_empty(),
        "docs/CONFIG.md names flags {unknown_flags:?} and variables {unknown_envs:?} that \
         neither binary has"
    );
}

/// Variables the code reads by name (`env("AWS_REGION")`, `var("HOME")`) are documented.
#[test]
fn config_md_documents_the_variables_read_in_code() {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let doc = config_md();
    let mut files = Vec::new();
    rust_files(&repo_root().join("server/src"), &mut files);
    rust_files(&repo_root().join("cli/src"), &mut files);
    let mut missing = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut names = BTreeSet::new();
        for prefix in ["\"AWS_", "\"XDG_", "\"ADAPTERCTL_", "\"ADAPTER_REGISTRY_"] {
            names.extend(
                names_with_prefix(&text, &prefix[1..])
                    .into_iter()
                    .filter(|n| text.contains(&format!("\"{n}\""))),
            );
        }
        if text.contains("\"HOME\"") {
            names.insert("HOME".to_owned());
        }
        for name in names {
            if !doc.contains(&format!("`{name}`")) {
                missing.insert(format!("{name} ({})", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "variables read in the code but not in docs/CONFIG.md: {missing:?}"
    );
}

#[test]
fn a_renamed_flag_is_caught() {
    let doc = "| flag | environment variable | default | meaning |\n|---|---|---|---|\n\
               | `--listen-addr` | `ADAPTER_REGISTRY_LISTEN_ADDR` | — | x |\n";
    let rows = flag_rows(doc);
    assert_eq!(rows[0].name, "--listen-addr");
    assert!(!all_server_flags().contains(&rows[0].name));
    assert!(long_flags_in("use --listen-addr=x").contains("--listen-addr"));
    assert!(!long_flags_in("|---|---|").iter().any(|f| f.len() > 2));
    assert_eq!(
        names_with_prefix("A=1 ADAPTER_REGISTRY_LISTEN_ADDR=x", "ADAPTER_REGISTRY_"),
        BTreeSet::from(["ADAPTER_REGISTRY_LISTEN_ADDR".to_owned()])
    );
    let result = std::panic::catch_unwind(|| {
        assert_flags_of("worker", &["--listen".to_owned(), "x".to_owned()], "test")
    });
    assert!(result.is_err(), "worker has no --listen");
}
