//! reporting-svc configuration, from `CLOKIO_*` environment variables.

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_REPORTING_DATABASE_URL`, else `CLOKIO_DATABASE_URL`.
    pub database_url: String,
    /// `CLOKIO_REPORTING_DB_MAX_CONNECTIONS` (default 8).
    pub db_max_connections: u32,
    /// `CLOKIO_REPORTING_MAX_IN_FLIGHT`: bus requests handled at once per replica (default 64).
    pub max_in_flight: usize,
    /// `CLOKIO_REPORTING_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` (default `0.0.0.0:9104`; `off`).
    pub ops_addr: Option<std::net::SocketAddr>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bus: BusConfig::from_env()?,
            database_url: config::database_url("CLOKIO_REPORTING_DATABASE_URL"),
            db_max_connections: config::count("CLOKIO_REPORTING_DB_MAX_CONNECTIONS", 8)?,
            max_in_flight: config::count("CLOKIO_REPORTING_MAX_IN_FLIGHT", 64)?,
            ops_addr: config::ops_addr(
                "CLOKIO_REPORTING_OPS_ADDR",
                std::net::SocketAddr::from(([0, 0, 0, 0], 9104)),
            )?,
        })
    }
}
