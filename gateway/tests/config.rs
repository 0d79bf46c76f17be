//! Every setting is checked at start: a bad value stops the binary with exit status 2 and an
//! error that names the variable.

#[test]
fn a_bad_setting_stops_the_start_and_names_the_variable() {
    for (var, value) in [
        ("CLOKIO_RATE_LIMIT_BASIC", "lots"),
        ("CLOKIO_MAX_BODY_BYTES", "0"),
        ("CLOKIO_AUTH_CACHE_TTL_MS", "0"),
        ("CLOKIO_AUTH_CACHE_TTL_MS", "600000"),
        ("CLOKIO_REDIS_TIMEOUT_MS", "-5"),
        ("CLOKIO_GATEWAY_ADDR", "nowhere"),
        ("CLOKIO_STREAM_REPLICAS", "7"),
        (
            "CLOKIO_NATS_URL",
            "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
        ),
        ("CLOKIO_BUS_TIMEOUT_MS", "0"),
        ("CLOKIO_SUBJECT_PREFIX", "bad prefix"),
    ] {
        let stderr =
            clokio_runtime::config::refusal(env!("CARGO_BIN_EXE_clokio-gateway"), var, value)
                .unwrap_or_else(|| panic!("{var}={value} was not refused"));
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

/// An address the gateway cannot listen on (taken here) is a refusal to start too, naming the
/// variable, before anything else is connected.
#[test]
fn an_address_taken_stops_the_start_and_names_the_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = clokio_runtime::config::refusal(
        env!("CARGO_BIN_EXE_clokio-gateway"),
        "CLOKIO_GATEWAY_ADDR",
        &addr,
    )
    .unwrap_or_else(|| panic!("CLOKIO_GATEWAY_ADDR={addr} (taken) was not refused"));
    assert!(
        stderr.contains("CLOKIO_GATEWAY_ADDR") && stderr.contains("cannot listen"),
        "{stderr}"
    );
}

/// The settings' one declaration also gives `--help` (every variable listed, exit 0), flags that
/// win over their variables, and variables that are set but empty counting as unset.
#[test]
fn help_flags_and_empty_variables() {
    let gateway = env!("CARGO_BIN_EXE_clokio-gateway");
    let help = std::process::Command::new(gateway)
        .arg("--help")
        .output()
        .expect("the gateway runs");
    assert!(help.status.success(), "{help:?}");
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "CLOKIO_NATS_URL",
        "CLOKIO_SUBJECT_PREFIX",
        "CLOKIO_BUS_TIMEOUT_MS",
        "CLOKIO_STREAM_REPLICAS",
        "CLOKIO_GATEWAY_ADDR",
        "CLOKIO_GATEWAY_OPS_ADDR",
        "CLOKIO_REDIS_URL",
        "CLOKIO_REDIS_TIMEOUT_MS",
        "CLOKIO_RATE_LIMIT_BASIC",
        "CLOKIO_RATE_LIMIT_PRO",
        "CLOKIO_AUTH_CACHE_TTL_MS",
        "CLOKIO_KEY_TOUCH_INTERVAL_MS",
        "CLOKIO_MAX_BODY_BYTES",
        "CLOKIO_MAX_IMPORT_BODY_BYTES",
        "CLOKIO_STREAM_BUFFER",
        "CLOKIO_STREAM_HEARTBEAT_MS",
    ] {
        assert!(help.contains(var), "--help does not list {var}:\n{help}");
    }

    // The flag's value is checked, and named by its variable, though the variable is fine.
    let flag = std::process::Command::new(gateway)
        .args(["--stream-replicas", "9"])
        .env("CLOKIO_STREAM_REPLICAS", "1")
        .output()
        .expect("the gateway runs");
    let stderr = String::from_utf8_lossy(&flag.stderr);
    assert_eq!(flag.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(r#"CLOKIO_STREAM_REPLICAS="9""#), "{stderr}");

    // An empty variable is unset (its default holds), so the refusal is the other variable's.
    let empty = std::process::Command::new(gateway)
        .env("CLOKIO_STREAM_REPLICAS", "")
        .env("CLOKIO_RATE_LIMIT_BASIC", "0")
        .output()
        .expect("the gateway runs");
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert_eq!(empty.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CLOKIO_RATE_LIMIT_BASIC") && !stderr.contains("CLOKIO_STREAM_REPLICAS"),
        "{stderr}"
    );
}
