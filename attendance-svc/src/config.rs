//! attendance-svc configuration: each setting's `CLOKIO_*` variable, default and check (`--help` lists
//! them).

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "clokio-attendance-svc",
    about = "Clokio's attendance service: punches, sessions, corrections and their events"
)]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// The service's database; else `CLOKIO_DATABASE_URL`, else the local default.
    #[arg(long, env = "CLOKIO_ATTENDANCE_DATABASE_URL", default_value_t = config::shared_database_url(),
        hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "CLOKIO_ATTENDANCE_DB_MAX_CONNECTIONS", default_value = "16",
        value_parser = config::at_least_one::<u32>)]
    pub db_max_connections: u32,
    /// Bus requests handled at once per replica.
    #[arg(long, env = "CLOKIO_ATTENDANCE_MAX_IN_FLIGHT", default_value = "256",
        value_parser = config::at_least_one::<usize>)]
    pub max_in_flight: usize,
    /// How long a batch of clock writes waits for a row lock, in milliseconds, before its writes
    /// run one by one (so a period's close holds up only its own org's punches).
    #[arg(long, env = "CLOKIO_ATTENDANCE_BATCH_LOCK_WAIT_MS", default_value = "50",
        value_parser = config::millis)]
    pub batch_lock_wait: std::time::Duration,
    /// `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(long, env = "CLOKIO_ATTENDANCE_OPS_ADDR", default_value = "0.0.0.0:9102",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<std::net::SocketAddr>,
}
