//! Logging, tracing and metrics setup shared by every service.
//!
//! - Logs are JSON lines in production and human lines in development (`CLOKIO_LOG_FORMAT=json|human`,
//!   filter from `CLOKIO_LOG` or `RUST_LOG`, default `info`). Each JSON line carries
//!   `service.name` and, inside a traced span, `trace_id`; request spans add `request_id`.
//! - Traces: every span goes through OpenTelemetry, so trace ids exist and travel in NATS headers
//!   (see [`clokio_bus::trace`]) whether or not anything is exported. Export is OTLP over HTTP,
//!   configured by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, …); off when no endpoint is set, when `OTEL_TRACES_EXPORTER=none`
//!   or when `OTEL_SDK_DISABLED=true`.
//! - Metrics go to one process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{self, FmtContext};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Flushes and stops trace export when the service stops (a no-op without export).
#[must_use = "call shutdown() when the service stops, so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The exporter blocks on HTTP; keep that off the async runtime's threads.
            let _ = std::thread::spawn(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .join();
        }
    }
}

/// Installs logging and tracing for `service` once per process; later calls (several services in
/// one test process) are no-ops.
pub fn init(service: &'static str) -> Telemetry {
    static DONE: OnceLock<()> = OnceLock::new();
    let mut provider = None;
    DONE.get_or_init(|| {
        let exporter = otlp_configured().then(|| {
            // The blocking HTTP client must not be made on an async runtime's thread.
            std::thread::spawn(|| {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
            })
            .join()
        });
        let exporter = match exporter {
            Some(Ok(Ok(exporter))) => Some(exporter),
            Some(Ok(Err(err))) => {
                eprintln!("{service}: OpenTelemetry export is off: {err}");
                None
            }
            Some(Err(_)) => None,
            None => None,
        };
        let tracer_provider =
            (!env_is("OTEL_SDK_DISABLED", "true")).then(|| tracer_provider(service, exporter));
        if install(service, tracer_provider.clone()) {
            provider = tracer_provider;
            tracing::info!("logging started");
        }
    });
    Telemetry { provider }
}

/// Installs logging and tracing with spans going to `exporter` as each one ends (tests read them
/// back). Returns false when a subscriber was installed already.
pub fn init_with_exporter(service: &'static str, exporter: impl SpanExporter + 'static) -> bool {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    install(service, Some(provider))
}

fn tracer_provider<E: SpanExporter + 'static>(
    service: &'static str,
    exporter: Option<E>,
) -> SdkTracerProvider {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    if let Some(exporter) = exporter {
        builder = builder.with_batch_exporter(exporter);
    }
    builder.build()
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !env_is("OTEL_TRACES_EXPORTER", "none")
        && !env_is("OTEL_SDK_DISABLED", "true")
}

/// Installs the subscriber: logs, and spans through OpenTelemetry unless `provider` is `None`
/// (`OTEL_SDK_DISABLED=true`: no trace ids, nothing propagated).
fn install(service: &'static str, provider: Option<SdkTracerProvider>) -> bool {
    let filter = std::env::var("CLOKIO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CLOKIO_LOG_FORMAT")
        .map(|v| v != "human")
        .unwrap_or(true);
    // Spans are ours and the libraries' at info and above, whatever the log filter says.
    let otel = provider.map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("clokio"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            // Nothing here reads `opentelemetry::Context::current()` (trace headers come from the
            // span itself), and activating it on every span entry was the cost of a poll: sqlx
            // polls its row stream inside the caller's span once per row, which made a
            // 220,000-row read in a request 2× slower than the same read in a spawned task.
            .with_context_activation(false)
            .with_filter(LevelFilter::INFO);
        opentelemetry::global::set_tracer_provider(provider);
        layer
    });
    let registry = tracing_subscriber::registry().with(otel);
    let result = if json {
        let format = WithService {
            inner: fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true),
            prefix: format!("{{\"service.name\":{},", serde_json::json!(service)),
        };
        let logs = fmt::layer()
            .event_format(format)
            .fmt_fields(fmt::format::JsonFields::new())
            .with_filter(filter);
        registry.with(logs).try_init()
    } else {
        registry.with(fmt::layer().with_filter(filter)).try_init()
    };
    result.is_ok()
}

/// The JSON event format with `service.name` and the current trace id in front of each line.
struct WithService<F> {
    inner: F,
    prefix: String,
}

impl<S, N, F> FormatEvent<S, N> for WithService<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let trace_id = ctx.lookup_current().and_then(|span| {
            let id = span.id();
            drop(span);
            tracing::dispatcher::get_default(|dispatch| {
                let cx = tracing_opentelemetry::get_otel_context(&id, dispatch)?;
                let sc = cx.span().span_context().clone();
                sc.is_valid().then(|| sc.trace_id().to_string())
            })
        });
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                writer.write_str(&self.prefix)?;
                if let Some(id) = trace_id {
                    write!(writer, "\"trace_id\":\"{id}\",")?;
                }
                writer.write_str(rest)
            }
            None => writer.write_str(&line),
        }
    }
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours then just renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
