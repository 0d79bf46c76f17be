//! The live event stream's plumbing: one JetStream ordered consumer per gateway replica follows
//! every org's attendance events and hands each to the open streams of its org (the hub), and
//! Redis leases bound the open streams per key across replicas.
//!
//! A client that resumes with `Last-Event-ID` registers with the hub first, then replays what it
//! missed through an ordered consumer of its own (ephemeral, filtered to its org, gone when the
//! replay ends or the client leaves); live events at or below the last replayed position are
//! skipped, so nothing is lost between the two and nothing comes twice. The position is the
//! event's sequence in the events stream.
//!
//! A client whose buffer is full (it stopped reading) is cut off at once: the hub never waits
//! for a reader, so one slow reader cannot hold up the others or the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use clokio_bus::Subjects;
use clokio_bus::events::{Event, kind};
use clokio_bus::ids::{ApiKeyId, OrgId};
use clokio_bus::ops::{AttendanceEvent, Filters};
use clokio_bus::types::Timezone;
use clokio_runtime::redis::LazyRedis;
use futures::StreamExt;
use tokio::sync::mpsc;

/// One event as every stream of its org sends it.
pub struct Live {
    /// Its sequence in the events stream: the SSE `id:`.
    pub seq: u64,
    /// `clock-in`, `clock-out`, `break-start` or `break-end`: the SSE `event:`.
    pub kind: String,
    /// The generic webhook body: the SSE `data:`.
    pub data: String,
}

impl Live {
    /// Decodes a stored event; `None` for one no stream announces (imported history).
    pub fn decode(seq: u64, payload: &[u8]) -> Option<(Live, Event<AttendanceEvent>)> {
        let event: Event<AttendanceEvent> = match serde_json::from_slice(payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%err, seq, "undecodable attendance event; not streamed");
                return None;
            }
        };
        if event.data.imported {
            return None;
        }
        let live = Live {
            seq,
            kind: event.data.event.clone(),
            data: event.data.generic_body(event.occurred_at).to_string(),
        };
        Some((live, event))
    }
}

/// What one stream asked for: event types (empty: all) and the webhook filters' employees,
/// locations and departments.
#[derive(Clone, Debug, Default)]
pub struct StreamFilter {
    pub types: Vec<String>,
    pub filters: Filters,
}

impl StreamFilter {
    pub fn accepts(&self, e: &AttendanceEvent) -> bool {
        (self.types.is_empty() || self.types.contains(&e.event))
            // No day or time filters here, so the time zone does not matter.
            && self.filters.matches(e, Timezone::default())
    }
}

struct Client {
    id: u64,
    filter: StreamFilter,
    tx: mpsc::Sender<Arc<Live>>,
    cut: Arc<AtomicBool>,
}

pub struct Hub {
    nats: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
    clients: Mutex<HashMap<OrgId, Vec<Client>>>,
    next_id: AtomicU64,
    /// Set once the hub's consumer runs: before that a stream could miss events.
    ready: tokio::sync::watch::Sender<bool>,
    buffer: usize,
}

/// A stream's place in the hub; dropping it leaves.
pub struct Registration {
    hub: Arc<Hub>,
    org: OrgId,
    id: u64,
    pub rx: mpsc::Receiver<Arc<Live>>,
    /// Set by the hub when the buffer overflowed: the stream must end at once.
    pub cut: Arc<AtomicBool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.leave(self.org, self.id);
    }
}

impl Hub {
    pub fn new(nats: async_nats::Client, subjects: Subjects, buffer: usize) -> Arc<Self> {
        Arc::new(Self {
            js: jetstream::new(nats.clone()),
            nats,
            subjects,
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            ready: tokio::sync::watch::channel(false).0,
            buffer: buffer.max(1),
        })
    }

    pub fn ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits up to `wait` for the hub's consumer to run (the gateway serves anyway after that;
    /// streams are refused with 503 until it does).
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|ready| *ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Open streams, for the metrics.
    fn open(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, Vec<Client>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>, org: OrgId, filter: StreamFilter) -> Registration {
        let (tx, rx) = mpsc::channel(self.buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cut = Arc::new(AtomicBool::new(false));
        self.lock().entry(org).or_default().push(Client {
            id,
            filter,
            tx,
            cut: cut.clone(),
        });
        metrics::gauge!("clokio_event_streams_open").set(self.open() as f64);
        Registration {
            hub: self.clone(),
            org,
            id,
            rx,
            cut,
        }
    }

    fn leave(&self, org: OrgId, id: u64) {
        let mut clients = self.lock();
        if let Some(list) = clients.get_mut(&org) {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                clients.remove(&org);
            }
        }
        let open: usize = clients.values().map(Vec::len).sum();
        drop(clients);
        metrics::gauge!("clokio_event_streams_open").set(open as f64);
    }

    /// Hands one stored event to its org's streams, cutting off any whose buffer is full.
    fn dispatch(&self, seq: u64, subject: &str, payload: &[u8]) {
        // Most events are of orgs with no stream open here: those are not decoded at all (the org
        // is in the subject). A stream registered after this look is not owed the event, as
        // before: a new stream starts with the events after it, and a resuming one replays it (its
        // replay is made after it registered).
        let org = clokio_bus::subject::event_org(subject);
        if org.is_some_and(|org| !self.lock().contains_key(&org)) {
            return;
        }
        let Some((live, event)) = Live::decode(seq, payload) else {
            return;
        };
        let live = Arc::new(live);
        let mut clients = self.lock();
        let Some(list) = clients.get_mut(&event.org_id) else {
            return;
        };
        list.retain(|c| {
            if !c.filter.accepts(&event.data) {
                return true;
            }
            match c.tx.try_send(live.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.cut.store(true, Ordering::Release);
                    metrics::counter!("clokio_event_streams_cut_total").increment(1);
                    tracing::info!(org = %event.org_id, "event stream reader too slow; cut off");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if list.is_empty() {
            clients.remove(&event.org_id);
        }
    }

    /// Follows every org's attendance events until the task is aborted; after a failure it goes on
    /// after the last event it handed out, so open streams miss nothing.
    pub async fn run(self: Arc<Self>) {
        follow(
            self.js.clone(),
            self.subjects.events_stream(),
            self.subjects.event_all_orgs(kind::ATTENDANCE, "*"),
            "event stream hub",
            |_| {
                self.ready.send_replace(true);
            },
            |seq, subject, payload| self.dispatch(seq, subject, payload),
        )
        .await
    }

    /// An ordered consumer (ephemeral, in memory, removed by the server once nobody listens).
    async fn consumer(
        &self,
        filter_subject: String,
        deliver_policy: DeliverPolicy,
    ) -> Result<jetstream::consumer::Consumer<push::OrderedConfig>, async_nats::Error> {
        let stream = self.js.get_stream(self.subjects.events_stream()).await?;
        Ok(stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.nats.new_inbox(),
                filter_subject,
                deliver_policy,
                ..Default::default()
            })
            .await?)
    }

    /// Where a resume from `after` starts: `None` when the position is outside what the events
    /// stream holds (older than its retention, or never given out), so the client must reset;
    /// else the replay of `org`'s events after it (itself `None` when there is nothing to replay).
    pub async fn resume(&self, org: OrgId, after: u64) -> Result<Resume, async_nats::Error> {
        let mut stream = self.js.get_stream(self.subjects.events_stream()).await?;
        let state = stream.info().await?.state.clone();
        if after > state.last_sequence || after.saturating_add(1) < state.first_sequence {
            return Ok(Resume::Reset);
        }
        if after == state.last_sequence {
            return Ok(Resume::Replay(None));
        }
        let consumer = self
            .consumer(
                self.subjects.event(kind::ATTENDANCE, org, "*"),
                DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
            )
            .await?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(Resume::Replay(None));
        }
        Ok(Resume::Replay(Some(Box::new(consumer.messages().await?))))
    }
}

pub enum Resume {
    /// The position is unknown: one `reset` event, then live events.
    Reset,
    /// The org's stored events after the position, up to now.
    Replay(Option<Box<push::Ordered>>),
}

/// Follows `filter_subject` in the events stream from the moment it first starts, until the task
/// is aborted, handing each event to `handle` once and in order. The ordered consumer notices a
/// gap (a broken link between NATS servers drops pushed messages without the client's own
/// connection noticing) by its heartbeat and is made again after the last event handed out; after
/// any other failure this makes it again from there itself. `started` runs each time it
/// (re)starts, with `true` when it starts at the stream's end rather than after a known event, so
/// the caller can drop what it may have missed before.
pub async fn follow(
    js: jetstream::Context,
    stream: String,
    filter_subject: String,
    what: &str,
    mut started: impl FnMut(bool),
    mut handle: impl FnMut(u64, &str, &[u8]),
) {
    let mut last: Option<u64> = None;
    loop {
        let result = follow_once(
            &js,
            &stream,
            &filter_subject,
            &mut last,
            &mut started,
            &mut handle,
        );
        if let Err(err) = result.await {
            tracing::warn!(%err, "{what}: consumer failed; starting again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn follow_once(
    js: &jetstream::Context,
    stream: &str,
    filter_subject: &str,
    last: &mut Option<u64>,
    started: &mut impl FnMut(bool),
    handle: &mut impl FnMut(u64, &str, &[u8]),
) -> Result<(), async_nats::Error> {
    let mut stream = js.get_stream(stream).await?;
    let after = match *last {
        Some(seq) => seq,
        None => stream.info().await?.state.last_sequence,
    };
    let mut messages = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: filter_subject.to_owned(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await?
        .messages()
        .await?;
    started(last.is_none());
    *last = Some(after);
    tracing::info!(filter_subject, after, "following events");
    let mut done = after;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let seq = msg.info()?.stream_sequence;
        // The consumer, made again by the client before it handed anything out, starts over
        // from the stream's beginning: skip what was handed out already or predates the start.
        if seq <= done {
            continue;
        }
        done = seq;
        *last = Some(seq);
        handle(seq, &msg.subject, &msg.payload);
    }
    Ok(())
}

/// The most streams one key may hold open, across every gateway.
pub const MAX_STREAMS_PER_KEY: usize = 5;

/// How long a lease lives without a refresh (a gateway that dies frees its streams' places then).
const LEASE_TTL: Duration = Duration::from_secs(60);

/// How often an open stream refreshes its lease.
pub const LEASE_REFRESH: Duration = Duration::from_secs(15);

/// KEYS[1] the key's lease set (member: lease id, score: expiry in ms). ARGV: now ms, expiry
/// ms, the limit, the lease id, the set's TTL in ms. 1 when taken, 0 when the key is at its limit.
const ACQUIRE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Places for open streams, per key, shared by the replicas through Redis. While Redis does not
/// answer, each replica counts its own (at most `replicas × 5` then).
pub struct Leases {
    redis: Arc<LazyRedis>,
    script: redis::Script,
    prefix: String,
    local: Mutex<HashMap<ApiKeyId, usize>>,
}

/// One open stream's place; released when dropped.
pub struct Lease {
    leases: Arc<Leases>,
    key: ApiKeyId,
    id: String,
    /// Taken from the replica's own count (Redis did not answer).
    local: bool,
}

impl Leases {
    pub fn new(redis: Arc<LazyRedis>, prefix: &str) -> Arc<Self> {
        Arc::new(Self {
            redis,
            script: redis::Script::new(ACQUIRE),
            prefix: prefix.to_owned(),
            local: Mutex::new(HashMap::new()),
        })
    }

    fn set(&self, key: ApiKeyId) -> String {
        format!("{}:streams:{key}", self.prefix)
    }

    fn now_ms() -> u64 {
        chrono::Utc::now().timestamp_millis().max(0) as u64
    }

    /// A place for one more stream of `key`, or `None` when it has `MAX_STREAMS_PER_KEY` open.
    pub async fn acquire(self: &Arc<Self>, key: ApiKeyId) -> Option<Lease> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = Self::now_ms();
        let taken = async {
            let mut conn = self.redis.connection().await?;
            self.script
                .key(self.set(key))
                .arg(now)
                .arg(now + LEASE_TTL.as_millis() as u64)
                .arg(MAX_STREAMS_PER_KEY)
                .arg(&id)
                .arg(LEASE_TTL.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.redis.timeout(), taken).await {
            Ok(Ok(taken)) => (taken == 1).then(|| Lease {
                leases: self.clone(),
                key,
                id,
                local: false,
            }),
            outcome => {
                let err = match outcome {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(error = %err, "stream leases: Redis unreachable; counting locally");
                let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
                let open = local.entry(key).or_insert(0);
                (*open < MAX_STREAMS_PER_KEY).then(|| {
                    *open += 1;
                    Lease {
                        leases: self.clone(),
                        key,
                        id,
                        local: true,
                    }
                })
            }
        }
    }
}

impl Lease {
    /// Keeps the place while the stream stays open.
    pub async fn refresh(&self) {
        if self.local {
            return;
        }
        let leases = &self.leases;
        let refresh = async {
            let mut conn = leases.redis.connection().await?;
            redis::pipe()
                .cmd("ZADD")
                .arg(leases.set(self.key))
                .arg("XX")
                .arg(Leases::now_ms() + LEASE_TTL.as_millis() as u64)
                .arg(&self.id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(leases.set(self.key))
                .arg(LEASE_TTL.as_millis() as u64)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        };
        if let Ok(Err(err)) = tokio::time::timeout(leases.redis.timeout(), refresh).await {
            tracing::debug!(%err, "stream lease not refreshed");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.local {
            let mut local = self.leases.local.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(open) = local.get_mut(&self.key) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    local.remove(&self.key);
                }
            }
            return;
        }
        let (leases, key, id) = (self.leases.clone(), self.key, std::mem::take(&mut self.id));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let release = async {
                    let mut conn = leases.redis.connection().await?;
                    redis::cmd("ZREM")
                        .arg(leases.set(key))
                        .arg(&id)
                        .query_async::<i64>(&mut conn)
                        .await
                };
                // Not released: the lease expires by itself within LEASE_TTL.
                let _ = tokio::time::timeout(leases.redis.timeout(), release).await;
            });
        }
    }
}
