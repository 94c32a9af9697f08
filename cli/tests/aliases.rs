//! End to end: the real `adapter-registry` (on every available stack) driven by the real
//! `adapterctl`: tag (compare-and-swap, exit 9 on a stale expectation), alias ls/history/rm,
//! gates (exit 10 on refusal), yank/unyank and the pull warning with the reason.

mod support;

use adapter_testkit::stacks;
use serde_json::{Value, json};
use support::{Env, lora};

fn text(env: &Env, args: &[&str], code: i32) -> (String, String) {
    let out = env.ctl(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn tag_history_gates_and_yank_end_to_end() {
    for stack in stacks() {
        let env = Env::new(&stack);
        for v in ["1.0.0", "1.1.0"] {
            env.ctl_json(&["push", &lora(), "--name", "acme/bot", "--version", v], 0);
        }

        // A new alias, then a move without --expect: the CLI reads the current target first.
        let t = env.ctl_json(&["tag", "acme/bot@1.0.0", "prod", "--reason", "first"], 0);
        assert_eq!(
            (&t["version"], &t["previous"]),
            (&json!("1.0.0"), &Value::Null),
            "{stack}: {t}"
        );
        let (out, _) = text(
            &env,
            &["tag", "acme/bot@1.1.0", "prod", "--reason", "better tone"],
            0,
        );
        assert!(out.contains("prod: 1.0.0 -> 1.1.0"), "{stack}: {out}");

        // A stale --expect: exit 9, the current target in the error.
        let e = env.ctl_json(&["tag", "acme/bot@1.0.0", "prod", "--expect", "1.0.0"], 9);
        assert_eq!(e["error"]["code"], "alias_conflict", "{e}");
        assert_eq!(e["error"]["details"]["current"], "1.1.0", "{e}");
        let (_, err) = text(
            &env,
            &["tag", "acme/bot@1.0.0", "prod", "--expect", "1.0.0"],
            9,
        );
        assert!(err.contains("alias_conflict"), "{err}");

        let l = env.ctl_json(&["alias", "ls", "acme/bot"], 0);
        assert_eq!(l["aliases"][0]["alias"], "prod", "{l}");
        assert_eq!(l["aliases"][0]["version"], "1.1.0", "{l}");
        let h = env.ctl_json(&["alias", "history", "acme/bot", "prod"], 0);
        assert_eq!(
            adapter_testkit::alias_moves(&h),
            vec![
                (Value::Null, json!("1.0.0")),
                (json!("1.0.0"), json!("1.1.0"))
            ],
            "{h}"
        );
        let (out, _) = text(&env, &["alias", "history", "acme/bot", "prod"], 0);
        assert!(out.contains("1.0.0 -> 1.1.0  better tone"), "{out}");
        assert!(out.contains("(new) -> 1.0.0  first"), "{out}");

        // Yank 1.0.0: a gate that wants unyanked targets refuses it (exit 10).
        let g = env.ctl_json(
            &[
                "gate",
                "set",
                "acme/bot",
                "prod",
                "--not-yanked",
                "--min",
                "mmlu:acc=0.5",
            ],
            0,
        );
        assert_eq!(
            g["conditions"],
            json!([{"eval": "mmlu:acc", "min": 0.5}, {"not_yanked": true}]),
            "{g}"
        );
        let y = env.ctl_json(&["yank", "acme/bot@1.0.0", "--reason", "leaks prompts"], 0);
        assert_eq!(
            (&y["yanked"], &y["yank_reason"]),
            (&json!(true), &json!("leaks prompts")),
            "{y}"
        );
        let e = env.ctl_json(&["tag", "acme/bot@1.0.0", "prod"], 10);
        assert_eq!(e["error"]["code"], "gate_failed", "{e}");
        assert_eq!(
            e["error"]["details"]["failures"].as_array().unwrap().len(),
            2,
            "{e}"
        );
        let (_, err) = text(&env, &["tag", "acme/bot@1.0.0", "prod"], 10);
        assert!(
            err.contains("is yanked") && err.contains("no mmlu:acc score"),
            "{err}"
        );
        assert_eq!(
            env.ctl_json(&["gate", "show", "acme/bot", "prod"], 0)["conditions"],
            g["conditions"]
        );
        env.ctl_json(&["gate", "rm", "acme/bot", "prod"], 0);
        env.ctl_json(&["gate", "show", "acme/bot", "prod"], 6);

        // A yanked pin still pulls, with the reason; "latest" skips it.
        let out = env.path("pinned");
        let p = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["yanked"], true, "{p}");
        assert!(
            p["warnings"].to_string().contains("leaks prompts"),
            "{stack}: {p}"
        );
        let out = env.path("pinned-text");
        let (_, err) = text(
            &env,
            &["pull", "acme/bot@1.0.0", "-o", out.to_str().unwrap()],
            0,
        );
        assert!(
            err.contains("warning: acme/bot@1.0.0 is yanked: leaks prompts"),
            "{err}"
        );
        env.ctl_json(&["yank", "acme/bot@1.1.0", "--reason", "recall"], 0);
        let out = env.path("latest");
        env.ctl_json(&["pull", "acme/bot", "-o", out.to_str().unwrap()], 6);
        let u = env.ctl_json(&["unyank", "acme/bot@1.1.0"], 0);
        assert_eq!(u["yanked"], false, "{u}");
        let p = env.ctl_json(&["pull", "acme/bot", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["version"], "1.1.0", "{p}");

        // Usage errors: a range cannot be yanked, a reason is required, aliases are checked.
        env.ctl_json(&["yank", "acme/bot@^1", "--reason", "x"], 2);
        assert_eq!(env.ctl(&["yank", "acme/bot@1.1.0"]).status.code(), Some(2));
        env.ctl_json(&["tag", "acme/bot@1.1.0", "1prod"], 2);
        env.ctl_json(&["tag", "acme/bot@9.9.9", "prod"], 6);

        // Remove the alias (compare-and-swap on what it points to now): recorded.
        let r = env.ctl_json(
            &["alias", "rm", "acme/bot", "prod", "--reason", "retired"],
            0,
        );
        assert_eq!(r["previous"], "1.1.0", "{r}");
        let h = env.ctl_json(&["alias", "history", "acme/bot", "prod"], 0);
        let last = h["entries"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (&last["from"], &last["to"], &last["reason"]),
            (&json!("1.1.0"), &Value::Null, &json!("retired")),
            "{h}"
        );
        env.ctl_json(&["alias", "rm", "acme/bot", "prod"], 6);
        assert_eq!(
            env.ctl_json(&["alias", "ls", "acme/bot"], 0)["aliases"],
            json!([])
        );
    }
}
