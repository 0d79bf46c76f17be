//! Production logs: one JSON object per line with `service.name`, and on a request's lines its
//! request id and trace id; an API key never appears in them.

use std::io::BufRead;
use std::time::Duration;

#[test]
fn json_log_lines_name_the_service_request_and_trace_but_never_the_key() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clokio-gateway"))
        .env("CLOKIO_LOG_FORMAT", "json")
        .env("CLOKIO_LOG", "info,clokio_gateway=debug")
        .env("CLOKIO_GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("CLOKIO_GATEWAY_OPS_ADDR", "off")
        .env_remove("OTEL_SDK_DISABLED")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gateway started");
    let (lines, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    // A key of the right shape whose checksum fails: refused (401) before any lookup.
    let key = "clk_0123456789abcdefghijklmnopQRSTUV";
    let request = format!(
        "GET /api/v1/employees HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nX-Request-Id: log-test-7\r\nConnection: close\r\n\r\n"
    );
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            conn.write_all(request.as_bytes()).expect("request sent");
            let mut response = String::new();
            let _ = conn.read_to_string(&mut response);
            answered = Some(response);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = answered.expect("the gateway answered");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let mut seen = Vec::new();
    let request_line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no log line for the request; saw:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if line.contains("log-test-7") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    for line in &seen {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(value["service.name"], "gateway", "{line}");
        assert!(!line.contains(key), "the key was logged: {line}");
    }
    let entry: serde_json::Value = serde_json::from_str(&request_line).unwrap();
    assert_eq!(entry["request_id"], "log-test-7", "{request_line}");
    assert_eq!(entry["status"], 401, "{request_line}");
    let trace_id = entry["trace_id"].as_str().unwrap_or_default();
    assert!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{request_line}"
    );
}
