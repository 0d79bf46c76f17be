//! API-key authentication. A key is checked for shape and checksum first (no I/O), then looked up
//! by its SHA-256 in an in-process cache, and only on a miss asked of employee-svc. Revocation
//! events, followed through JetStream so a missed one is noticed and sent again, evict the entry
//! on every replica at once; the TTL bounds staleness should that ever fail, and the whole cache is
//! dropped when the NATS connection comes back after a loss.
//! `last_used_at` is collected in memory and flushed in one batch every few seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clokio_bus::events::{ApiKeyRevoked, Event, kind};
use clokio_bus::ids::{ApiKeyId, OrgId};
use clokio_bus::key::{ApiKey, KeyHash};
use clokio_bus::ops::{AuthInfo, KeyTouch, KeyTouchOp, KeyUse, KeyVerify, KeyVerifyOp};
use clokio_bus::scope::Scopes;
use clokio_bus::types::Plan;
use clokio_bus::{Bus, BusError, ErrorCode};
use moka::sync::Cache;

use crate::envelope::ApiError;

/// The authenticated caller, put in request extensions for handlers.
#[derive(Clone, Debug)]
pub struct Auth {
    pub key_id: ApiKeyId,
    pub org_id: OrgId,
    pub limit: u32,
    pub scopes: Scopes,
    /// What employee-svc said of the key (its name, for audit trails).
    pub info: std::sync::Arc<AuthInfo>,
}

impl Auth {
    /// The key as the author of a change.
    pub fn actor(&self) -> clokio_bus::ops::Actor {
        clokio_bus::ops::Actor {
            kind: clokio_bus::ops::ActorKind::ApiKey,
            id: Some(self.key_id.to_string()),
            name: self.info.name.clone(),
        }
    }
}

/// The count of cache evictions. A lookup notes it when it starts and caches its answer only if
/// it has not moved; the check and the insert happen under the lock an eviction holds while it
/// counts and invalidates, so no eviction can fall between the two and leave the answer from
/// before a revocation in the cache.
#[derive(Default)]
struct Evictions(Mutex<u64>);

impl Evictions {
    fn seen(&self) -> u64 {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `insert` if no eviction came since `seen`.
    fn unless_evicted_since(&self, seen: u64, insert: impl FnOnce()) {
        let count = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if *count == seen {
            insert();
        }
    }

    /// Counts an eviction and runs it.
    fn evict(&self, invalidate: impl FnOnce()) {
        let mut count = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *count += 1;
        invalidate();
    }
}

pub struct Authenticator {
    bus: Bus,
    cache: Cache<KeyHash, std::sync::Arc<AuthInfo>>,
    /// Hashes that employee-svc did not know, briefly, so a flood of well-formed invented keys
    /// does not become a flood of lookups.
    unknown: Cache<KeyHash, ()>,
    used: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
    /// A lookup that started before an eviction does not cache its answer: it may predate the
    /// revocation that caused the eviction.
    evictions: Evictions,
    basic: u32,
    pro: u32,
}

impl Authenticator {
    pub fn new(bus: Bus, ttl: Duration, basic: u32, pro: u32) -> Self {
        Self {
            bus,
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            unknown: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
            used: Mutex::new(HashMap::new()),
            evictions: Evictions::default(),
            basic,
            pro,
        }
    }

    /// Authenticates the `X-API-Key` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Auth, ApiError> {
        let key = header
            .and_then(ApiKey::parse)
            .ok_or_else(ApiError::unauthorized)?;
        let hash = key.hash();
        let info = match self.cache.get(&hash) {
            Some(info) => {
                metrics::counter!("clokio_auth_cache_total", "result" => "hit").increment(1);
                info
            }
            None => {
                metrics::counter!("clokio_auth_cache_total", "result" => "miss").increment(1);
                if self.unknown.contains_key(&hash) {
                    return Err(ApiError::unauthorized());
                }
                let seen = self.evictions.seen();
                match self
                    .bus
                    .call::<KeyVerifyOp>(&KeyVerify {
                        key_hash: hash.clone(),
                    })
                    .await
                {
                    Ok(info) => {
                        let info = std::sync::Arc::new(info);
                        self.evictions.unless_evicted_since(seen, || {
                            self.cache.insert(hash.clone(), info.clone());
                        });
                        info
                    }
                    Err(BusError {
                        code: ErrorCode::NotFound,
                        ..
                    }) => {
                        self.unknown.insert(hash, ());
                        tracing::info!(key = %key, "unknown or revoked API key");
                        return Err(ApiError::unauthorized());
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        };
        // A cached key may have expired since it was looked up.
        if info.expires_at.is_some_and(|at| at <= Utc::now()) {
            self.cache.invalidate(&hash);
            return Err(ApiError::unauthorized());
        }
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.key_id, Utc::now());
        Ok(Auth {
            key_id: info.key_id,
            org_id: info.org_id,
            limit: self.limit_for(&info),
            scopes: info.scopes,
            info,
        })
    }

    fn limit_for(&self, info: &AuthInfo) -> u32 {
        match info.plan {
            Plan::Basic => self.basic,
            Plan::Pro => self.pro,
            Plan::Enterprise => info.rate_limit_per_minute.unwrap_or(self.pro),
        }
    }

    pub fn evict(&self, hash: &KeyHash) {
        self.evictions.evict(|| self.cache.invalidate(hash));
    }

    /// Evicts every cached entry of one key (this replica revoked it; the event tells the others).
    pub fn evict_key(&self, key_id: ApiKeyId) {
        self.evictions.evict(|| {
            let hashes: Vec<_> = self
                .cache
                .iter()
                .filter(|(_, info)| info.key_id == key_id)
                .map(|(hash, _)| hash)
                .collect();
            for hash in hashes {
                self.cache.invalidate(&*hash);
            }
        });
    }

    pub fn evict_all(&self) {
        self.evictions.evict(|| {
            self.cache.invalidate_all();
            self.unknown.invalidate_all();
        });
    }

    /// Sends the collected `last_used_at` values to employee-svc in one request.
    pub async fn flush_key_uses(&self) {
        let uses: Vec<KeyUse> =
            std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|(key_id, at)| KeyUse { key_id, at })
                .collect();
        if uses.is_empty() {
            return;
        }
        if let Err(err) = self.bus.call::<KeyTouchOp>(&KeyTouch { uses }).await {
            tracing::warn!(%err, "could not record API key use; skipped this batch");
        }
    }
}

/// Follows every org's key revocations in the events stream, evicting each revoked key as its
/// event arrives, until the task is aborted. Being a JetStream consumer rather than a plain
/// subscription, it notices an event it missed (a link between NATS servers that broke while this
/// replica's own connection stayed up) and is given it again; when it starts without a known
/// position it drops the whole cache, since a revocation may have come before it ran.
pub async fn follow_revocations(auth: std::sync::Arc<Authenticator>, bus: Bus) {
    let js = async_nats::jetstream::new(bus.client().clone());
    let subjects = bus.subjects();
    crate::events::follow(
        js,
        subjects.events_stream(),
        subjects.event_all_orgs(kind::APIKEY, kind::REVOKED),
        "key revocations",
        |fresh| {
            if fresh {
                auth.evict_all();
            }
        },
        |_, _, payload| match serde_json::from_slice::<Event<ApiKeyRevoked>>(payload) {
            Ok(event) => {
                auth.evict(&event.data.key_hash);
                tracing::info!(key_id = %event.data.key_id, "API key revoked; evicted from cache");
            }
            Err(err) => tracing::warn!(%err, "undecodable revocation event"),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_began_before_an_eviction_is_not_cached() {
        let cache: Cache<u32, u32> = Cache::new(10);
        let evictions = Evictions::default();
        let seen = evictions.seen();
        evictions.evict(|| cache.invalidate(&1));
        evictions.unless_evicted_since(seen, || cache.insert(1, 1));
        assert_eq!(cache.get(&1), None);
        let seen = evictions.seen();
        evictions.unless_evicted_since(seen, || cache.insert(1, 1));
        assert_eq!(cache.get(&1), Some(1));
    }

    /// An eviction racing the check and the insert: whichever comes first, the answer looked up
    /// before the eviction is not left in the cache.
    #[test]
    fn an_eviction_never_falls_between_the_check_and_the_insert() {
        let cache: Cache<u32, u32> = Cache::new(10);
        let evictions = Evictions::default();
        for _ in 0..2_000 {
            let seen = evictions.seen();
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    barrier.wait();
                    evictions.unless_evicted_since(seen, || {
                        // Widen the window an unguarded check would leave.
                        std::thread::yield_now();
                        cache.insert(1, 1);
                    });
                });
                s.spawn(|| {
                    barrier.wait();
                    evictions.evict(|| cache.invalidate(&1));
                });
            });
            assert_eq!(cache.get(&1), None, "the pre-eviction answer stayed cached");
        }
    }
}
