//! The API fuzzed from its own OpenAPI document: schemathesis (PyPI) generates thousands of
//! requests from the served `/api/v1/openapi.json` against a stack of the test's own, and every
//! answer must be no 5xx and conform to the document (status codes, content types, headers,
//! schemas). `deploy/local/test.sh` installs schemathesis and names it in `CLOKIO_SCHEMATHESIS`;
//! without that variable the test says so and does nothing.
//!
//! `negative_data_rejection` is checked too: a request the document calls invalid (a blank
//! `format: date` parameter, say) must be refused. So is `positive_data_acceptance`: every
//! schema-valid request must be accepted, except where the contract refuses it for a rule no
//! JSON Schema keyword states. Those are [`BUSINESS_RULES`], by operation and message, each with
//! its reason; any other refusal of a schema-valid request fails the test, so a bound the server
//! checks and the document does not state is found.

use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

/// Schema-valid requests the API refuses on purpose: (operation, the start of the message, why no
/// schema says it).
const BUSINESS_RULES: &[(&str, &str, &str)] = &[
    (
        "POST /api/v1/attendance/import",
        "records.0: Employee ",
        "an employee code must name an employee of the organization: the server's state",
    ),
    (
        "POST /api/v1/attendance/sessions",
        "Employee ",
        "an employee code must name an employee of the organization: the server's state",
    ),
    (
        "POST /api/v1/employees",
        "The selected location is invalid",
        "a location must name one of the organization's: the server's state",
    ),
    (
        "POST /api/v1/locations",
        "The name has already been taken",
        "names are unique within the organization: the server's state",
    ),
    (
        "POST /api/v1/webhooks",
        "The url must not point to a private, loopback, link-local or reserved address",
        "the address a host resolves to is checked against the network policy (SSRF)",
    ),
    (
        "POST /api/v1/api-keys",
        "An organization may have at most 50 active API keys",
        "a cap on what the organization holds: the server's state",
    ),
    (
        "POST /api/v1/webhooks",
        "An organization may have at most 100 webhooks",
        "a cap on what the organization holds: the server's state",
    ),
    (
        "PATCH /api/v1/webhooks/{id}",
        "The url must not point to a private, loopback, link-local or reserved address",
        "the address a host resolves to is checked against the network policy (SSRF)",
    ),
    (
        "PATCH /api/v1/attendance/sessions/{id}",
        "The clock_in field must be a valid RFC 3339 date-time",
        "not a rule but schemathesis's coverage phase, which sends \"\" as a valid `date-time`",
    ),
    (
        "PATCH /api/v1/attendance/sessions/{id}",
        "The clock_out field must be a valid RFC 3339 date-time",
        "not a rule but schemathesis's coverage phase, which sends \"\" as a valid `date-time`",
    ),
    (
        "POST /api/v1/attendance/clock-in",
        "The timestamp field must not be more than 72 hours in the past",
        "the organization's offline window is a setting, measured from the request's arrival",
    ),
    (
        "POST /api/v1/attendance/clock-out",
        "The timestamp field must not be more than 72 hours in the past",
        "the organization's offline window is a setting, measured from the request's arrival",
    ),
    (
        "POST /api/v1/attendance/break-start",
        "The timestamp field must not be more than 72 hours in the past",
        "the organization's offline window is a setting, measured from the request's arrival",
    ),
    (
        "POST /api/v1/attendance/break-end",
        "The timestamp field must not be more than 72 hours in the past",
        "the organization's offline window is a setting, measured from the request's arrival",
    ),
    (
        "GET /api/v1/attendance/range",
        "The date range may not exceed 31 days",
        "a bound between two parameters",
    ),
    (
        "GET /api/v1/attendance/range",
        "The end field must be a date after or equal to start",
        "an order between two parameters",
    ),
    (
        "GET /api/v1/attendance/employee/{nip}",
        "The end field must be a date after or equal to start",
        "an order between two parameters",
    ),
    (
        "GET /api/v1/attendance/employee/{nip}",
        "The date range may not exceed 366 days",
        "a bound between two parameters",
    ),
    (
        "POST /api/v1/leaves",
        "The end_date field must be a date after or equal to start_date",
        "an order between two fields",
    ),
    (
        "POST /api/v1/leaves",
        "A leave may not be longer than 366 days",
        "a bound between two fields",
    ),
    (
        "POST /api/v1/leaves",
        "The Idempotency-Key has already been used for a different request",
        "a key's first request is state on the server",
    ),
    (
        "DELETE /api/v1/leaves/{id}",
        "The Idempotency-Key has already been used for a different request",
        "a key's first request is state on the server",
    ),
    (
        "PATCH /api/v1/attendance/sessions/{id}",
        "The Idempotency-Key has already been used for a different request",
        "a key's first request is state on the server",
    ),
    (
        "DELETE /api/v1/attendance/sessions/{id}",
        "The Idempotency-Key has already been used for a different request",
        "a key's first request is state on the server",
    ),
    (
        "POST /api/v1/attendance/clock-in",
        "The longitude field is required when latitude is present",
        "two optional fields that come together (`dependentRequired`), which utoipa's derive \
         cannot state",
    ),
    (
        "POST /api/v1/attendance/clock-in",
        "The latitude field is required when longitude is present",
        "two optional fields that come together (`dependentRequired`), which utoipa's derive \
         cannot state",
    ),
    (
        "POST /api/v1/attendance/clock-out",
        "The longitude field is required when latitude is present",
        "two optional fields that come together (`dependentRequired`), which utoipa's derive \
         cannot state",
    ),
    (
        "POST /api/v1/attendance/clock-out",
        "The latitude field is required when longitude is present",
        "two optional fields that come together (`dependentRequired`), which utoipa's derive \
         cannot state",
    ),
    (
        "POST /api/v1/api-keys",
        "Give either scopes or preset, not both",
        "two optional fields that exclude each other (`not: {required: [scopes, preset]}`), \
         which utoipa's derive cannot state",
    ),
    (
        "POST /api/v1/periods/{period}/close",
        "The period {} has not ended yet",
        "only a month that has ended may be closed: it depends on today's date",
    ),
    (
        "PATCH /api/v1/organization",
        "The request must change at least one setting",
        "minProperties would count members the server ignores",
    ),
];

/// Whether `message` is the listed one: it starts with it, and a `{}` in it stands for any text.
fn matches(message: &str, listed: &str) -> bool {
    match listed.split_once("{}") {
        Some((start, end)) => {
            message.len() >= start.len() + end.len()
                && message.starts_with(start)
                && message.ends_with(end)
        }
        None => message.starts_with(listed),
    }
}

/// The refusals of schema-valid requests in schemathesis's JUnit report that [`BUSINESS_RULES`]
/// does not list, and any failure of another check, as readable lines.
fn unexpected_failures(junit: &str) -> Vec<String> {
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    };
    let mut unexpected = Vec::new();
    for case in junit.split("<testcase ").skip(1) {
        let operation = unescape(
            case.strip_prefix("name=\"")
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("?"),
        );
        if case.contains("<error") {
            unexpected.push(format!("{operation}: an error ({case})"));
        }
        // One block per failing test case, each naming its checks (`- ST202 Schema-valid…`).
        for block in case.split("Test Case ID:").skip(1) {
            let text = unescape(block);
            let mut refused = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with("- ST202 ") {
                    refused = true;
                } else if line.starts_with("- ST") {
                    unexpected.push(format!("{operation}: {line}"));
                }
            }
            if !refused {
                continue;
            }
            for message in text.split("\"message\":\"").skip(1) {
                let message = message.split('"').next().unwrap_or_default();
                let listed = BUSINESS_RULES
                    .iter()
                    .any(|(op, m, _)| *op == operation && matches(message, m));
                if !listed {
                    unexpected.push(format!(
                        "{operation}: refused a schema-valid request: {message}"
                    ));
                }
            }
        }
    }
    unexpected
}

#[test]
fn a_report_of_listed_refusals_only_passes_and_any_other_fails() {
    let case = |op: &str, code: &str, message: &str| {
        format!(
            "<testcase name=\"{op}\" time=\"0.1\">\n<failure type=\"failure\" message=\"{code}\">1. Test Case ID: x\n\n- {code} Something\n\n[422] Unprocessable Content:\n\n    `{{\"status\":\"error\",\"message\":\"{message}\",\"data\":null}}`\n</failure>\n</testcase>"
        )
    };
    let listed = case(
        "GET /api/v1/attendance/range",
        "ST202",
        "The date range may not exceed 31 days",
    );
    assert_eq!(unexpected_failures(&listed), Vec::<String>::new());
    let elsewhere = case(
        "GET /api/v1/leaves",
        "ST202",
        "The date range may not exceed 31 days",
    );
    assert_eq!(unexpected_failures(&elsewhere).len(), 1);
    let other_check = case("GET /api/v1/leaves", "ST201", "whatever");
    assert_eq!(unexpected_failures(&other_check).len(), 1);
    // A listed message is a prefix: an address or a name may follow it.
    let longer = case(
        "POST /api/v1/webhooks",
        "ST202",
        "The url must not point to a private, loopback, link-local or reserved address (0.0.0.0)",
    );
    assert_eq!(unexpected_failures(&longer), Vec::<String>::new());
    assert!(matches(
        "The period 3673-10 has not ended yet",
        "The period {} has not ended yet"
    ));
    assert!(!matches(
        "The period 2026-02 is closed",
        "The period {} has not ended yet"
    ));
}

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
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "100", "--seed", "42"])
        // One worker: with two, hypothesis describes strategies by parsing lambdas from two
        // threads, and CPython 3.11's AST constructor is not safe for that ("AST constructor
        // recursion depth mismatch", a runtime error of the tool, seen on a busy machine).
        .args(["--generation-database", "none", "--workers", "1"])
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
    if out.status.success() {
        return;
    }
    // Failures: acceptable only if each is a listed refusal of a schema-valid request.
    let junit: String = std::fs::read_dir(&report)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let unexpected = unexpected_failures(&junit);
    assert!(
        !junit.is_empty() && unexpected.is_empty(),
        "schemathesis found failures (exit {:?}); report in {}:\n{}\n{}\n{}",
        out.status.code(),
        report.display(),
        unexpected.join("\n"),
        tail.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
