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
