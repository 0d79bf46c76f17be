//! employee-svc configuration, from `CLOKIO_*` environment variables.

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_EMPLOYEE_DATABASE_URL`, else `CLOKIO_DATABASE_URL`.
    pub database_url: String,
    /// `CLOKIO_EMPLOYEE_DB_MAX_CONNECTIONS` (default 10).
    pub db_max_connections: u32,
    /// `CLOKIO_EMPLOYEE_MAX_IN_FLIGHT`: bus requests handled at once per replica (default 256).
    pub max_in_flight: usize,
    /// `CLOKIO_EMPLOYEE_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` (default `0.0.0.0:9101`; `off`).
    pub ops_addr: Option<std::net::SocketAddr>,
    /// `CLOKIO_REDIS_URL`: where writes bump the org cache generation the gateways read.
    pub redis_url: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bus: BusConfig::from_env()?,
            database_url: config::database_url("CLOKIO_EMPLOYEE_DATABASE_URL"),
            db_max_connections: config::count("CLOKIO_EMPLOYEE_DB_MAX_CONNECTIONS", 10)?,
            max_in_flight: config::count("CLOKIO_EMPLOYEE_MAX_IN_FLIGHT", 256)?,
            ops_addr: config::ops_addr(
                "CLOKIO_EMPLOYEE_OPS_ADDR",
                std::net::SocketAddr::from(([0, 0, 0, 0], 9101)),
            )?,
            redis_url: config::string("CLOKIO_REDIS_URL", "redis://127.0.0.1:6379"),
        })
    }
}
