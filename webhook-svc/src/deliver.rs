//! From events to HTTP requests, through JetStream only (no retry lives in memory):
//!
//! - **Intake**: the durable consumer `webhook-intake` on `<prefix>.events.attendance.>` matches
//!   each event against the org's active subscriptions, stores one delivery per match (unique per
//!   subscription and event, so a redelivered event stores nothing twice) and publishes its id to
//!   the work-queue stream `<PREFIX>-WEBHOOK-DELIVERIES` (the delivery id is the `Nats-Msg-Id`),
//!   then acknowledges the event. Imported history is not announced.
//! - **Workers**: the durable consumer `webhook-workers` on that stream, shared by every replica.
//!   Each message is one attempt: POST with a 15 s timeout and no redirects; 2xx acknowledges it;
//!   a failure is NAKed with the next delay of the schedule (± 20 % jitter, at least the
//!   receiver's `Retry-After` on 429/503), so JetStream holds it until then; after the last
//!   attempt the delivery is `failed`. 410 switches the subscription off, and so does failing
//!   for 5 days. A per-subscription cap keeps one slow receiver from taking every worker.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::events::Event;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{AttendanceEvent, Delivery};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::Batcher;
use crate::render;
use crate::subs::{SubRow, sub_columns};
use crate::{State, db};

pub const INTAKE: &str = "webhook-intake";
pub const WORKERS: &str = "webhook-workers";
/// Marks an attempt asked for through the API: `manual` (a retry) or `test` (a sample).
const TRIGGER_HEADER: &str = "Clokio-Trigger";
/// On a scheduled message queued again by the overdue sweep: the delivery's `requeues` count.
const REQUEUE_HEADER: &str = "Clokio-Requeue";

/// Why a delivery is put on the work queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Its event matched (the first attempt; retries come back as NAKs with a delay), under the
    /// delivery's `requeues` count: 0, unless the overdue sweep queued it again, which makes every
    /// older copy stale.
    Scheduled { requeue: i32 },
    /// `POST …/deliveries/{id}/retry`: one attempt now, whatever its state.
    Manual,
    /// `POST …/test`: a sample with no schedule of its own, so its one attempt settles it.
    Test,
}

impl Trigger {
    /// The first attempt of a delivery just stored.
    pub const FIRST: Self = Self::Scheduled { requeue: 0 };

    /// The header value that marks it on the work queue (a scheduled attempt has none).
    fn header(self) -> Option<&'static str> {
        match self {
            Self::Scheduled { .. } => None,
            Self::Manual => Some("manual"),
            Self::Test => Some("test"),
        }
    }

    fn of(msg: &jetstream::Message) -> Self {
        let header = |name| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str())
        };
        let trigger = header(TRIGGER_HEADER);
        [Self::Manual, Self::Test]
            .into_iter()
            .find(|t| trigger.is_some() && t.header() == trigger)
            .unwrap_or(Self::Scheduled {
                requeue: header(REQUEUE_HEADER)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            })
    }

    fn manual(self) -> bool {
        !matches!(self, Self::Scheduled { .. })
    }
}
/// A subscription failing for this long without a success is switched off.
const DISABLE_AFTER: chrono::Duration = chrono::Duration::days(5);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Creates the work-queue stream and both consumers if missing.
pub async fn setup(
    state: &State,
) -> Result<
    (
        jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
        jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    ),
    async_nats::Error,
> {
    let replicas = state.config.bus.stream_replicas;
    let events =
        clokio_bus::events::ensure_events_stream(&state.js, &state.subjects, replicas).await?;
    // Created, or updated to these settings (a deployment started with other ones follows). A
    // short ack wait brings back within seconds the events a killed replica had taken; taking
    // one is a lookup, one insert and a publish.
    let intake = events
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(INTAKE.to_owned()),
            filter_subject: state.subjects.event_all_orgs("attendance", ">"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(5),
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await?;
    let queue = clokio_bus::events::ensure_stream(
        &state.js,
        jetstream::stream::Config {
            name: state.subjects.webhook_queue().0,
            subjects: vec![state.subjects.webhook_queue().1],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            storage: jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await?;
    let workers = queue
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(WORKERS.to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: state.config.ack_wait,
            // Deliveries waiting for a retry (hours, NAKed with a delay) stay pending on the
            // consumer; a low limit would let a backlog of dead receivers stop new deliveries.
            max_ack_pending: 1_000_000,
            ..Default::default()
        })
        .await?;
    Ok((intake, workers))
}

/// Publishes a delivery to the work queue.
pub async fn enqueue(state: &State, id: Uuid, trigger: Trigger) -> Result<(), BusError> {
    let mut headers = HeaderMap::new();
    let msg_id = match trigger {
        Trigger::Scheduled { requeue: 0 } => id.to_string(),
        Trigger::Scheduled { requeue } => {
            headers.insert(REQUEUE_HEADER, requeue.to_string().as_str());
            format!("{id}:requeue:{requeue}")
        }
        Trigger::Manual | Trigger::Test => {
            let name = trigger.header().unwrap_or_default();
            headers.insert(TRIGGER_HEADER, name);
            format!("{id}:{name}:{}", Uuid::new_v4().simple())
        }
    };
    headers.insert("Nats-Msg-Id", msg_id.as_str());
    clokio_bus::trace::inject(&tracing::Span::current(), &mut headers);
    let ack = state
        .js
        .publish_with_headers(
            state.subjects.webhook_queue().1,
            headers,
            id.to_string().into(),
        )
        .await
        .map_err(|err| {
            tracing::warn!(%err, "could not queue a delivery");
            BusError::unavailable()
        })?;
    ack.await.map_err(|err| {
        tracing::warn!(%err, "JetStream did not take a delivery");
        BusError::unavailable()
    })?;
    Ok(())
}

// ---------------------------------------------------------------- intake

pub async fn run_intake(
    state: State,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    stop: CancellationToken,
) {
    // Events are independent of each other: take up to 64 at once.
    const SLOTS: u32 = 64;
    let slots = Arc::new(Semaphore::new(SLOTS as usize));
    while !stop.is_cancelled() {
        let result = async {
            // No more messages in hand than there are slots (see `run_workers`).
            let mut messages = clokio_bus::events::messages(&consumer, SLOTS as usize).await?;
            loop {
                let permit = slots.clone().acquire_owned().await?;
                let Some(msg) = next_unless_stopped(&mut messages, &stop).await else {
                    break;
                };
                let msg = msg?;
                let state = state.clone();
                let span = tracing::info_span!(
                    "take event",
                    otel.kind = "consumer",
                    subject = %msg.subject,
                    trace_id = tracing::field::Empty,
                );
                clokio_bus::trace::continue_from(&span, msg.headers.as_ref());
                let task = async move {
                    match take(&state, &msg.payload).await {
                        Ok(()) => {
                            let _ = msg.ack().await;
                        }
                        Err(err) => {
                            tracing::warn!(%err, "event not taken; redelivered in 1 s");
                            let _ = msg
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await;
                        }
                    }
                    drop(permit);
                };
                tokio::spawn(tracing::Instrument::instrument(task, span));
            }
            Ok::<(), async_nats::Error>(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(%err, "intake consumer failed; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Whatever was taken is finished: `acquire_many` waits until every slot is back.
    let _ = slots.acquire_many(SLOTS).await;
}

/// Stores and queues the deliveries of one event.
async fn take(state: &State, payload: &[u8]) -> Result<(), BusError> {
    let Ok(event) = serde_json::from_slice::<Event<AttendanceEvent>>(payload) else {
        tracing::error!("unreadable attendance event skipped");
        return Ok(());
    };
    if event.data.imported {
        return Ok(());
    }
    let subs = state.active(event.org_id).await?;
    let wanted: Vec<&SubRow> = subs
        .iter()
        .filter(|s| s.events.contains(&event.data.event))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let tz = state.directory.org(event.org_id).await?.org.timezone;
    let (mut subs_of, mut bodies) = (Vec::new(), Vec::new());
    for sub in wanted {
        if sub.filters.0.matches(&event.data, tz) {
            subs_of.push(sub.id);
            bodies.push(render::body(
                sub.platform(),
                sub.template.as_deref(),
                &event,
                tz,
            ));
        }
    }
    if subs_of.is_empty() {
        return Ok(());
    }
    // One statement for all of the event's deliveries; a redelivered event finds them stored.
    // What it finds is queued again only if no scheduled attempt was made yet (its first queueing
    // may have failed): the schedule of one attempted lives in JetStream, and queueing it again
    // after the queue's duplicate window (an event published again after a long outage) would
    // give the delivery a second schedule.
    let ids: Vec<Uuid> = (0..subs_of.len()).map(|_| Uuid::new_v4()).collect();
    let stored: Vec<(Uuid, bool)> = sqlx::query_as(
        "INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_type, body) \
         SELECT d.id, $2, d.sub, $3, $4, d.body FROM unnest($1::uuid[], $5::uuid[], $6::bytea[]) \
            AS d(id, sub, body) \
         ON CONFLICT (subscription_id, event_id) DO UPDATE SET event_type = deliveries.event_type \
         RETURNING id, status = 'pending' AND scheduled_attempts = 0",
    )
    .bind(&ids)
    .bind(event.org_id.as_uuid())
    .bind(event.id.as_uuid())
    .bind(&event.data.event)
    .bind(&subs_of)
    .bind(&bodies)
    .fetch_all(&state.pool)
    .await
    .map_err(db::err)?;
    let queued = stored
        .into_iter()
        .filter(|(_, unattempted)| *unattempted)
        .map(|(id, _)| enqueue(state, id, Trigger::FIRST));
    for result in futures::future::join_all(queued).await {
        result?;
    }
    Ok(())
}

// ---------------------------------------------------------------- workers

/// Per-subscription in-flight attempts on this replica.
#[derive(Default)]
pub struct Caps(Mutex<HashMap<Uuid, Arc<Semaphore>>>);

impl Caps {
    fn of(&self, sub: Uuid, cap: usize) -> Arc<Semaphore> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| s.available_permits() < cap);
        }
        map.entry(sub)
            .or_insert_with(|| Arc::new(Semaphore::new(cap)))
            .clone()
    }
}

/// The deliveries being attempted on this replica.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<Uuid>>);

/// A delivery held by [`InFlight::claim`] until dropped.
pub struct Attempting<'a>(&'a InFlight, Uuid);

impl InFlight {
    /// Holds `id` for one attempt: `None` when it is being attempted already.
    fn claim(&self, id: Uuid) -> Option<Attempting<'_>> {
        let fresh = self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        // Made only when fresh, and after the lock is released: its drop takes the lock.
        if fresh {
            Some(Attempting(self, id))
        } else {
            None
        }
    }
}

impl Drop for Attempting<'_> {
    fn drop(&mut self) {
        let mut held = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.1);
    }
}

pub async fn run_workers(
    state: State,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    stop: CancellationToken,
) {
    let workers = state.config.workers;
    let slots = Arc::new(Semaphore::new(workers));
    while !stop.is_cancelled() {
        let result = async {
            // No more messages in hand than the workers can start soon, each taken only once a
            // worker is free: one waiting behind many slow attempts would outlive its ack wait
            // and be handed out again, elsewhere too.
            let mut messages = clokio_bus::events::messages(&consumer, workers).await?;
            loop {
                let permit = slots.clone().acquire_owned().await?;
                let Some(msg) = next_unless_stopped(&mut messages, &stop).await else {
                    break;
                };
                let msg = msg?;
                let state = state.clone();
                let span = tracing::info_span!(
                    "deliver webhook",
                    otel.kind = "consumer",
                    trace_id = tracing::field::Empty,
                );
                clokio_bus::trace::continue_from(&span, msg.headers.as_ref());
                let task = async move {
                    attempt(&state, msg).await;
                    drop(permit);
                };
                tokio::spawn(tracing::Instrument::instrument(task, span));
            }
            Ok::<(), async_nats::Error>(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(%err, "delivery consumer failed; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Attempts under way are finished and recorded, so none is sent again by another replica.
    let _ = slots
        .acquire_many(u32::try_from(workers).unwrap_or(u32::MAX))
        .await;
}

/// The consumer's next message, or `None` once `stop` is cancelled. Messages already pulled but
/// not started are handed back at once (NAK), so another replica takes them without waiting for
/// their ack deadline.
async fn next_unless_stopped(
    messages: &mut jetstream::consumer::pull::Stream,
    stop: &CancellationToken,
) -> Option<Result<jetstream::Message, async_nats::Error>> {
    tokio::select! {
        biased;
        () = stop.cancelled() => {
            // What is already here arrives at once; stop at the first pause (or after 500 ms).
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(20), messages.next()).await {
                    Ok(Some(Ok(msg))) => {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                    }
                    _ => break,
                }
            }
            None
        }
        msg = messages.next() => msg.map(|m| m.map_err(Into::into)),
    }
}

#[derive(sqlx::FromRow)]
struct Due {
    body: Vec<u8>,
    status: String,
    /// Attempts made on the schedule (manual retries do not move it).
    scheduled_attempts: i32,
    /// Times the overdue sweep queued it again: the only scheduled copy attempted is the last.
    requeues: i32,
    /// When its next scheduled attempt is due (none before the first).
    next_attempt_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    sub: SubRow,
}

/// What one HTTP attempt came to.
struct Outcome {
    status: u16,
    error: Option<&'static str>,
    latency: Duration,
    body: String,
    retry_after: Option<Duration>,
}

async fn attempt(state: &State, msg: jetstream::Message) {
    let trigger = Trigger::of(&msg);
    let Some(id) = std::str::from_utf8(&msg.payload)
        .ok()
        .and_then(|s| s.parse::<Uuid>().ok())
    else {
        let _ = msg.ack().await;
        return;
    };
    // The same delivery twice at once (a manual retry beside its scheduled attempt, or a message
    // redelivered while its first copy is still under way): the second waits its turn, so what
    // the first decides (done, or back after a delay) is not overtaken by the second's answer.
    let Some(_attempting) = state.in_flight.claim(id) else {
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    };
    match try_attempt(state, &msg, id, trigger).await {
        Ok(Some(delay)) => {
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
        }
        Ok(None) => {
            let _ = msg.ack().await;
        }
        Err(err) => {
            tracing::warn!(%err, delivery = %id, "attempt not recorded; retried in 5 s");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
        }
    }
}

/// One attempt; Some(delay) when the message should come back after it.
async fn try_attempt(
    state: &State,
    msg: &jetstream::Message,
    id: Uuid,
    trigger: Trigger,
) -> Result<Option<Duration>, BusError> {
    let manual = trigger.manual();
    let due = state.batched.due(id).await?;
    let Some(due) = due else {
        return Ok(None); // deleted with its subscription
    };
    let sub = &due.sub;
    if !manual && due.status != "pending" {
        return Ok(None); // already settled (a republished message)
    }
    if let Trigger::Scheduled { requeue } = trigger
        && requeue != due.requeues
    {
        // Queued before the sweep queued it again (its message was held up, not lost after
        // all): the newer copy carries the schedule.
        metrics::counter!("clokio_webhook_stale_copies_total").increment(1);
        return Ok(None);
    }
    // A copy handed out again while the first waited past its ack wait: once the first has
    // failed, this one goes back to wait until the retry is due rather than attempting ahead of
    // the schedule. (The second of slack allows for replicas' clocks.)
    let early = due
        .next_attempt_at
        .and_then(|at| (at - Utc::now()).to_std().ok());
    if !manual && let Some(early) = early.filter(|e| *e > Duration::from_secs(1)) {
        metrics::counter!("clokio_webhook_early_copies_total").increment(1);
        return Ok(Some(early));
    }
    if !manual && !sub.active {
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&state.pool)
        .await
        .map_err(db::err)?;
        return Ok(None);
    }
    // A generic delivery is signed: while its webhook's secret does not open (the key changed, or
    // the value was damaged) it waits, retried every 5 s, until the secret is rotated.
    let signing = if sub.platform() == clokio_bus::ops::Platform::Generic {
        let Some(secrets) = sub.signing_secrets(Utc::now()) else {
            tracing::error!(subscription = %sub.id, delivery = %id,
                "the webhook's secret does not open with CLOKIO_WEBHOOK_SECRET_KEY; the delivery waits");
            return Err(BusError::internal());
        };
        Some(secrets)
    } else {
        None
    };
    let cap = state.caps.of(sub.id, state.config.per_subscription);
    // This receiver has enough in flight here: wait a moment, then let others go first.
    let Ok(Ok(_slot)) = tokio::time::timeout(Duration::from_millis(100), cap.acquire_owned()).await
    else {
        return Ok(Some(Duration::from_millis(250)));
    };
    let outcome = post(state, msg, sub, id, &due.body, signing.as_deref()).await;
    let now = Utc::now();
    // The schedule's position counts scheduled attempts only: a manual retry beside a waiting
    // delivery neither uses up its schedule nor clears when it is due.
    let attempts = due.scheduled_attempts + 1;
    let ok = (200..300).contains(&outcome.status);
    let gone = outcome.status == 410;
    let schedule = &state.config.schedule;
    let next = if ok || gone || manual || attempts as usize >= schedule.len() {
        None
    } else {
        let base = schedule[attempts as usize];
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let delay = base.mul_f64(jitter);
        Some(match outcome.retry_after {
            Some(after) if matches!(outcome.status, 429 | 503) => delay.max(after),
            _ => delay,
        })
    };
    let status = match (ok, next) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        // A sample has no scheduled attempts to wait for.
        (false, None) if trigger == Trigger::Test => "failed",
        // A scheduled delivery retried by hand keeps its own schedule.
        (false, None) if manual && due.status == "pending" => "pending",
        (false, None) if manual => due.status.as_str(),
        (false, None) => "failed",
    };
    let latency_ms = outcome.latency.as_millis().min(i32::MAX as u128) as i32;
    // The common case, a success of a healthy subscription, needs nothing but its record, which
    // goes with the other attempts' in a batch.
    if ok && sub.failing_since.is_none() {
        state
            .batched
            .record(Success {
                delivery: id,
                at: now,
                manual,
                status: i32::from(outcome.status),
                latency_ms,
                body: outcome.body,
            })
            .await?;
        metrics::counter!("clokio_webhook_attempts_total", "outcome" => "success").increment(1);
        return Ok(next);
    }
    // Otherwise the attempt and the delivery's new state in one statement, with the
    // subscription's own changes in the same transaction.
    let record = sqlx::query(
        "WITH a AS ( \
            INSERT INTO attempts (delivery_id, at, trigger, status_code, error, latency_ms, response_body) \
            VALUES ($1, $2, $3, $4, $5, $6, $7)) \
         UPDATE deliveries SET attempt_count = attempt_count + 1, \
            scheduled_attempts = scheduled_attempts + $10, status = $8, \
            next_attempt_at = CASE WHEN $11 THEN next_attempt_at ELSE $9 END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(if manual { "manual" } else { "scheduled" })
    .bind(i32::from(outcome.status))
    .bind(outcome.error)
    .bind(latency_ms)
    .bind(&outcome.body)
    .bind(status)
    .bind(next.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now + d))
    .bind(i32::from(!manual))
    .bind(manual && status == "pending");
    let mut tx = state.pool.begin().await.map_err(db::err)?;
    record.execute(&mut *tx).await.map_err(db::err)?;
    let disable = if gone {
        Some("The endpoint answered 410 Gone".to_owned())
    } else if !ok {
        let (since,): (Option<chrono::DateTime<Utc>>,) = sqlx::query_as(
            "UPDATE subscriptions SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 \
             RETURNING failing_since",
        )
        .bind(sub.id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db::err)?;
        since.filter(|s| now - *s > DISABLE_AFTER).map(|s| {
            format!(
                "Every delivery failed since {}",
                s.format("%Y-%m-%d %H:%M UTC")
            )
        })
    } else {
        if sub.failing_since.is_some() {
            sqlx::query("UPDATE subscriptions SET failing_since = NULL WHERE id = $1")
                .bind(sub.id)
                .execute(&mut *tx)
                .await
                .map_err(db::err)?;
        }
        None
    };
    if let Some(reason) = &disable {
        sqlx::query(
            "UPDATE subscriptions SET active = false, disabled_reason = $2, updated_at = now() WHERE id = $1",
        )
        .bind(sub.id)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db::err)?;
    }
    tx.commit().await.map_err(db::err)?;
    if disable.is_some() {
        state.changed(OrgId::from_uuid(sub.org_id)).await;
    }
    metrics::counter!("clokio_webhook_attempts_total",
        "outcome" => if ok { "success" } else { outcome.error.unwrap_or("http") })
    .increment(1);
    Ok(next)
}

/// A successful attempt of a healthy subscription: the common case, recorded in batches.
pub(crate) struct Success {
    delivery: Uuid,
    at: chrono::DateTime<Utc>,
    manual: bool,
    status: i32,
    latency_ms: i32,
    body: String,
}

/// The statements of the common path, batched across concurrent attempts ([`Batcher`]): the
/// delivery to attempt, and the record of a success (each attempt's message is acknowledged only
/// after its batch committed).
#[derive(Clone)]
pub(crate) struct Batched {
    due: Batcher<Uuid, Result<Option<Arc<Due>>, BusError>>,
    success: Batcher<Success, Result<(), BusError>>,
}

/// The most rows one batched statement reads or writes.
const STATEMENT_BATCH: usize = 512;

impl Batched {
    pub(crate) fn start(pool: PgPool) -> Self {
        let reads = pool.clone();
        Self {
            due: Batcher::start(STATEMENT_BATCH, move |ids| {
                let pool = reads.clone();
                async move {
                    match load_due(&pool, &ids).await {
                        Ok(found) => hand_out(&ids, found)
                            .into_iter()
                            .map(Option::transpose)
                            .collect(),
                        Err(err) => {
                            let err = db::err(err);
                            ids.iter().map(|_| Err(err.clone())).collect()
                        }
                    }
                }
            }),
            success: Batcher::start(STATEMENT_BATCH, move |batch: Vec<Success>| {
                let pool = pool.clone();
                async move {
                    let n = batch.len();
                    vec![write_successes(&pool, batch).await.map_err(db::err); n]
                }
            }),
        }
    }

    async fn due(&self, id: Uuid) -> Result<Option<Arc<Due>>, BusError> {
        self.due
            .call(id)
            .await
            .unwrap_or(Err(BusError::unavailable()))
    }

    async fn record(&self, success: Success) -> Result<(), BusError> {
        self.success
            .call(success)
            .await
            .unwrap_or(Err(BusError::unavailable()))
    }
}

static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id AS delivery_id, d.body, d.status, d.scheduled_attempts, d.requeues, \
            d.next_attempt_at, {} \
         FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id \
         WHERE d.id = ANY($1)",
        sub_columns()
    )
});

/// The batch's rows by delivery id. A row that does not decode (its webhook's sealed secret does
/// not open with the key, say) is an error for that delivery alone: the rest of the batch, of
/// every org, goes on.
async fn load_due(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Result<Arc<Due>, BusError>>, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let rows = sqlx::query(&DUE).bind(ids).fetch_all(pool).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("delivery_id")?;
        let due = Due::from_row(row).map(Arc::new).map_err(|err| {
            tracing::error!(%err, delivery = %id, "a delivery cannot be read; it waits");
            BusError::internal()
        });
        found.insert(id, due);
    }
    Ok(found)
}

/// Each asker's row, in the order asked: an id asked twice in one batch gets its row twice (not
/// `None`, which reads as "deleted with its subscription").
fn hand_out<V: Clone>(ids: &[Uuid], found: HashMap<Uuid, V>) -> Vec<Option<V>> {
    ids.iter().map(|id| found.get(id).cloned()).collect()
}

async fn write_successes(pool: &PgPool, batch: Vec<Success>) -> Result<(), sqlx::Error> {
    let n = batch.len();
    let (mut ids, mut ats, mut triggers) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut codes, mut latencies, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for s in batch {
        ids.push(s.delivery);
        ats.push(s.at);
        triggers.push(if s.manual { "manual" } else { "scheduled" });
        codes.push(s.status);
        latencies.push(s.latency_ms);
        bodies.push(s.body);
    }
    sqlx::query(
        "WITH r AS ( \
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int[], $5::int[], $6::text[]) \
                AS r(id, at, trigger, status_code, latency_ms, body)), \
         a AS ( \
            INSERT INTO attempts (delivery_id, at, trigger, status_code, latency_ms, response_body) \
            SELECT id, at, trigger, status_code, latency_ms, body FROM r) \
         UPDATE deliveries d SET attempt_count = d.attempt_count + 1, \
            scheduled_attempts = d.scheduled_attempts + (r.trigger = 'scheduled')::int, \
            status = 'succeeded', next_attempt_at = NULL \
         FROM r WHERE d.id = r.id",
    )
    .bind(ids)
    .bind(ats)
    .bind(triggers)
    .bind(codes)
    .bind(latencies)
    .bind(bodies)
    .execute(pool)
    .await?;
    Ok(())
}

/// POSTs the body, keeping the message alive while the receiver takes its time.
/// One HTTP attempt; `signing`: the secrets that sign it (a generic delivery), or none.
async fn post(
    state: &State,
    msg: &jetstream::Message,
    sub: &SubRow,
    id: Uuid,
    body: &[u8],
    signing: Option<&[&str]>,
) -> Outcome {
    let started = Instant::now();
    let fail = |error: &'static str| Outcome {
        status: 0,
        error: Some(error),
        latency: started.elapsed(),
        body: String::new(),
        retry_after: None,
    };
    let url = match state.policy.check_url(&sub.url) {
        Ok(url) => url,
        Err(_) => return fail("blocked"),
    };
    // A literal address never meets the resolver: check it here.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if literal.is_some_and(|ip| !state.policy.permits(ip)) {
        return fail("blocked");
    }
    let mut req = state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Clokio-Webhooks/1")
        .body(body.to_vec());
    if let Some(secrets) = signing {
        let ts = Utc::now().timestamp();
        let webhook_id = id.to_string();
        req = req
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                render::signature(secrets, &webhook_id, ts, body),
            );
    }
    let send = req.send();
    tokio::pin!(send);
    let every = state.config.ack_wait / 3;
    let res = loop {
        tokio::select! {
            res = &mut send => break res,
            () = tokio::time::sleep(every) => {
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    };
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, Utc::now()));
            let mut body = Vec::new();
            let mut res = res;
            while let Ok(Some(chunk)) = res.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= 4096 {
                    break;
                }
            }
            Outcome {
                status,
                error: (!(200..300).contains(&status)).then_some("http"),
                latency: started.elapsed(),
                body: logged_body(&body),
                retry_after,
            }
        }
        Err(err) => fail(error_kind(&err)),
    }
}

/// A `Retry-After` value: delay seconds or an HTTP date (RFC 9110), as a wait from `now`, at most
/// `MAX_RETRY_AFTER`. A date in the past means no wait.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A response body as the delivery log keeps it: text (invalid UTF-8 and NUL, which Postgres text
/// cannot hold, replaced) of at most 4 KiB, cut at a character boundary.
fn logged_body(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(body).replace('\0', "\u{FFFD}");
    let mut end = text.len().min(4096);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// What kind of failure a request error is: `timeout`, `blocked` (the guard refused every
/// address), `dns` or `connection`.
fn error_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        return "timeout";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if e.is::<crate::guard::Blocked>() {
            return "blocked";
        }
        source = e.source();
    }
    let text = format!("{err:?}").to_lowercase();
    if text.contains("blocked") {
        "blocked"
    } else if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
        "dns"
    } else {
        "connection"
    }
}

// ---------------------------------------------------------------- the delivery log

#[derive(sqlx::FromRow)]
pub struct DeliveryRow {
    id: Uuid,
    subscription_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempt_count: i32,
    next_attempt_at: Option<chrono::DateTime<Utc>>,
    created_at: chrono::DateTime<Utc>,
}

pub const DELIVERY_COLUMNS: &str =
    "id, subscription_id, event_id, event_type, status, attempt_count, next_attempt_at, created_at";

impl DeliveryRow {
    pub fn view(self) -> Delivery {
        Delivery {
            id: self.id,
            webhook_id: self.subscription_id,
            event_id: self.event_id,
            event_type: self.event_type,
            status: self.status,
            attempt_count: self.attempt_count.max(0) as u32,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            attempts: None,
        }
    }
}

/// Puts on the work queue again, now and then, the pending deliveries whose attempt is overdue by
/// `after`: their message was lost to the queue (a consumer stuck after a NATS leader change, a
/// purge), and nothing else would ever attempt them. Each is queued under a new `requeues` count,
/// so a copy that was only held up is dropped when it comes (no delivery gets two schedules), and
/// its `next_attempt_at` becomes now, so it is queued again only if this copy is lost as well.
/// Replicas share the work: a row one of them is re-queueing is skipped by the others.
pub async fn requeue_overdue(state: State, after: Duration, stop: CancellationToken) {
    let every = (after / 5).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match requeue_batch(&state, after).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("clokio_webhook_requeued_total").increment(n as u64);
                tracing::warn!(deliveries = n, "overdue deliveries queued again");
            }
            Err(err) => tracing::warn!(%err, "could not queue overdue deliveries again"),
        }
    }
}

/// One round of [`requeue_overdue`]: how many deliveries it queued again.
async fn requeue_batch(state: &State, after: Duration) -> Result<usize, BusError> {
    let overdue: Vec<(Uuid, i32)> = sqlx::query_as(
        "UPDATE deliveries SET requeues = requeues + 1, next_attempt_at = now() \
         WHERE id IN (SELECT id FROM deliveries \
            WHERE status = 'pending' \
              AND COALESCE(next_attempt_at, created_at) < now() - make_interval(secs => $1) \
            ORDER BY COALESCE(next_attempt_at, created_at) LIMIT 1000 \
            FOR UPDATE SKIP LOCKED) \
         RETURNING id, requeues",
    )
    .bind(after.as_secs_f64())
    .fetch_all(&state.pool)
    .await
    .map_err(db::err)?;
    let n = overdue.len();
    let queued = overdue
        .into_iter()
        .map(|(id, requeue)| enqueue(state, id, Trigger::Scheduled { requeue }));
    // One that fails to publish is overdue again after `after`, and queued again then.
    for result in futures::future::join_all(queued).await {
        result?;
    }
    Ok(n)
}

/// Deletes deliveries older than the retention, now and then.
pub async fn sweep(pool: sqlx::PgPool, days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(err) = sqlx::query(
            "DELETE FROM deliveries WHERE created_at < now() - make_interval(days => $1)",
        )
        .bind(days as i32)
        .execute(&pool)
        .await
        {
            tracing::warn!(%err, "could not sweep old deliveries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_asked_twice_in_one_batch_gets_its_row_twice() {
        let (a, b, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let found = HashMap::from([(a, "a"), (b, "b")]);
        assert_eq!(
            hand_out(&[a, gone, a, b], found),
            [Some("a"), None, Some("a"), Some("b")]
        );
    }

    #[test]
    fn a_delivery_is_attempted_once_at_a_time() {
        let in_flight = InFlight::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = in_flight.claim(a).expect("free");
        assert!(in_flight.claim(a).is_none(), "a second attempt waits");
        let other = in_flight.claim(b).expect("another delivery goes on");
        drop(first);
        assert!(in_flight.claim(a).is_some(), "free once the first is done");
        drop(other);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 29 Nov 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Sun, 29 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn the_logged_body_is_storable_text_of_at_most_4_kib() {
        assert_eq!(logged_body(b"ok\0\xff"), "ok\u{FFFD}\u{FFFD}");
        let long = "é".repeat(3000);
        let cut = logged_body(long.as_bytes());
        assert_eq!(cut.len(), 4096);
        assert!(cut.chars().all(|c| c == 'é'));
        let odd = format!("a{long}");
        assert_eq!(logged_body(odd.as_bytes()).len(), 4095);
    }
}
