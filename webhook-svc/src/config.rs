//! webhook-svc configuration: each setting's `CLOKIO_*` variable, default and check (`--help`
//! lists them).

use std::time::Duration;

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(name = "clokio-webhook-svc", about = "Clokio's webhook deliveries")]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// The service's database; else `CLOKIO_DATABASE_URL`, else the local default.
    #[arg(long, env = "CLOKIO_WEBHOOK_DATABASE_URL", default_value_t = config::shared_database_url(),
        hide_default_value = true, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "CLOKIO_WEBHOOK_DB_MAX_CONNECTIONS", default_value = "16",
        value_parser = config::at_least_one::<u32>)]
    pub db_max_connections: u32,
    /// Bus requests handled at once per replica.
    #[arg(long, env = "CLOKIO_WEBHOOK_MAX_IN_FLIGHT", default_value = "256",
        value_parser = config::at_least_one::<usize>)]
    pub max_in_flight: usize,
    /// `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(long, env = "CLOKIO_WEBHOOK_OPS_ADDR", default_value = "0.0.0.0:9103",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<std::net::SocketAddr>,
    /// The delay before each attempt, the first normally 0: seconds, minutes or hours each.
    #[arg(long = "retry-schedule", env = "CLOKIO_WEBHOOK_RETRY_SCHEDULE",
        default_value = "0s,5s,5m,30m,2h,5h,10h,10h", value_parser = parse_schedule)]
    pub schedule: std::vec::Vec<Duration>,
    /// How long one attempt may take, in ms.
    #[arg(long, env = "CLOKIO_WEBHOOK_TIMEOUT_MS", default_value = "15000",
        value_parser = config::millis)]
    pub timeout: Duration,
    /// Attempts in flight per replica from the work queue, and as many first attempts made at
    /// intake.
    #[arg(long, env = "CLOKIO_WEBHOOK_WORKERS", default_value = "256",
        value_parser = config::at_least_one::<usize>)]
    pub workers: usize,
    /// Attempts in flight per subscription per replica.
    #[arg(long, env = "CLOKIO_WEBHOOK_PER_SUBSCRIPTION", default_value = "32",
        value_parser = config::at_least_one::<usize>)]
    pub per_subscription: usize,
    /// How long a taken delivery may go unreported before another replica gets it, in ms (a slow
    /// receiver keeps it alive meanwhile).
    #[arg(long, env = "CLOKIO_WEBHOOK_ACK_WAIT_MS", default_value = "30000",
        value_parser = config::millis)]
    pub ack_wait: Duration,
    /// A pending delivery whose attempt is overdue by this many ms lost its work-queue message and
    /// is queued again.
    #[arg(long, env = "CLOKIO_WEBHOOK_REQUEUE_AFTER_MS", default_value = "300000",
        value_parser = config::millis)]
    pub requeue_after: Duration,
    /// Days the delivery log keeps attempts.
    #[arg(long = "log-retention-days", env = "CLOKIO_WEBHOOK_LOG_RETENTION_DAYS",
        default_value = "30", value_parser = config::at_least_one::<u32>)]
    pub retention_days: u32,
    /// Allow plain http targets (development only).
    #[arg(long, env = "CLOKIO_WEBHOOK_ALLOW_HTTP", default_value = "false",
        action = clap::ArgAction::Set, value_parser = config::boolean)]
    pub allow_http: bool,
    /// 32 random bytes, base64 (`openssl rand -base64 32`), that seal the signing secrets in the
    /// database. Required; keep it in a secret store, and keep it: without it the stored secrets
    /// cannot be opened.
    #[arg(long, env = "CLOKIO_WEBHOOK_SECRET_KEY", value_parser = secret_key,
        hide_env_values = true)]
    pub secret_key: [u8; 32],
    /// Comma-separated networks allowed despite the SSRF guard (development only, e.g.
    /// `127.0.0.0/8`).
    #[arg(long, env = "CLOKIO_WEBHOOK_ALLOW_CIDRS", default_value = "", value_parser = allow_cidrs)]
    pub allow_cidrs: std::vec::Vec<ipnet::IpNet>,
}

fn allow_cidrs(s: &str) -> Result<Vec<ipnet::IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<ipnet::IpNet>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "must be comma-separated CIDRs like 127.0.0.0/8".to_owned())
}

/// Base64 of exactly 32 bytes.
fn secret_key(s: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "must be 32 random bytes in base64 (openssl rand -base64 32)".to_owned())
}

/// `0s,5s,5m,2h`: seconds, minutes or hours each.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    let delays = s
        .split(',')
        .map(str::trim)
        .map(|d| {
            let (n, unit) = d.split_at(d.len().saturating_sub(1));
            let n: u64 = n
                .parse()
                .map_err(|_| format!("{d} is not like 5s, 5m or 2h"))?;
            Ok(Duration::from_secs(match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                _ => return Err(format!("{d} is not like 5s, 5m or 2h")),
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if delays.is_empty() || delays.len() > 50 {
        return Err("must list 1 to 50 delays".to_owned());
    }
    Ok(delays)
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedules_parse() {
        let s = super::parse_schedule("0s,5s,5m,30m,2h").unwrap();
        assert_eq!(s[1].as_secs(), 5);
        assert_eq!(s[4].as_secs(), 7200);
        assert!(super::parse_schedule("5x").is_err());
        assert!(super::parse_schedule("").is_err());
    }
}
