//! Trace context across NATS: the W3C `traceparent` and `tracestate` of the sending span travel
//! in message headers (lowercase: async-nats header names are case-sensitive), so one trace runs
//! from the gateway's HTTP span through a service's bus span to its SQL, and from an event's
//! writer through JetStream to its consumers. The global propagator does the encoding; without a
//! tracing layer that knows OpenTelemetry, nothing is written or read.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes `span`'s trace context into `headers`.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Inject(headers)));
}

/// `span`'s trace context as header pairs, for writing down (an outbox row) and sending later.
pub fn context_of(span: &tracing::Span) -> TraceHeaders {
    let mut headers = HeaderMap::new();
    inject(span, &mut headers);
    TraceHeaders {
        traceparent: headers.get(TRACEPARENT).map(|v| v.as_str().to_owned()),
        tracestate: headers
            .get(TRACESTATE)
            .map(|v| v.as_str().to_owned())
            .filter(|v| !v.is_empty()),
    }
}

/// A trace context kept apart from any message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    pub fn write_to(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.traceparent {
            headers.insert(TRACEPARENT, v.as_str());
        }
        if let Some(v) = &self.tracestate {
            headers.insert(TRACESTATE, v.as_str());
        }
    }
}

/// Makes the trace context in `headers` (if any) the parent of `span`, which must not have been
/// entered yet, and records the trace id in the span's `trace_id` field for the logs.
pub fn continue_from(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(headers) = headers {
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers)));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    record_trace_id(span);
}

/// As [`continue_from`], for a context that came in some other way (an HTTP request's headers).
pub fn continue_from_values(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    if traceparent.is_none() {
        record_trace_id(span);
        return;
    }
    let mut headers = HeaderMap::new();
    TraceHeaders {
        traceparent: traceparent.map(str::to_owned),
        tracestate: tracestate.map(str::to_owned),
    }
    .write_to(&mut headers);
    continue_from(span, Some(&headers));
}

/// Records `span`'s trace id in its `trace_id` field (declared empty when the span was made).
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(id) = trace_id(span) {
        span.record("trace_id", tracing::field::display(id));
    }
}

/// `span`'s trace id, when OpenTelemetry is tracing it.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
