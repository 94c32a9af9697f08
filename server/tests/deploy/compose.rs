//! deploy/docker-compose.yml.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::defs::{assert_flags_of, assert_known_env_names, envs_of, flag_values, port_of};
use crate::images::exposed_port;
use crate::{read, yaml};

fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_owned())
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Null => Vec::new(),
        other => panic!("not a command: {other:?}"),
    }
}

fn text_of(v: &Value) -> String {
    words(v).join(" ")
}

fn env_map(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => panic!("environment value {other:?}"),
                };
                (k.as_str().unwrap().to_owned(), v)
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment as a mapping, not {other:?}"),
    }
}

/// `scheme://user:pass@host:port/…` or `scheme://host:port/…` → host.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap().to_owned()
}

#[test]
fn compose_stack_is_wired() {
    let file = "deploy/docker-compose.yml";
    let port = exposed_port();
    assert_known_env_names(&read(file), file);
    let doc = yaml(file);
    let services = doc["services"].as_mapping().expect("services");
    let service = |name: &str| -> &Value {
        services
            .get(name)
            .unwrap_or_else(|| panic!("{file}: no service `{name}`"))
    };
    let image = |name: &str| service(name)["image"].as_str().unwrap_or("").to_owned();
    assert!(
        image("postgres").starts_with("postgres:16"),
        "{file}: PostgreSQL 16"
    );
    assert!(image("minio").starts_with("minio/minio:"), "{file}: MinIO");
    assert!(image("minio-init").starts_with("minio/mc:"), "{file}: mc");
    assert_eq!(
        service("minio-init")["depends_on"]["minio"]["condition"],
        "service_healthy",
        "{file}: the bucket is created once MinIO is up"
    );
    for name in ["postgres", "minio", "server"] {
        assert!(
            !words(&service(name)["healthcheck"]["test"]).is_empty(),
            "{file}: {name} has a healthcheck"
        );
    }

    // Every registry process: its flags and variables belong to its subcommand.
    let mut registry_services = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let is_cuda_image = svc["build"]["dockerfile"] == "deploy/Dockerfile.cuda";
        let is_cpu_image = svc["build"]["dockerfile"] == "deploy/Dockerfile";
        if !is_cuda_image && !is_cpu_image {
            continue;
        }
        registry_services += 1;
        let mut cmd = words(&svc["command"]);
        if is_cuda_image {
            cmd.insert(0, "worker".to_owned());
        }
        let sub = cmd.first().cloned().unwrap_or_default();
        let ctx = format!("{file}: {name}");
        assert_flags_of(&sub, &cmd[1..], &ctx);
        let envs = envs_of(&sub);
        for key in env_map(svc)
            .keys()
            .filter(|k| k.starts_with("ADAPTER_REGISTRY_"))
        {
            assert!(
                envs.contains(key),
                "{ctx}: `adapter-registry {sub}` does not read {key}"
            );
        }
        for dep in svc["depends_on"].as_mapping().into_iter().flatten() {
            let dep = dep.0.as_str().unwrap();
            assert!(
                services.contains_key(dep),
                "{ctx}: depends on unknown {dep}"
            );
        }
    }
    assert!(
        registry_services >= 2,
        "{file}: server and worker build the images"
    );

    let server = service("server");
    let cmd = words(&server["command"]);
    assert_eq!(cmd[0], "serve", "{file}: server runs serve");
    let flags = flag_values(&cmd);
    assert_eq!(
        flags.get("--workers").cloned().flatten().as_deref(),
        Some("0"),
        "{file}: the server runs no workers"
    );
    let listen = flags["--listen"].clone().expect("--listen ADDR");
    assert_eq!(port_of(&listen), port, "{file}: server --listen");
    let ports = words(&server["ports"]);
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "{file}: server publishes container port {port}: {ports:?}"
    );
    let health = text_of(&server["healthcheck"]["test"]);
    assert!(
        health.contains(&format!(":{port}/readyz")) || health.contains(&format!(":{port}/healthz")),
        "{file}: server healthcheck {health}"
    );

    let worker = service("worker");
    assert_eq!(words(&worker["command"])[0], "worker", "{file}: worker");
    assert_eq!(
        worker["healthcheck"]["disable"], true,
        "{file}: a worker has no HTTP, so the image's /healthz check is off"
    );

    // Storage: the URLs point at the compose services, the bucket is the one mc creates, and
    // the S3 keys are MinIO's.
    let env = env_map(server);
    assert_eq!(
        env_map(worker)
            .iter()
            .filter(|(k, _)| k.starts_with("ADAPTER_REGISTRY_") || k.starts_with("AWS_"))
            .collect::<Vec<_>>(),
        env.iter()
            .filter(|(k, _)| k.starts_with("ADAPTER_REGISTRY_") || k.starts_with("AWS_"))
            .collect::<Vec<_>>(),
        "{file}: server and worker share one storage configuration"
    );
    let db = &env["ADAPTER_REGISTRY_DATABASE_URL"];
    assert!(db.starts_with("postgres://"), "{file}: {db}");
    assert!(services.contains_key(url_host(db).as_str()), "{file}: {db}");
    let pg = env_map(service("postgres"));
    assert!(
        db.contains(&format!(
            "{}:{}@",
            pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]
        )) && db.ends_with(&format!("/{}", pg["POSTGRES_DB"])),
        "{file}: the database URL matches the postgres service"
    );
    let endpoint = &env["ADAPTER_REGISTRY_S3_ENDPOINT"];
    assert_eq!(url_host(endpoint), "minio", "{file}: S3 endpoint");
    let bucket = env["ADAPTER_REGISTRY_BLOB_STORE"]
        .strip_prefix("s3://")
        .expect("an s3:// blob store")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let init = text_of(&service("minio-init")["command"]);
    assert!(
        init.contains("mc mb") && init.contains(&format!("/{bucket}")),
        "{file}: minio-init creates the bucket {bucket}: {init}"
    );
    let minio = env_map(service("minio"));
    assert_eq!(env["AWS_ACCESS_KEY_ID"], minio["MINIO_ROOT_USER"]);
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], minio["MINIO_ROOT_PASSWORD"]);

    // Named volumes are declared.
    let declared = doc["volumes"].as_mapping().expect("top-level volumes");
    for (name, svc) in services {
        for v in words(&svc["volumes"]) {
            let source = v.split(':').next().unwrap();
            if !source.starts_with(['.', '/', '~']) {
                assert!(
                    declared.contains_key(source),
                    "{file}: {} uses undeclared volume {source}",
                    name.as_str().unwrap()
                );
            }
        }
    }
}
