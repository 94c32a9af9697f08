//! Tokens end to end: the server's first start makes an admin token, `adapter-registry token`
//! manages tokens on the server host, `adapterctl login` keeps one in a private config file.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use adapter_testkit::{ServerProcess, bin, stacks};
use support::{Env, examples, json_of};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `adapter-registry token ARGS` against the env's storage.
fn token_cmd(env: &Env, args: &[&str]) -> std::process::Output {
    let storage = env.backend.server_args();
    Command::new(bin("adapter-registry"))
        .arg("token")
        .args(args)
        .args(&storage)
        .envs(env.backend.server_env())
        .output()
        .unwrap()
}

#[test]
fn first_start_prints_and_stores_one_admin_token() {
    for stack in stacks() {
        let mut env = Env::new(&stack);
        let token = env.server.token().to_owned();
        let file = env.backend.data_dir().join("admin.token");
        assert_eq!(mode(&file), 0o600, "{stack}");
        assert!(token.starts_with("art_"), "{token}");
        let logs = env.server.logs();
        assert_eq!(
            logs.matches(&token).count(),
            1,
            "{stack}: printed once:\n{logs}"
        );

        // A restart on the same storage creates no second admin token.
        env.server.stop();
        std::fs::remove_file(&file).unwrap();
        env.server = ServerProcess::start(&env.backend);
        assert!(env.server.admin_token.is_none(), "{stack}");
        assert!(!file.exists(), "{stack}");
    }
}

#[test]
fn server_token_commands_and_adapterctl_login() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let created = token_cmd(
            &env,
            &[
                "create",
                "--name",
                "alice",
                "--scope",
                "write",
                "--namespace",
                "team-a",
            ],
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let secret = String::from_utf8(created.stdout).unwrap().trim().to_owned();
        assert!(secret.starts_with("art_"), "{secret}");

        // A wrong token is refused and nothing is written.
        let config = env.path("config/adapterctl/config.toml");
        let url = env.server.url.as_str();
        let out = env.ctl_bare(&["--url", url, "--token", "art_wrong", "login"]);
        assert_eq!(
            out.status.code(),
            Some(8),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!config.exists());

        // The right one is checked, then kept (URL + token) in a file only its owner reads.
        let out = env.ctl_bare(&["--url", url, "--token", &secret, "login", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            json_of(&out)["actor"]
                .as_str()
                .unwrap()
                .starts_with("alice (tok_")
        );
        assert_eq!(mode(&config), 0o600, "{stack}");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(&secret) && text.contains(url), "{text}");

        // Later commands use it without flags: push to her namespace works, others are 403.
        let lora = examples().join("tiny-llama-lora");
        let lora = lora.to_str().unwrap();
        let ok = env.ctl_bare(&["push", lora, "--name", "team-a/bot", "--version", "1.0.0"]);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let denied = env.ctl_bare(&["push", lora, "--name", "team-b/bot", "--version", "1.0.0"]);
        assert_eq!(
            denied.status.code(),
            Some(8),
            "{}",
            String::from_utf8_lossy(&denied.stderr)
        );
        let me = json_of(&env.ctl_bare(&["whoami", "--json"]));
        assert_eq!(me["token"]["namespaces"], serde_json::json!(["team-a"]));

        // Listed without secrets; revoked from the server host, it stops working.
        let listed = token_cmd(&env, &["list", "--json"]);
        let listed = String::from_utf8(listed.stdout).unwrap();
        assert!(
            listed.contains("alice") && !listed.contains(&secret),
            "{listed}"
        );
        let id = json_of(&env.ctl_bare(&["whoami", "--json"]))["token"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let revoked = token_cmd(&env, &["revoke", &id]);
        assert!(
            revoked.status.success(),
            "{}",
            String::from_utf8_lossy(&revoked.stderr)
        );
        let out = env.ctl_bare(&["whoami"]);
        assert_eq!(out.status.code(), Some(8), "{stack}");
        let missing = token_cmd(&env, &["revoke", "tok_nope"]);
        assert!(!missing.status.success());
    }
}
