//! attendance-svc configuration, from `CLOKIO_*` environment variables.

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_ATTENDANCE_DATABASE_URL`, else `CLOKIO_DATABASE_URL`.
    pub database_url: String,
    /// `CLOKIO_ATTENDANCE_DB_MAX_CONNECTIONS` (default 16).
    pub db_max_connections: u32,
    /// `CLOKIO_ATTENDANCE_MAX_IN_FLIGHT`: bus requests handled at once per replica (default 256).
    pub max_in_flight: usize,
    /// `CLOKIO_ATTENDANCE_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` (default `0.0.0.0:9102`; `off`).
    pub ops_addr: Option<std::net::SocketAddr>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bus: BusConfig::from_env()?,
            database_url: config::database_url("CLOKIO_ATTENDANCE_DATABASE_URL"),
            db_max_connections: config::count("CLOKIO_ATTENDANCE_DB_MAX_CONNECTIONS", 16)?,
            max_in_flight: config::count("CLOKIO_ATTENDANCE_MAX_IN_FLIGHT", 256)?,
            ops_addr: config::ops_addr(
                "CLOKIO_ATTENDANCE_OPS_ADDR",
                std::net::SocketAddr::from(([0, 0, 0, 0], 9102)),
            )?,
        })
    }
}
