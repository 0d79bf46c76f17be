//! Every setting is checked at start: a bad value stops the binary with exit status 2 and an
//! error that names the variable.

#[test]
fn a_bad_setting_stops_the_start_and_names_the_variable() {
    for (var, value) in [
        ("CLOKIO_REPORTING_DB_MAX_CONNECTIONS", "0"),
        ("CLOKIO_REPORTING_MAX_IN_FLIGHT", "0"),
        ("CLOKIO_REPORTING_OPS_ADDR", "x"),
        ("CLOKIO_STREAM_REPLICAS", "7"),
        (
            "CLOKIO_NATS_URL",
            "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
        ),
        ("CLOKIO_BUS_TIMEOUT_MS", "0"),
        ("CLOKIO_SUBJECT_PREFIX", "bad prefix"),
    ] {
        let stderr =
            clokio_runtime::config::refusal(env!("CARGO_BIN_EXE_clokio-reporting-svc"), var, value)
                .unwrap_or_else(|| panic!("{var}={value} was not refused"));
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
