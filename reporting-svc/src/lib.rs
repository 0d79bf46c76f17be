//! reporting-svc: Monthly summaries and CSV export.
//!
//! Skeleton: it registers on the bus as `clokio-reporting` (so `$SRV.PING` finds every replica)
//! and answers no operation yet; its own issue brings its endpoints, schema and migrations.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use clokio_bus::server::{Handler, Spec};
use clokio_bus::{BusError, ErrorCode, ServiceName};
use clokio_runtime::config::{self, BusConfig, ConfigError};

/// reporting-svc configuration, from `CLOKIO_*` environment variables.
#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_REPORTING_MAX_IN_FLIGHT`: bus requests handled at once per replica (default 256).
    pub max_in_flight: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bus: BusConfig::from_env()?,
            max_in_flight: config::parse("CLOKIO_REPORTING_MAX_IN_FLIGHT", 256)?,
        })
    }
}

struct Service;

impl Handler for Service {
    async fn handle(&self, operation: &str, _payload: Bytes) -> Result<Bytes, BusError> {
        Err(BusError::new(
            ErrorCode::NotFound,
            format!("Unknown operation {operation}"),
        ))
    }
}

/// Runs reporting-svc until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nats = clokio_runtime::connect_nats(&config.bus.nats_url, "reporting-svc").await?;
    let spec = Spec {
        service: ServiceName::Reporting,
        description: "Monthly summaries and CSV export",
        operations: &[],
        max_in_flight: config.max_in_flight,
    };
    clokio_bus::server::serve(
        nats.clone(),
        &config.bus.subjects,
        spec,
        Arc::new(Service),
        shutdown,
    )
    .await?;
    nats.flush().await?;
    Ok(())
}
