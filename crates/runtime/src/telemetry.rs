//! Logging and metrics setup shared by every service. Logs are JSON lines in production and human
//! lines in development (`CLOKIO_LOG_FORMAT=json|human`, filter from `CLOKIO_LOG` or `RUST_LOG`,
//! default `info`). Metrics go to one process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (several services in one process) are no-ops.
pub fn init_logging(service: &'static str) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let filter = std::env::var("CLOKIO_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| "info".to_owned());
        let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
        let json = std::env::var("CLOKIO_LOG_FORMAT")
            .map(|v| v != "human")
            .unwrap_or(true);
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        let result = if json {
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .try_init()
        } else {
            builder.try_init()
        };
        if result.is_ok() {
            tracing::info!(service.name = service, "logging started");
        }
    });
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
