//! In-memory cache of employee lists, the hottest read. employee-svc owns this data, so it can
//! cache it safely:
//!
//! - every entry is tagged with its org's generation; a write bumps the generation, so a list
//!   computed while a write commits is never served after it (the tag no longer matches);
//! - a write announces the org on `<prefix>.v1.employee._cache.invalidate` (core NATS) before the
//!   write is answered; every replica drains those announcements before each read and every
//!   100 ms. On one NATS server the announcement is delivered ahead of any request a client makes
//!   after seeing the write's answer, so a write through one replica is seen by the next read
//!   through any other;
//! - after a NATS reconnect (announcements may have been missed) the whole cache is dropped and the
//!   reconnect epoch in every tag moves on, so a list loaded before the reconnect is never
//!   served after it; a TTL and a byte bound are the last safety net.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clokio_bus::ids::OrgId;
use clokio_bus::types::EmployeeStatus;
use futures::{FutureExt, StreamExt};
use moka::sync::Cache;

type Key = (OrgId, Option<EmployeeStatus>);
/// (reconnect epoch, org generation) when a list was loaded.
type Tag = (u64, u64);

pub struct ListCache {
    entries: Cache<Key, (Tag, Bytes)>,
    generations: Mutex<HashMap<OrgId, u64>>,
    /// Bumped on every reconnect, so lists loaded before it never match after it.
    epoch: AtomicU64,
    announcements: tokio::sync::Mutex<async_nats::Subscriber>,
    client: async_nats::Client,
    subject: String,
    connects_seen: AtomicU64,
}

impl ListCache {
    pub async fn new(
        client: async_nats::Client,
        subject: String,
    ) -> Result<Self, async_nats::SubscribeError> {
        let announcements = client.subscribe(subject.clone()).await?;
        Ok(Self {
            entries: Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_, (_, bytes): &(Tag, Bytes)| {
                    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(300))
                .build(),
            generations: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            announcements: tokio::sync::Mutex::new(announcements),
            connects_seen: AtomicU64::new(client.statistics().connects.load(Ordering::Relaxed)),
            client,
            subject,
        })
    }

    fn tag(&self, org: OrgId) -> Tag {
        let generation = *self
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&org)
            .unwrap_or(&0);
        (self.epoch.load(Ordering::SeqCst), generation)
    }

    fn bump(&self, org: OrgId) {
        *self
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(org)
            .or_insert(0) += 1;
        for status in [
            None,
            Some(EmployeeStatus::Active),
            Some(EmployeeStatus::Inactive),
        ] {
            self.entries.invalidate(&(org, status));
        }
    }

    /// Applies every announcement already received, and drops everything after a reconnect.
    pub async fn sync(&self) {
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        if self.connects_seen.swap(connects, Ordering::Relaxed) != connects {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.entries.invalidate_all();
        }
        let mut sub = self.announcements.lock().await;
        while let Some(Some(msg)) = sub.next().now_or_never() {
            match std::str::from_utf8(&msg.payload)
                .ok()
                .and_then(|s| s.parse::<OrgId>().ok())
            {
                Some(org) => self.bump(org),
                None => self.entries.invalidate_all(),
            }
        }
    }

    /// The cached list, or `load`'s, cached unless a write raced it.
    pub async fn get_or_load<F, Fut, E>(&self, key: Key, load: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, E>>,
    {
        self.sync().await;
        let tag = self.tag(key.0);
        if let Some((cached, bytes)) = self.entries.get(&key)
            && cached == tag
        {
            metrics::counter!("clokio_employee_list_cache_total", "result" => "hit").increment(1);
            return Ok(bytes);
        }
        metrics::counter!("clokio_employee_list_cache_total", "result" => "miss").increment(1);
        let bytes = load().await?;
        self.entries.insert(key, (tag, bytes.clone()));
        Ok(bytes)
    }

    /// After a committed write of `org`: forget its lists here and tell the other replicas,
    /// before the write is answered.
    pub async fn invalidate(&self, org: OrgId) {
        self.bump(org);
        if let Err(err) = self
            .client
            .publish(self.subject.clone(), org.to_string().into())
            .await
        {
            tracing::warn!(%err, "could not announce a cache invalidation");
        }
    }

    /// Drains announcements every 100 ms so they never pile up while nobody reads.
    pub async fn run_sync(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            self.sync().await;
        }
    }
}
