//! docs/CONFIG.md and deploy/ follow the binaries' real flags.
//!
//! * CONFIG.md has a section per `adapter-registry` subcommand whose flag table (with the
//!   sections it links to) lists exactly the subcommand's flags, each with its environment
//!   variable and default as clap declares them; its adapterctl table lists exactly the global
//!   options of `adapterctl --help`; every variable name the code reads by string literal is
//!   in it.
//! * Every `--flag` and `ADAPTER_REGISTRY_*` / `ADAPTERCTL_*` name in CONFIG.md, the
//!   Dockerfiles, docker-compose.yml and the Helm chart exists (a renamed flag fails here), and
//!   each command line there uses only its own subcommand's flags.
//! * The Dockerfiles, the compose stack and the chart agree on the port, the probe paths
//!   (which the API serves), the entrypoints, the bucket and the service names.
//!
//! `deploy/defs.rs` reads the definitions; one file per thing checked beside it.

#[path = "deploy/compose.rs"]
mod compose;
#[path = "deploy/config_md.rs"]
mod config_md;
#[path = "deploy/defs.rs"]
mod defs;
#[path = "deploy/helm.rs"]
mod helm;
#[path = "deploy/images.rs"]
mod images;

use std::path::PathBuf;

use serde_yaml_ng::Value;

use crate::defs::assert_known_env_names;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn yaml(rel: &str) -> Value {
    let mut v: Value =
        serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
    v
}

pub const CHART: &str = "deploy/helm/adapter-registry";

#[test]
fn deploy_readme_names_only_real_variables() {
    assert_known_env_names(&read("deploy/README.md"), "deploy/README.md");
}
