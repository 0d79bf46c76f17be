//! Every setting is checked at start: a bad value stops the binary with exit status 2 and an
//! error that names the variable.

#[test]
fn a_bad_setting_stops_the_start_and_names_the_variable() {
    for (var, value) in [
        ("CLOKIO_ATTENDANCE_DB_MAX_CONNECTIONS", "0"),
        ("CLOKIO_ATTENDANCE_MAX_IN_FLIGHT", "-1"),
        ("CLOKIO_ATTENDANCE_BATCH_LOCK_WAIT_MS", "0"),
        ("CLOKIO_ATTENDANCE_OPS_ADDR", "9102"),
        ("CLOKIO_STREAM_REPLICAS", "7"),
        (
            "CLOKIO_NATS_URL",
            "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
        ),
        ("CLOKIO_BUS_TIMEOUT_MS", "0"),
        ("CLOKIO_SUBJECT_PREFIX", "bad prefix"),
    ] {
        let stderr = clokio_runtime::config::refusal(
            env!("CARGO_BIN_EXE_clokio-attendance-svc"),
            var,
            value,
        )
        .unwrap_or_else(|| panic!("{var}={value} was not refused"));
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
