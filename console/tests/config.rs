//! Every setting is checked at start: a bad value stops the binary with exit status 2 and an
//! error that names the variable.

#[test]
fn a_bad_setting_stops_the_start_and_names_the_variable() {
    for (var, value) in [
        ("CLOKIO_CONSOLE_ADDR", "nowhere"),
        ("CLOKIO_CONSOLE_OPS_ADDR", "nowhere"),
        ("CLOKIO_CONSOLE_PUBLIC_URL", "admin.example.com"),
        ("CLOKIO_CONSOLE_PUBLIC_URL", "ftp://admin.example.com"),
        ("CLOKIO_CONSOLE_SESSION_IDLE_MS", "0"),
        ("CLOKIO_CONSOLE_SESSION_MAX_MS", "forever"),
        ("CLOKIO_CONSOLE_TRUST_FORWARDED", "maybe"),
        ("CLOKIO_CONSOLE_SIGNIN_ACCOUNT_LIMIT", "0"),
        ("CLOKIO_CONSOLE_SIGNIN_ADDRESS_LIMIT", "-1"),
        ("CLOKIO_CONSOLE_SIGNIN_WINDOW_MS", "0"),
        ("CLOKIO_CONSOLE_ADMIN_CHECK_MS", "0"),
        ("CLOKIO_SUBJECT_PREFIX", "bad prefix"),
    ] {
        let stderr =
            clokio_runtime::config::refusal(env!("CARGO_BIN_EXE_clokio-console"), var, value)
                .unwrap_or_else(|| panic!("{var}={value} was not refused"));
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
