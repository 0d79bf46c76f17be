//! The API fuzzed from its own OpenAPI document: schemathesis (PyPI) generates thousands of
//! requests from the served `/api/v1/openapi.json` against a stack of the test's own, and every
//! answer must be no 5xx and conform to the document (status codes, content types, headers,
//! schemas). `deploy/local/test.sh` installs schemathesis and names it in `CLOKIO_SCHEMATHESIS`;
//! without that variable the test says so and does nothing.
//!
//! `negative_data_rejection` is checked too: a request the document calls invalid (a blank
//! `format: date` parameter, say) must be refused. `positive_data_acceptance` is not: it expects
//! every schema-valid request to be accepted, but the contract answers 422 for rules no schema
//! keyword states (a range over 31 days, an end before its start, a kiosk timestamp outside the
//! org's offline window), so schema-valid requests are rightly refused.

use clokio_bus::types::Plan;
use clokio_testkit::{Stack, json};

#[tokio::test]
async fn the_api_survives_fuzzing_from_its_openapi_document() {
    let Ok(schemathesis) = std::env::var("CLOKIO_SCHEMATHESIS") else {
        eprintln!("CLOKIO_SCHEMATHESIS is not set (deploy/local/test.sh sets it): not fuzzing");
        return;
    };
    let (stack, gw) = Stack::start().await;
    let org = stack
        .create_org(Plan::Enterprise, Some(100_000_000), "UTC")
        .await;
    let key = stack.create_key(org.id).await;
    gw.post(
        &key,
        "/api/v1/locations",
        &json!({"name": "Main Office", "latitude": 32.0853, "longitude": 34.7818, "radius_meters": 200}),
    )
    .await
    .expect(201);
    // The document's example employee, so clock and leave operations get past "not found".
    gw.create_employee(&key, "Sarah Johnson", json!({"employee_code": "EMP-1042"}))
        .await;
    let report = std::env::temp_dir().join(format!("clokio-fuzz-{}", org.id));
    let mut cmd = std::process::Command::new("timeout");
    cmd.args(["--kill-after=10", "300", &schemathesis, "run"])
        .arg(format!("{}/api/v1/openapi.json", gw.url))
        .args(["--url", &gw.url])
        .args(["-H", &format!("X-API-Key: {key}")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "100", "--seed", "42"])
        .args(["--generation-database", "none", "--workers", "2"])
        .args(["--request-timeout", "10", "--no-color"])
        // A successful event stream never ends, so every accepted request would time out; its
        // input handling is tested in stream.rs.
        .args(["--exclude-path", "/api/v1/events/stream"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report);
    // The stack keeps serving on this runtime while schemathesis runs on a blocking thread.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stdout.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    eprintln!("{}", tail.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}); report in {}:\n{}\n{}",
        out.status.code(),
        report.display(),
        tail.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
