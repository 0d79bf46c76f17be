//! Every setting is checked at start: a bad value stops the binary with exit status 2 and an
//! error that names the variable.

#[test]
fn a_bad_setting_stops_the_start_and_names_the_variable() {
    for (var, value) in [
        ("CLOKIO_WEBHOOK_WORKERS", "0"),
        ("CLOKIO_WEBHOOK_TIMEOUT_MS", "soon"),
        ("CLOKIO_WEBHOOK_REQUEUE_AFTER_MS", "0"),
        ("CLOKIO_WEBHOOK_RETRY_SCHEDULE", "5s,banana"),
        ("CLOKIO_WEBHOOK_ALLOW_CIDRS", "10.0.0.0/33"),
        ("CLOKIO_WEBHOOK_ALLOW_HTTP", "maybe"),
        ("CLOKIO_WEBHOOK_OPS_ADDR", "x"),
        ("CLOKIO_WEBHOOK_SECRET_KEY", "c2hvcnQ="),
        // Set but empty is unset, and the key is required.
        ("CLOKIO_WEBHOOK_SECRET_KEY", ""),
        ("CLOKIO_STREAM_REPLICAS", "7"),
        (
            "CLOKIO_NATS_URL",
            "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
        ),
        ("CLOKIO_BUS_TIMEOUT_MS", "0"),
        ("CLOKIO_SUBJECT_PREFIX", "bad prefix"),
    ] {
        let stderr =
            clokio_runtime::config::refusal(env!("CARGO_BIN_EXE_clokio-webhook-svc"), var, value)
                .unwrap_or_else(|| panic!("{var}={value} was not refused"));
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

/// The sealing key is never printed, whether it came from its variable or its flag.
#[test]
fn a_bad_secret_key_is_refused_without_being_shown() {
    for (flag, env) in [(None, "bm90LTMyLWJ5dGVz"), (Some("bm90LTMyLWJ5dGVz"), "")] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_clokio-webhook-svc"));
        command.env("CLOKIO_WEBHOOK_SECRET_KEY", env);
        if let Some(flag) = flag {
            command.args(["--secret-key", flag]);
        }
        let out = command.output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("CLOKIO_WEBHOOK_SECRET_KEY") && !stderr.contains("bm90LTMyLWJ5dGVz"),
            "{stderr}"
        );
    }
}
