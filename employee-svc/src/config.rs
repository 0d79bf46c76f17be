//! employee-svc configuration: each setting's `CLOKIO_*` variable, default and check (`--help` lists
//! them).

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "clokio-employee-svc",
    about = "Clokio's employee service: organizations, employees, locations, API keys"
)]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// The service's database; else `CLOKIO_DATABASE_URL`, else the local default.
    #[arg(long, env = "CLOKIO_EMPLOYEE_DATABASE_URL", default_value_t = config::shared_database_url(),
        hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "CLOKIO_EMPLOYEE_DB_MAX_CONNECTIONS", default_value = "10",
        value_parser = config::at_least_one::<u32>)]
    pub db_max_connections: u32,
    /// Bus requests handled at once per replica.
    #[arg(long, env = "CLOKIO_EMPLOYEE_MAX_IN_FLIGHT", default_value = "256",
        value_parser = config::at_least_one::<usize>)]
    pub max_in_flight: usize,
    /// `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(long, env = "CLOKIO_EMPLOYEE_OPS_ADDR", default_value = "0.0.0.0:9101",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<std::net::SocketAddr>,
    /// Where writes bump the org cache generation the gateways read.
    #[arg(
        long,
        env = "CLOKIO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
}
