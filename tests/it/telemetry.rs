//! One trace per request, across NATS: spans go to an in-process OpenTelemetry exporter, and a
//! clock-in sent with a known W3C trace context must come back as one tree: the gateway's HTTP
//! span, its bus request, attendance-svc's bus span and its SQL, then, through the outbox and
//! JetStream, webhook-svc's intake and delivery and reporting-svc's projection. The bus message
//! itself is checked for the lowercase `traceparent` header.

use std::collections::HashMap;
use std::time::Duration;

use clokio_bus::ServiceName;
use clokio_bus::types::Plan;
use clokio_tests::{Receiver, Stack, json};
use futures::StreamExt;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_clock_in_is_one_trace_from_http_through_nats_to_sql_and_every_consumer() {
    let exporter = InMemorySpanExporter::default();
    assert!(
        clokio_runtime::telemetry::init_with_exporter("system-test", exporter.clone()),
        "this test process installs its tracing first"
    );
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let receiver = Receiver::start().await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "T-1"}))
        .await;
    gw.webhook(
        &t.key,
        json!({"url": format!("{}/hook", receiver.url), "events": ["clock-in"]}),
    )
    .await;
    // A plain subscriber gets a copy of each request the queue group serves.
    let mut tap = stack
        .nats
        .subscribe(
            stack
                .bus_config
                .subjects
                .request(ServiceName::Attendance, "clock_in"),
        )
        .await
        .unwrap();
    stack.nats.flush().await.unwrap();

    let res = gw
        .send(
            gw.request(
                reqwest::Method::POST,
                Some(&t.key),
                "/api/v1/attendance/clock-in",
            )
            .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
            .json(&json!({"nip": "T-1"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);

    let msg = tokio::time::timeout(Duration::from_secs(5), tap.next())
        .await
        .expect("the request crossed NATS")
        .unwrap();
    let headers = msg.headers.expect("the request has headers");
    let traceparent = headers
        .get("traceparent")
        .expect("a lowercase traceparent header")
        .as_str();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")),
        "{traceparent}"
    );
    receiver.wait_for(1, Duration::from_secs(10)).await;

    let trace = TraceId::from_hex(TRACE).unwrap();
    let names = [
        "http request",
        "bus request",
        "bus",
        "db",
        "take event",
        "deliver webhook",
        "project event",
    ];
    let spans = wait_for_spans(&exporter, trace, &names).await;
    let one = |name: &str| {
        let found: Vec<&SpanData> = spans.iter().filter(|s| span_name(s) == name).collect();
        assert!(!found.is_empty(), "no {name} span in the trace");
        found[0]
    };
    let http = one("http request");
    assert_eq!(http.span_kind, SpanKind::Server);
    assert_eq!(
        http.parent_span_id,
        SpanId::from_hex(CALLER_SPAN).unwrap(),
        "the caller's context is the HTTP span's parent"
    );
    let request = spans
        .iter()
        .find(|s| span_name(s) == "bus request" && s.parent_span_id == http.span_context.span_id())
        .expect("the bus request is a child of the HTTP span");
    assert_eq!(request.span_kind, SpanKind::Client);
    let served = spans
        .iter()
        .find(|s| s.parent_span_id == request.span_context.span_id())
        .expect("attendance-svc's span is a child of the bus request, through NATS headers");
    assert_eq!(served.span_kind, SpanKind::Server);
    assert_eq!(span_name(served), "bus");
    assert!(
        served
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "operation" && kv.value.as_str() == "clock_in"),
        "{:?}",
        served.attributes
    );
    let sql = spans
        .iter()
        .find(|s| span_name(s) == "db" && s.parent_span_id == served.span_context.span_id())
        .expect("the SQL transaction is a child of the service's span");
    // The event left through the outbox with the context of the write that made it.
    for consumer in ["take event", "project event"] {
        let span = one(consumer);
        assert_eq!(span.span_kind, SpanKind::Consumer);
        assert_eq!(
            span.parent_span_id,
            sql.span_context.span_id(),
            "{consumer} continues the writer's trace"
        );
    }
    // webhook-svc's work queue carries the intake's context to the delivery.
    let deliver = one("deliver webhook");
    assert_eq!(
        deliver.parent_span_id,
        one("take event").span_context.span_id()
    );
    drop(stack);
}

fn span_name(span: &SpanData) -> &str {
    span.name.as_ref()
}

/// The finished spans of `trace`, once every name in `names` is among them (spans end and are
/// exported as each piece of work finishes; the consumers finish after the HTTP answer).
async fn wait_for_spans(
    exporter: &InMemorySpanExporter,
    trace: TraceId,
    names: &[&str],
) -> Vec<SpanData> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect();
        let seen: HashMap<&str, usize> = spans.iter().fold(HashMap::new(), |mut m, s| {
            *m.entry(span_name(s)).or_default() += 1;
            m
        });
        if names.iter().all(|n| seen.contains_key(n)) {
            return spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans of the trace so far: {:?}",
            spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
