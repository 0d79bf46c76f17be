//! Read caches that stay consistent across replicas, keyed by organization. Used by employee-svc
//! for what it owns, and by the gateway for employee-svc's list replies.
//!
//! - Every entry is tagged with its org's generation and the reconnect epoch at the moment its
//!   load began. A write bumps the generation, so a value loaded while a write commits is never
//!   served after it: its tag no longer matches.
//! - The writer announces the org on the invalidation subject (core NATS) before it answers the
//!   write. Every cache drains the announcements it has received before each read (and every
//!   100 ms, so they never pile up).
//! - With a fence, a read first sends a message to itself through the NATS server and waits for
//!   it. The server writes to a connection in the order it routes, so when the echo arrives every
//!   announcement routed here earlier has reached its subscription (async-nats's `flush` is no
//!   such fence: it only empties the client's own write buffer). A client that saw the
//!   answer of a write therefore never reads the old value, through any replica. Without the
//!   fence the same holds when reads themselves arrive over NATS, behind the announcement
//!   (employee-svc). If the fence fails (NATS down), the cache is not used.
//! - After a NATS reconnect (announcements may have been lost) the epoch moves on and everything
//!   is dropped. A TTL and a byte bound are the last safety net.
//!
//! These orderings hold on one NATS server; across a cluster, announcements travel other routes
//! than requests and the guarantee weakens to "invalidated within the route latency".

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clokio_bus::ids::OrgId;
use futures::{FutureExt, StreamExt};
use moka::sync::Cache;

/// A cached value: cheap to clone, and it knows roughly how many bytes it holds (the cache is
/// bounded by the sum).
pub trait Weigh: Clone + Send + Sync + 'static {
    fn weight(&self) -> u32;
}

impl Weigh for Bytes {
    fn weight(&self) -> u32 {
        u32::try_from(self.len()).unwrap_or(u32::MAX)
    }
}

/// (reconnect epoch, local org generation, shared generation) when a value was loaded.
type Tag = (u64, u64, Option<u64>);

pub struct OrgCache<K: Hash + Eq + Clone + Send + Sync + 'static, V: Weigh = Bytes> {
    name: &'static str,
    entries: Cache<(OrgId, K), (Tag, V)>,
    /// Every key ever cached per org, to drop them all on invalidation.
    keys: Mutex<HashMap<OrgId, (u64, Vec<K>)>>,
    epoch: AtomicU64,
    announcements: tokio::sync::Mutex<async_nats::Subscriber>,
    client: async_nats::Client,
    subject: String,
    /// Confirms announcements reached the server (writes) and, with `fence_reads`, that none is
    /// still in flight (reads).
    fence: Fence,
    fence_reads: bool,
    connects_seen: AtomicU64,
}

/// A round trip through the NATS server to this client's own subscription. Concurrent reads
/// share round trips: a read needs an echo *sent after it began*, so it asks for the next number;
/// one sender task publishes only the highest number asked for, and its echo releases every read
/// waiting at or below it. Under load that is one round trip per round-trip time, not per read.
struct Fence {
    /// The highest fence number published so far.
    sent: Arc<AtomicU64>,
    /// The highest fence number a read is waiting for.
    requested: Arc<AtomicU64>,
    wake: Arc<tokio::sync::Notify>,
    received: tokio::sync::watch::Receiver<u64>,
    wait: Duration,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Fence {
    async fn new(
        client: async_nats::Client,
        wait: Duration,
    ) -> Result<Self, async_nats::SubscribeError> {
        let subject = client.new_inbox();
        let mut echoes = client.subscribe(subject.clone()).await?;
        let (tx, received) = tokio::sync::watch::channel(0u64);
        let receiver = tokio::spawn(async move {
            while let Some(msg) = echoes.next().await {
                if let Some(n) = std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    tx.send_if_modified(|seen| {
                        let newer = n > *seen;
                        if newer {
                            *seen = n;
                        }
                        newer
                    });
                }
            }
        });
        let (sent, requested, wake) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let sender = tokio::spawn({
            let (sent, requested, wake) = (sent.clone(), requested.clone(), wake.clone());
            async move {
                loop {
                    wake.notified().await;
                    let target = requested.load(Ordering::SeqCst);
                    // Published strictly after `sent` moves on: a read that saw the old value
                    // began before this publish.
                    if target > sent.load(Ordering::SeqCst) {
                        sent.store(target, Ordering::SeqCst);
                        if let Err(err) = client
                            .publish(subject.clone(), target.to_string().into())
                            .await
                        {
                            tracing::warn!(%err, "cache fence not sent");
                        }
                    }
                }
            }
        });
        Ok(Self {
            sent,
            requested,
            wake,
            received,
            wait,
            tasks: [receiver, sender],
        })
    }

    /// True once an echo sent after this call began has come back (and with it everything the
    /// server routed here before it).
    async fn pass(&self) -> bool {
        let need = self.sent.load(Ordering::SeqCst) + 1;
        self.requested.fetch_max(need, Ordering::SeqCst);
        self.wake.notify_one();
        let mut received = self.received.clone();
        matches!(
            tokio::time::timeout(self.wait, received.wait_for(|seen| *seen >= need)).await,
            Ok(Ok(_))
        )
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static, V: Weigh> OrgCache<K, V> {
    /// A cache named `name` (the metrics label) following announcements on `subject`. With
    /// `fence`, each read first waits at most that long for a NATS round trip.
    pub async fn new(
        name: &'static str,
        client: async_nats::Client,
        subject: String,
        fence: Option<Duration>,
    ) -> Result<Self, async_nats::SubscribeError> {
        let announcements = client.subscribe(subject.clone()).await?;
        let fence_reads = fence.is_some();
        let fence = Fence::new(client.clone(), fence.unwrap_or(Duration::from_secs(1))).await?;
        Ok(Self {
            name,
            entries: Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_, (_, value): &(Tag, V)| value.weight())
                .time_to_live(Duration::from_secs(300))
                .build(),
            keys: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            announcements: tokio::sync::Mutex::new(announcements),
            connects_seen: AtomicU64::new(client.statistics().connects.load(Ordering::Relaxed)),
            client,
            subject,
            fence,
            fence_reads,
        })
    }

    fn tag(&self, org: OrgId, shared: Option<u64>) -> Tag {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.epoch.load(Ordering::SeqCst),
            keys.get(&org).map_or(0, |(g, _)| *g),
            shared,
        )
    }

    fn bump(&self, org: OrgId) {
        let keys = {
            let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(org).or_insert((0, Vec::new()));
            entry.0 += 1;
            std::mem::take(&mut entry.1)
        };
        for key in keys {
            self.entries.invalidate(&(org, key));
        }
    }

    /// Applies every announcement already received; drops everything after a reconnect.
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
                None => {
                    self.epoch.fetch_add(1, Ordering::SeqCst);
                    self.entries.invalidate_all();
                }
            }
        }
    }

    /// The cached value, or `load`'s (cached unless a write raced it).
    ///
    /// `shared` is the org's generation in the shared store (Redis), read by the caller after the
    /// request arrived: a value loaded under the same generation is fresh, no fence needed (the
    /// writer bumps it after its announcement reached the server, see [`OrgCache::invalidate`]).
    /// Without it, a cache built with a fence fences.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        org: OrgId,
        key: K,
        shared: Option<u64>,
        load: F,
    ) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        if shared.is_none() && self.fence_reads && !self.fence.pass().await {
            // Freshness cannot be proven: no cache.
            metrics::counter!("clokio_cache_total", "cache" => self.name, "result" => "bypass")
                .increment(1);
            return load().await;
        }
        self.sync().await;
        let tag = self.tag(org, shared);
        if let Some((cached, bytes)) = self.entries.get(&(org, key.clone()))
            && cached == tag
        {
            metrics::counter!("clokio_cache_total", "cache" => self.name, "result" => "hit")
                .increment(1);
            return Ok(bytes);
        }
        metrics::counter!("clokio_cache_total", "cache" => self.name, "result" => "miss")
            .increment(1);
        let bytes = load().await?;
        {
            let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(org).or_insert((0, Vec::new()));
            if !entry.1.contains(&key) {
                entry.1.push(key.clone());
            }
        }
        self.entries.insert((org, key), (tag, bytes.clone()));
        Ok(bytes)
    }

    /// After a committed write of `org`: forget it here, announce it, and wait until the server
    /// has routed the announcement (true) before the caller bumps the shared generation and
    /// answers the write. Bumping first would let a reader see the new generation, miss, and load
    /// from a replica the announcement has not reached yet.
    pub async fn invalidate(&self, org: OrgId) -> bool {
        self.bump(org);
        if let Err(err) = self
            .client
            .publish(self.subject.clone(), org.to_string().into())
            .await
        {
            tracing::warn!(%err, "could not announce a cache invalidation");
            return false;
        }
        self.fence.pass().await
    }

    /// A round trip through the server on this client: once it returns true, every subscription
    /// this client made before the call is registered at the server (it handles a connection's
    /// protocol in order). async-nats's `flush` does not give that.
    pub async fn confirm_subscriptions(&self) -> bool {
        self.fence.pass().await
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
