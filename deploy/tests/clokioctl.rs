//! clokioctl against a real employee-svc: the JSON contract up.sh and operators script against.

use std::process::Command;

use clokio_tests::Stack;
use serde_json::Value;

fn clokioctl(stack: &Stack, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clokioctl"))
        .args(args)
        .env("CLOKIO_NATS_URL", &stack.bus_config.nats_url)
        .env(
            "CLOKIO_SUBJECT_PREFIX",
            stack.bus_config.subjects.prefix().as_str(),
        )
        .output()
        .expect("clokioctl runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Exactly one JSON object on stdout.
fn one_object(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(v.is_object());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_and_key_lifecycle_with_json_output() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let gw = stack.start_gateway().await;

    let (ok, out, err) = clokioctl(
        &stack,
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--plan",
            "enterprise",
            "--rate-limit",
            "5000",
            "--timezone",
            "Europe/Berlin",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let org = one_object(&out);
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(org["plan"], "enterprise");
    assert_eq!(org["rate_limit_per_minute"], 5000);
    assert_eq!(org["timezone"], "Europe/Berlin");

    let (ok, out, _) = clokioctl(
        &stack,
        &[
            "--json", "key", "create", "--org", &org_id, "--name", "Payroll",
        ],
    );
    assert!(ok);
    let key = one_object(&out);
    let secret = key["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("clk_") && secret.len() == 36);
    assert_eq!(key["org_id"], org_id.as_str());

    // The key works through the gateway, with the enterprise limit.
    let res = gw.get(&secret, "/api/v1/employees").await.expect(200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("5000"));

    let (ok, out, _) = clokioctl(&stack, &["org", "list", "--json"]);
    assert!(ok);
    let list = one_object(&out);
    assert!(
        list["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == org_id.as_str())
    );

    // Human output names the key once and warns that it is shown once.
    let (ok, out, _) = clokioctl(
        &stack,
        &["key", "create", "--org", &org_id, "--name", "Second"],
    );
    assert!(ok);
    assert!(
        out.contains("clk_") && out.contains("shown only once"),
        "{out}"
    );
    // Scopes by preset or one by one, and an expiry.
    let (ok, out, _) = clokioctl(
        &stack,
        &[
            "--json",
            "key",
            "create",
            "--org",
            &org_id,
            "--name",
            "Lobby",
            "--preset",
            "kiosk",
            "--expires-at",
            "2099-01-31T23:59:59Z",
        ],
    );
    assert!(ok);
    let kiosk = one_object(&out);
    assert_eq!(kiosk["scopes"], serde_json::json!(["attendance:write"]));
    assert_eq!(kiosk["expires_at"], "2099-01-31T23:59:59Z");
    gw.get(kiosk["key"].as_str().unwrap(), "/api/v1/employees")
        .await
        .expect_error(403, "This API key does not have the employees:read scope");
    let (ok, out, _) = clokioctl(
        &stack,
        &[
            "--json",
            "key",
            "create",
            "--org",
            &org_id,
            "--name",
            "Reports",
            "--scope",
            "reports:read",
            "--scope",
            "events:read",
        ],
    );
    assert!(ok);
    assert_eq!(
        one_object(&out)["scopes"],
        serde_json::json!(["reports:read", "events:read"])
    );
    let (ok, out, err) = clokioctl(
        &stack,
        &[
            "key", "create", "--org", &org_id, "--name", "x", "--scope", "root",
        ],
    );
    assert!(!ok && out.is_empty());
    assert!(err.contains("\"root\" is not a scope"), "{err}");

    let key_id = key["id"].as_str().unwrap();
    let (ok, out, _) = clokioctl(
        &stack,
        &["key", "revoke", "--org", &org_id, "--id", key_id, "--json"],
    );
    assert!(ok);
    assert!(one_object(&out)["revoked_at"].is_string());
    // Revoked elsewhere: the gateway learns from the revocation event, within a second.
    let revoked = std::time::Instant::now();
    while gw.get(&secret, "/api/v1/employees").await.status != 401 {
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "revoked key still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_a_message_and_no_output() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "org",
                "create",
                "--name",
                "X",
                "--plan",
                "gold",
                "--timezone",
                "UTC",
            ],
            "plan",
        ),
        (
            vec![
                "org",
                "create",
                "--name",
                "X",
                "--plan",
                "pro",
                "--timezone",
                "Mars/Base",
            ],
            "IANA",
        ),
        (
            vec![
                "org",
                "create",
                "--name",
                "X",
                "--plan",
                "enterprise",
                "--timezone",
                "UTC",
            ],
            "rate_limit_per_minute",
        ),
        (
            vec![
                "org",
                "create",
                "--name",
                "X",
                "--plan",
                "basic",
                "--rate-limit",
                "10",
                "--timezone",
                "UTC",
            ],
            "enterprise",
        ),
        (
            vec!["key", "create", "--org", "nope", "--name", "k"],
            "UUID",
        ),
        (
            vec![
                "key",
                "create",
                "--org",
                "6f1c2a44-0000-4000-8000-000000000000",
                "--name",
                "k",
            ],
            "Organization not found",
        ),
    ];
    for (args, needle) in cases {
        let (ok, out, err) = clokioctl(&stack, &args);
        assert!(!ok, "{args:?} succeeded");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_of_an_organization() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let (ok, out, err) = clokioctl(
        &stack,
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--plan",
            "pro",
            "--timezone",
            "UTC",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let org_id = one_object(&out)["id"].as_str().unwrap().to_owned();

    // No location yet: an admin needs one, and says so.
    let admin = [
        "admin",
        "create",
        "--org",
        &org_id,
        "--email",
        "ada@acme.test",
        "--name",
        "Ada",
    ];
    let (ok, out, err) = clokioctl(&stack, &admin);
    assert!(!ok && out.is_empty());
    assert!(
        err.contains("The organization has no location yet"),
        "{err}"
    );

    let (ok, out, err) = clokioctl(
        &stack,
        &[
            "location",
            "create",
            "--org",
            &org_id,
            "--name",
            "Main Office",
            "--latitude",
            "-33.86",
            "--longitude",
            "151.2",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let location = one_object(&out);
    assert_eq!(location["latitude"], -33.86);
    assert_eq!(location["radius_meters"], 200.0);

    // A generated one-time password, printed once (human output says so).
    let (ok, out, err) = clokioctl(&stack, &admin);
    assert!(ok, "{err}");
    assert!(
        out.contains("Created admin \"Ada\" <ada@acme.test>"),
        "{out}"
    );
    assert!(
        out.contains("must be changed at the first sign-in"),
        "{out}"
    );
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(password.len(), 16);

    // A chosen password, from the environment; too short is refused.
    let (ok, _, err) = clokioctl(
        &stack,
        &[
            "admin",
            "create",
            "--org",
            &org_id,
            "--email",
            "bob@acme.test",
            "--name",
            "Bob",
            "--password",
            "short",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("The password field must be at least 12 characters"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clokioctl"))
        .args([
            "--json",
            "admin",
            "create",
            "--org",
            &org_id,
            "--email",
            "bob@acme.test",
            "--name",
            "Bob",
        ])
        .env("CLOKIO_NATS_URL", &stack.bus_config.nats_url)
        .env(
            "CLOKIO_SUBJECT_PREFIX",
            stack.bus_config.subjects.prefix().as_str(),
        )
        .env("CLOKIO_ADMIN_PASSWORD", "a long enough password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = one_object(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(bob["must_change_password"], false);
    assert!(
        bob.get("password").is_none(),
        "a chosen password is not printed"
    );

    // The operator's reset for a lost password: a new one-time password.
    let (ok, out, err) = clokioctl(
        &stack,
        &[
            "admin",
            "reset-password",
            "--org",
            &org_id,
            "--email",
            "BOB@acme.test",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let reset = one_object(&out);
    assert_eq!(reset["must_change_password"], true);
    assert_eq!(reset["password"].as_str().unwrap().len(), 16);
    assert!(
        reset["credentials_version"].as_i64().unwrap()
            > bob["credentials_version"].as_i64().unwrap()
    );
    let (ok, _, err) = clokioctl(
        &stack,
        &[
            "admin",
            "reset-password",
            "--org",
            &org_id,
            "--email",
            "nobody@acme.test",
        ],
    );
    assert!(!ok && err.contains("Admin not found"), "{err}");

    let (ok, out, _) = clokioctl(&stack, &["admin", "list", "--org", &org_id, "--json"]);
    assert!(ok);
    let list = one_object(&out);
    let admins = list["admins"].as_array().unwrap();
    assert_eq!(admins.len(), 2);
    assert_eq!(admins[0]["must_change_password"], true);
    assert_eq!(admins[0]["email"], "ada@acme.test");
}
