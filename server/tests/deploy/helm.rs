//! deploy/helm/adapter-registry.

use std::collections::BTreeSet;

use crate::defs::{
    all_server_flags, assert_flags_of, assert_known_env_names, envs_of, flag_values, long_flags_in,
    names_with_prefix, port_of,
};
use crate::images::exposed_port;
use crate::{CHART, read, repo_root, yaml};

fn template(name: &str) -> String {
    read(&format!("{CHART}/templates/{name}"))
}

/// The items of the YAML list under `key:` in a template (`- serve`, `- --workers`, …),
/// unquoted; template-only lines are skipped.
fn list_under(text: &str, key: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != key).skip(1);
    let mut items = Vec::new();
    for line in lines.by_ref() {
        let t = line.trim();
        if t.starts_with("{{") {
            continue;
        }
        match t.strip_prefix("- ") {
            Some(item) => items.push(item.trim_matches('"').to_owned()),
            None => break,
        }
    }
    assert!(!items.is_empty(), "no list under `{key}`");
    items
}

/// The value of the first `path:` after `key:`.
fn probe_path(text: &str, key: &str) -> String {
    let rest = text
        .split_once(&format!("{key}:"))
        .unwrap_or_else(|| panic!("no {key}"))
        .1;
    rest.lines()
        .find_map(|l| l.trim().strip_prefix("path:"))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("{key} has no path"))
}

#[test]
fn helm_chart_matches_the_server() {
    let port = exposed_port();
    let chart = yaml(&format!("{CHART}/Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "adapter-registry");
    assert!(chart["version"].as_str().is_some(), "Chart.yaml: version");
    // appVersion is the default image tag: the workspace's version.
    let cargo = read("Cargo.toml");
    let version = cargo
        .split_once("[workspace.package]")
        .and_then(|(_, rest)| {
            rest.lines()
                .find_map(|l| l.strip_prefix("version = "))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .expect("[workspace.package] version");
    assert_eq!(
        chart["appVersion"],
        version.as_str(),
        "Chart.yaml: appVersion"
    );

    let values = yaml(&format!("{CHART}/values.yaml"));
    for key in [
        "image",
        "database",
        "blobStore",
        "s3",
        "jobs",
        "server",
        "service",
        "ingress",
        "worker",
        "migrations",
        "metrics",
    ] {
        assert!(values.get(key).is_some(), "values.yaml: no `{key}`");
    }
    assert!(
        values["worker"]["gpus"].as_u64().is_some(),
        "values.yaml: worker.gpus"
    );

    // Names anywhere in the chart exist.
    let all_flags = all_server_flags();
    let mut files = vec![format!("{CHART}/values.yaml")];
    for entry in std::fs::read_dir(repo_root().join(CHART).join("templates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        files.push(format!("{CHART}/templates/{name}"));
    }
    for file in &files {
        let text = read(file);
        assert_known_env_names(&text, file);
        // NOTES.txt is for people and names kubectl's flags too.
        if file.ends_with(".txt") {
            continue;
        }
        let unknown: Vec<_> = long_flags_in(&text)
            .difference(&all_flags)
            .cloned()
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names flags {unknown:?} the server lacks"
        );
    }

    // The server: serve on the image's port, probes on paths the API serves.
    let server = template("server-deployment.yaml");
    let args = list_under(&server, "args:");
    assert_eq!(args[0], "serve", "server-deployment.yaml: args");
    assert_flags_of("serve", &args[1..], "server-deployment.yaml");
    let listen = flag_values(&args)["--listen"]
        .clone()
        .expect("--listen ADDR");
    assert_eq!(port_of(&listen), port, "server-deployment.yaml: --listen");
    assert!(
        server.contains(&format!("containerPort: {port}")),
        "server-deployment.yaml: containerPort {port} (the Dockerfile's EXPOSE)"
    );
    let spec = serde_json::to_value(adapter_registry::api::openapi()).unwrap();
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(
            probe_path(&server, probe),
            path,
            "server-deployment.yaml: {probe}"
        );
        assert!(
            spec["paths"].get(path).is_some(),
            "the API has no {path} (server-deployment.yaml's {probe})"
        );
    }
    assert!(template("service.yaml").contains("targetPort: http"));

    // The worker: `adapter-registry worker` with worker flags, on GPU nodes.
    let worker = template("worker-deployment.yaml");
    assert_eq!(
        list_under(&worker, "command:"),
        ["adapter-registry", "worker"]
    );
    assert_flags_of(
        "worker",
        &list_under(&worker, "args:"),
        "worker-deployment.yaml",
    );
    for needle in ["nvidia.com/gpu", "nodeSelector:", "tolerations:"] {
        assert!(worker.contains(needle), "worker-deployment.yaml: {needle}");
    }

    // Migrations: a pre-install/pre-upgrade hook running `migrate`.
    let migrate = template("migrate-job.yaml");
    assert!(migrate.contains("helm.sh/hook: pre-install,pre-upgrade"));
    assert_eq!(list_under(&migrate, "args:"), ["migrate"]);

    // The ConfigMap feeds serve and worker alike: each variable is read by both.
    let shared: BTreeSet<String> = envs_of("serve")
        .intersection(&envs_of("worker"))
        .cloned()
        .collect();
    for name in names_with_prefix(&template("configmap.yaml"), "ADAPTER_REGISTRY_") {
        assert!(
            shared.contains(&name),
            "configmap.yaml: {name} is not read by both serve and worker"
        );
    }
    assert!(template("servicemonitor.yaml").contains("path: /metrics"));
}
