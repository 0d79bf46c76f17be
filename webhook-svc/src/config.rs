//! webhook-svc configuration, from `CLOKIO_*` environment variables.

use std::time::Duration;

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_WEBHOOK_DATABASE_URL`, else `CLOKIO_DATABASE_URL`.
    pub database_url: String,
    /// `CLOKIO_WEBHOOK_DB_MAX_CONNECTIONS` (default 16).
    pub db_max_connections: u32,
    /// `CLOKIO_WEBHOOK_MAX_IN_FLIGHT`: bus requests handled at once per replica (default 256).
    pub max_in_flight: usize,
    /// `CLOKIO_WEBHOOK_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` (default `0.0.0.0:9103`; `off`).
    pub ops_addr: Option<std::net::SocketAddr>,
    /// `CLOKIO_WEBHOOK_RETRY_SCHEDULE`: delay before each attempt, the first normally 0
    /// (default `0s,5s,5m,30m,2h,5h,10h,10h`).
    pub schedule: Vec<Duration>,
    /// `CLOKIO_WEBHOOK_TIMEOUT_MS`: per attempt (default 15000).
    pub timeout: Duration,
    /// `CLOKIO_WEBHOOK_WORKERS`: attempts in flight per replica (default 256).
    pub workers: usize,
    /// `CLOKIO_WEBHOOK_PER_SUBSCRIPTION`: attempts in flight per subscription per replica (32).
    pub per_subscription: usize,
    /// `CLOKIO_WEBHOOK_ACK_WAIT_MS`: how long a taken delivery may go unreported before another
    /// replica gets it (default 30000; a slow receiver keeps it alive meanwhile).
    pub ack_wait: Duration,
    /// `CLOKIO_WEBHOOK_REQUEUE_AFTER_MS`: a pending delivery whose attempt is overdue by this
    /// long lost its work-queue message and is queued again (default 300000).
    pub requeue_after: Duration,
    /// `CLOKIO_WEBHOOK_LOG_RETENTION_DAYS` (default 30).
    pub retention_days: u32,
    /// `CLOKIO_WEBHOOK_ALLOW_HTTP`: plain http targets (development only; default false).
    pub allow_http: bool,
    /// `CLOKIO_WEBHOOK_SECRET_KEY`: 32 random bytes, base64 (`openssl rand -base64 32`), that
    /// seal the signing secrets in the database. Required; keep it in a secret store, and keep it:
    /// without it the stored secrets cannot be opened.
    pub secret_key: [u8; 32],
    /// `CLOKIO_WEBHOOK_ALLOW_CIDRS`: comma-separated networks allowed despite the SSRF guard
    /// (development only, e.g. `127.0.0.0/8`; default none).
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let schedule_var = "CLOKIO_WEBHOOK_RETRY_SCHEDULE";
        let raw = config::string(schedule_var, "0s,5s,5m,30m,2h,5h,10h,10h");
        let schedule = parse_schedule(&raw).map_err(|reason| ConfigError {
            var: schedule_var.to_owned(),
            value: raw.clone(),
            reason,
        })?;
        let cidrs_var = "CLOKIO_WEBHOOK_ALLOW_CIDRS";
        let raw = config::string(cidrs_var, "");
        let allow_cidrs = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ipnet::IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError {
                var: cidrs_var.to_owned(),
                value: raw.clone(),
                reason: "must be comma-separated CIDRs like 127.0.0.0/8".to_owned(),
            })?;
        Ok(Self {
            bus: BusConfig::from_env()?,
            database_url: config::database_url("CLOKIO_WEBHOOK_DATABASE_URL"),
            db_max_connections: config::count("CLOKIO_WEBHOOK_DB_MAX_CONNECTIONS", 16)?,
            max_in_flight: config::count("CLOKIO_WEBHOOK_MAX_IN_FLIGHT", 256)?,
            ops_addr: config::ops_addr(
                "CLOKIO_WEBHOOK_OPS_ADDR",
                std::net::SocketAddr::from(([0, 0, 0, 0], 9103)),
            )?,
            schedule,
            timeout: config::millis("CLOKIO_WEBHOOK_TIMEOUT_MS", 15_000)?,
            workers: config::count("CLOKIO_WEBHOOK_WORKERS", 256)?,
            per_subscription: config::count("CLOKIO_WEBHOOK_PER_SUBSCRIPTION", 32)?,
            ack_wait: config::millis("CLOKIO_WEBHOOK_ACK_WAIT_MS", 30_000)?,
            requeue_after: config::millis("CLOKIO_WEBHOOK_REQUEUE_AFTER_MS", 300_000)?,
            retention_days: config::count("CLOKIO_WEBHOOK_LOG_RETENTION_DAYS", 30)?,
            allow_http: config::parse("CLOKIO_WEBHOOK_ALLOW_HTTP", false)?,
            allow_cidrs,
            // Last, so that a start without it still reports any other bad setting first.
            secret_key: secret_key()?,
        })
    }
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

/// `CLOKIO_WEBHOOK_SECRET_KEY`: base64 of exactly 32 bytes.
fn secret_key() -> Result<[u8; 32], ConfigError> {
    use base64::Engine as _;
    let var = "CLOKIO_WEBHOOK_SECRET_KEY";
    let refuse = |value: String| ConfigError {
        var: var.to_owned(),
        value,
        reason: "must be 32 random bytes in base64 (openssl rand -base64 32)".to_owned(),
    };
    let raw = config::var(var).ok_or_else(|| refuse(String::new()))?;
    base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| refuse("(not shown)".to_owned()))
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
