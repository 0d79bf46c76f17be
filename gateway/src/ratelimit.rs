//! Per-key rate limits, shared by every gateway replica through Redis.
//!
//! A fixed window per key that starts at the key's first request: one Lua script increments the
//! counter and reads its remaining time atomically (one round trip per request), so N replicas
//! together let exactly `limit` requests through per window. A denied request waits exactly what
//! is left of the window (60 s right after a full burst).
//!
//! All gateway tasks share one multiplexed Redis connection (redis-rs's `ConnectionManager`, which
//! reconnects by itself): concurrent scripts are pipelined on it, about seven times the throughput
//! of a pool of exclusive connections on this 2-core machine (199k vs 28k scripts/s).
//!
//! When Redis does not answer within the configured timeout, each replica falls back to the
//! same window kept in its own memory (bounded fail-open: at most `replicas × limit`), says so
//! in a warning and in `clokio_ratelimit_fallback_total`, and tries Redis again after a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clokio_bus::ids::{ApiKeyId, OrgId};
use clokio_runtime::redis::{LazyRedis, generation_key};

pub const WINDOW: Duration = Duration::from_secs(60);

/// KEYS[1] the key's window counter, KEYS[2] the org's cache generation (read in the same round
/// trip; see `clokio_runtime::redis::generation_key`). ARGV[1] the window in ms.
const SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
return {n, ttl, g}
";

/// The outcome for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

impl Decision {
    fn from_count(limit: u32, count: u64, reset_ms: u64) -> Self {
        Self {
            allowed: count <= u64::from(limit),
            limit,
            remaining: u64::from(limit).saturating_sub(count) as u32,
            reset_ms,
        }
    }

    /// Whole seconds to wait, rounded up: what `Retry-After` and the message say.
    pub fn retry_after_secs(&self) -> u64 {
        self.reset_ms.div_ceil(1000).max(1)
    }
}

/// `X-RateLimit-Reset`: the first whole second (Unix time) at or after the window's reset, so a
/// client that waits until then is never early. (Whole seconds of now plus whole seconds to wait
/// could fall up to a second before the reset.)
pub fn reset_at(now_ms: u64, reset_ms: u64) -> u64 {
    (now_ms + reset_ms).div_ceil(1000)
}

pub struct RateLimiter {
    redis: Arc<LazyRedis>,
    script: redis::Script,
    prefix: String,
    /// While now (ms since `epoch`) is below this, Redis is skipped.
    redis_down_until_ms: AtomicU64,
    epoch: Instant,
    local: Mutex<HashMap<ApiKeyId, (Instant, u64)>>,
}

impl RateLimiter {
    pub fn new(redis_url: &str, prefix: &str, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            redis: Arc::new(LazyRedis::new(redis_url, timeout)?),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            redis_down_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            local: Mutex::new(HashMap::new()),
        })
    }

    /// PING, for readiness.
    pub async fn ping(&self) -> bool {
        self.redis.ping().await
    }

    /// Its Redis connection, for the ops port's readiness.
    pub fn redis(&self) -> Arc<LazyRedis> {
        self.redis.clone()
    }

    /// The decision for one request of `key` (limit `limit`), and `org`'s cache generation when
    /// Redis answered (None from the local fallback).
    pub async fn check(&self, key: ApiKeyId, org: OrgId, limit: u32) -> (Decision, Option<u64>) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms >= self.redis_down_until_ms.load(Ordering::Relaxed) {
            match tokio::time::timeout(self.redis.timeout(), self.check_redis(key, org)).await {
                Ok(Ok((count, ttl_ms, generation))) => {
                    let decision = Decision::from_count(limit, count, ttl_ms);
                    metrics::counter!("clokio_ratelimit_decisions_total",
                        "outcome" => if decision.allowed { "allowed" } else { "denied" },
                        "source" => "redis")
                    .increment(1);
                    return (decision, Some(generation));
                }
                Ok(Err(err)) => self.redis_failed(now_ms, &err),
                Err(_) => self.redis_failed(now_ms, "timed out"),
            }
        }
        metrics::counter!("clokio_ratelimit_fallback_total").increment(1);
        let decision = self.check_local(key, limit, Instant::now());
        metrics::counter!("clokio_ratelimit_decisions_total",
            "outcome" => if decision.allowed { "allowed" } else { "denied" },
            "source" => "local")
        .increment(1);
        (decision, None)
    }

    async fn check_redis(&self, key: ApiKeyId, org: OrgId) -> Result<(u64, u64, u64), String> {
        let mut conn = self.redis.connection().await.map_err(|e| e.to_string())?;
        let (count, ttl, generation): (i64, i64, i64) = self
            .script
            .key(format!("{}:ratelimit:{key}", self.prefix))
            .key(generation_key(&self.prefix, org))
            .arg(WINDOW.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            count.max(0) as u64,
            ttl.max(0) as u64,
            generation.max(0) as u64,
        ))
    }

    fn redis_failed(&self, now_ms: u64, err: &str) {
        let previous = self
            .redis_down_until_ms
            .swap(now_ms + 1000, Ordering::Relaxed);
        // Warn once per outage (not once per request): only when Redis was believed up.
        if previous <= now_ms.saturating_sub(1000) || previous == 0 {
            tracing::warn!(
                error = err,
                "rate limiter: Redis unreachable, using the per-replica limiter"
            );
        }
    }

    /// The same fixed window, in this replica's memory.
    fn check_local(&self, key: ApiKeyId, limit: u32, now: Instant) -> Decision {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let reset = WINDOW.saturating_sub(now.duration_since(entry.0));
        Decision::from_count(limit, entry.1, reset.as_millis() as u64)
    }

    /// True when the last Redis call failed less than a second ago.
    #[cfg(test)]
    pub fn redis_degraded(&self) -> bool {
        self.epoch.elapsed().as_millis() as u64 <= self.redis_down_until_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_maths() {
        let d = Decision::from_count(100, 1, 60_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 99);
        let d = Decision::from_count(100, 100, 59_001);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let d = Decision::from_count(100, 101, 59_001);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_secs(), 60);
        // Now 1000.9 s, reset in 200 ms: at 1001.1 s, so the header says 1002, not 1001.
        assert_eq!(reset_at(1_000_900, 200), 1002);
        assert_eq!(reset_at(1_000_000, 1000), 1001);
        assert_eq!(reset_at(1_000_001, 0), 1001);
        assert_eq!(Decision::from_count(1, 2, 1).retry_after_secs(), 1);
        assert_eq!(Decision::from_count(1, 2, 0).retry_after_secs(), 1);
        assert_eq!(Decision::from_count(1, 2, 1500).retry_after_secs(), 2);
    }

    #[tokio::test]
    async fn local_window_counts_and_resets() {
        let limiter =
            RateLimiter::new("redis://127.0.0.1:1", "t", Duration::from_millis(50)).unwrap();
        let key = ApiKeyId::new_random();
        let t0 = Instant::now();
        for i in 1..=3 {
            let d = limiter.check_local(key, 3, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3 - i);
        }
        let d = limiter.check_local(key, 3, t0 + Duration::from_secs(10));
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), 50);
        let d = limiter.check_local(key, 3, t0 + WINDOW);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        // Another key has its own window.
        assert_eq!(
            limiter.check_local(ApiKeyId::new_random(), 3, t0).remaining,
            2
        );
    }

    #[tokio::test]
    async fn unreachable_redis_falls_back_without_failing() {
        let limiter =
            RateLimiter::new("redis://127.0.0.1:1", "t", Duration::from_millis(200)).unwrap();
        let key = ApiKeyId::new_random();
        let org = OrgId::new_random();
        let (d, generation) = limiter.check(key, org, 2).await;
        assert!(d.allowed);
        assert_eq!(generation, None, "no generation without Redis");
        assert!(limiter.redis_degraded());
        assert!(limiter.check(key, org, 2).await.0.allowed);
        assert!(!limiter.check(key, org, 2).await.0.allowed);
    }
}
