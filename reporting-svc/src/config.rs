//! reporting-svc configuration: each setting's `CLOKIO_*` variable, default and check (`--help` lists
//! them).

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "clokio-reporting-svc",
    about = "Clokio's reporting service: the attendance projection, daily reports and monthly summaries"
)]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// The service's database; else `CLOKIO_DATABASE_URL`, else the local default.
    #[arg(long, env = "CLOKIO_REPORTING_DATABASE_URL", default_value_t = config::shared_database_url(),
        hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "CLOKIO_REPORTING_DB_MAX_CONNECTIONS", default_value = "8",
        value_parser = config::at_least_one::<u32>)]
    pub db_max_connections: u32,
    /// Bus requests handled at once per replica.
    #[arg(long, env = "CLOKIO_REPORTING_MAX_IN_FLIGHT", default_value = "64",
        value_parser = config::at_least_one::<usize>)]
    pub max_in_flight: usize,
    /// `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(long, env = "CLOKIO_REPORTING_OPS_ADDR", default_value = "0.0.0.0:9104",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<std::net::SocketAddr>,
}
