//! Gateway configuration: each setting's `CLOKIO_*` variable, default and check (`--help` lists
//! them; the README's table too).

use std::net::SocketAddr;
use std::time::Duration;

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(name = "clokio-gateway", about = "Clokio's public REST API")]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// Where the API listens.
    #[arg(long, env = "CLOKIO_GATEWAY_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz` and `/metrics`, off the public port; `off` for none.
    #[arg(long, env = "CLOKIO_GATEWAY_OPS_ADDR", default_value = "0.0.0.0:9100",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<SocketAddr>,
    /// Rate-limit counters and the org cache generations.
    #[arg(
        long,
        env = "CLOKIO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Longest wait for the limiter script before falling back to the local limiter, in ms.
    #[arg(long, env = "CLOKIO_REDIS_TIMEOUT_MS", default_value = "100", value_parser = config::millis)]
    pub redis_timeout: Duration,
    /// Requests per minute on the basic plan.
    #[arg(long, env = "CLOKIO_RATE_LIMIT_BASIC", default_value = "100",
        value_parser = config::at_least_one::<u32>)]
    pub rate_limit_basic: u32,
    /// Requests per minute on the pro plan.
    #[arg(long, env = "CLOKIO_RATE_LIMIT_PRO", default_value = "1000",
        value_parser = config::at_least_one::<u32>)]
    pub rate_limit_pro: u32,
    /// How long a verified key is served from memory, in ms, at most 60000: the bound on how long
    /// a revoked key can still work should its event be missed (revocation events evict sooner).
    #[arg(long, env = "CLOKIO_AUTH_CACHE_TTL_MS", default_value = "60000", value_parser = auth_cache_ttl)]
    pub auth_cache_ttl: Duration,
    /// How often `last_used_at` updates are flushed, in ms.
    #[arg(long, env = "CLOKIO_KEY_TOUCH_INTERVAL_MS", default_value = "10000",
        value_parser = config::millis)]
    pub key_touch_interval: Duration,
    /// The largest request body, in bytes.
    #[arg(long, env = "CLOKIO_MAX_BODY_BYTES", default_value = "1048576",
        value_parser = config::at_least_one::<usize>)]
    pub max_body_bytes: usize,
    /// The largest history import body, in bytes.
    #[arg(long, env = "CLOKIO_MAX_IMPORT_BODY_BYTES", default_value = "16777216",
        value_parser = config::at_least_one::<usize>)]
    pub max_import_body_bytes: usize,
    /// Events an event stream may have waiting for its reader before it is cut off.
    #[arg(long, env = "CLOKIO_STREAM_BUFFER", default_value = "256",
        value_parser = config::at_least_one::<usize>)]
    pub stream_buffer: usize,
    /// The comment line that keeps an idle event stream open, every this many ms.
    #[arg(long, env = "CLOKIO_STREAM_HEARTBEAT_MS", default_value = "15000",
        value_parser = config::millis)]
    pub stream_heartbeat: Duration,
}

/// The longest a verified key is served from memory: a revocation whose event a gateway missed
/// still takes effect within it.
const MAX_AUTH_CACHE_TTL: Duration = Duration::from_secs(60);

fn auth_cache_ttl(s: &str) -> Result<Duration, String> {
    let ttl = config::millis(s)?;
    if ttl > MAX_AUTH_CACHE_TTL {
        return Err(format!(
            "must be at most {}",
            MAX_AUTH_CACHE_TTL.as_millis()
        ));
    }
    Ok(ttl)
}
