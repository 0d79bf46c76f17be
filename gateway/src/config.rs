//! Gateway configuration, from `CLOKIO_*` environment variables (see the README's table).

use std::net::SocketAddr;
use std::time::Duration;

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_GATEWAY_ADDR` (default `0.0.0.0:8080`).
    pub addr: SocketAddr,
    /// `CLOKIO_GATEWAY_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` off the public port (default
    /// `0.0.0.0:9100`; `off`).
    pub ops_addr: Option<SocketAddr>,
    /// `CLOKIO_REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub redis_url: String,
    /// `CLOKIO_REDIS_TIMEOUT_MS`: longest wait for the limiter script before falling back (100).
    pub redis_timeout: Duration,
    /// `CLOKIO_RATE_LIMIT_BASIC` requests/minute (100).
    pub rate_limit_basic: u32,
    /// `CLOKIO_RATE_LIMIT_PRO` requests/minute (1000).
    pub rate_limit_pro: u32,
    /// `CLOKIO_AUTH_CACHE_TTL_MS`: how long a verified key is served from memory (60000, at most
    /// 60000: the bound on how long a revoked key can still work should its event be missed).
    /// Revocation events evict sooner; the TTL bounds staleness if an event is ever missed.
    pub auth_cache_ttl: Duration,
    /// `CLOKIO_KEY_TOUCH_INTERVAL_MS`: how often `last_used_at` updates are flushed (10000).
    pub key_touch_interval: Duration,
    /// `CLOKIO_MAX_BODY_BYTES` (1 MiB).
    pub max_body_bytes: usize,
    /// `CLOKIO_MAX_IMPORT_BODY_BYTES`: the bound for history imports (16 MiB).
    pub max_import_body_bytes: usize,
    /// `CLOKIO_STREAM_BUFFER`: events an event stream may have waiting for its reader before it
    /// is cut off (256).
    pub stream_buffer: usize,
    /// `CLOKIO_STREAM_HEARTBEAT_MS`: the comment line that keeps an idle stream open (15000).
    pub stream_heartbeat: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let rate_limit_basic = config::parse("CLOKIO_RATE_LIMIT_BASIC", 100u32)?;
        let rate_limit_pro = config::parse("CLOKIO_RATE_LIMIT_PRO", 1000u32)?;
        for (var, v) in [
            ("CLOKIO_RATE_LIMIT_BASIC", rate_limit_basic),
            ("CLOKIO_RATE_LIMIT_PRO", rate_limit_pro),
        ] {
            if v == 0 {
                return Err(ConfigError {
                    var: var.to_owned(),
                    value: "0".to_owned(),
                    reason: "must be at least 1".to_owned(),
                });
            }
        }
        Ok(Self {
            bus: BusConfig::from_env()?,
            addr: config::parse(
                "CLOKIO_GATEWAY_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
            )?,
            ops_addr: config::ops_addr(
                "CLOKIO_GATEWAY_OPS_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 9100)),
            )?,
            redis_url: config::string("CLOKIO_REDIS_URL", "redis://127.0.0.1:6379"),
            redis_timeout: config::millis("CLOKIO_REDIS_TIMEOUT_MS", 100)?,
            rate_limit_basic,
            rate_limit_pro,
            auth_cache_ttl: at_most(
                "CLOKIO_AUTH_CACHE_TTL_MS",
                config::millis("CLOKIO_AUTH_CACHE_TTL_MS", 60_000)?,
                MAX_AUTH_CACHE_TTL,
            )?,
            key_touch_interval: config::millis("CLOKIO_KEY_TOUCH_INTERVAL_MS", 10_000)?,
            max_body_bytes: config::count("CLOKIO_MAX_BODY_BYTES", 1024 * 1024)?,
            max_import_body_bytes: config::count("CLOKIO_MAX_IMPORT_BODY_BYTES", 16 * 1024 * 1024)?,
            stream_buffer: config::count("CLOKIO_STREAM_BUFFER", 256)?,
            stream_heartbeat: config::millis("CLOKIO_STREAM_HEARTBEAT_MS", 15_000)?,
        })
    }
}

/// The longest a verified key is served from memory: a revocation whose event a gateway missed
/// still takes effect within it.
const MAX_AUTH_CACHE_TTL: Duration = Duration::from_secs(60);

fn at_most(var_name: &str, value: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if value > max {
        return Err(ConfigError {
            var: var_name.to_owned(),
            value: value.as_millis().to_string(),
            reason: format!("must be at most {}", max.as_millis()),
        });
    }
    Ok(value)
}
