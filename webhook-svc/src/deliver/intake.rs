//! The intake: attendance events in, one stored delivery per matching subscription, and each
//! delivery's first attempt, made here or put on the work queue.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use clokio_bus::BusError;
use clokio_bus::events::Event;
use clokio_bus::ops::AttendanceEvent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::render;
use crate::subs::SubRow;
use crate::{State, db};

use super::consume::{consume, keeping_alive};
use super::store::Due;
use super::worker::make;
use super::{EVENT_ACK_WAIT, Trigger, enqueue};

/// The first attempts made at intake: at most `CLOKIO_WEBHOOK_WORKERS` at once on a replica (the
/// work queue's workers have as many of their own), each tracked so that a stopping replica
/// finishes them.
#[derive(Clone)]
pub struct Firsts {
    slots: Arc<Semaphore>,
    /// Events whose first attempts are under way (not yet acknowledged): at most as many as
    /// slots, so a burst waits in its stream rather than in this replica's memory.
    events: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Firsts {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            events: Arc::new(Semaphore::new(slots)),
            tasks: TaskTracker::new(),
        }
    }
}

/// A stored delivery whose first attempt is made at intake, with the slots it holds for its
/// request: one of its subscription's cap and one of the replica's.
struct First {
    id: Uuid,
    due: Due,
    slots: [OwnedSemaphorePermit; 2],
}

pub async fn run_intake(
    state: State,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    stop: CancellationToken,
) {
    let firsts = state.firsts.tasks.clone();
    // Events are independent of each other: take up to 64 at once.
    consume(
        &consumer,
        64,
        &stop,
        "intake",
        |msg| {
            tracing::info_span!(
                "take event",
                otel.kind = "consumer",
                subject = %msg.subject,
                trace_id = tracing::field::Empty,
            )
        },
        move |msg| {
            let state = state.clone();
            async move {
                let room = state.firsts.events.clone().acquire_owned();
                let Ok(held) = keeping_alive(&msg, EVENT_ACK_WAIT / 3, room).await else {
                    return;
                };
                match take(&state, &msg.payload).await {
                    Ok(firsts) if firsts.is_empty() => {
                        let _ = msg.ack().await;
                    }
                    // The event is acknowledged once its first attempts are recorded: a replica
                    // killed meanwhile leaves it to be taken again, and its deliveries, stored
                    // but not attempted, are attempted then. The intake goes on meanwhile.
                    Ok(firsts) => {
                        let attempts = attempt_firsts(state.clone(), msg, firsts, held);
                        state.firsts.tasks.spawn(attempts.in_current_span());
                    }
                    Err(err) => {
                        let err = clokio_bus::BusError::from(err);
                        tracing::warn!(%err, "event not taken; redelivered in 1 s");
                        let _ = msg
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                    }
                }
            }
        },
    )
    .await;
    firsts.close();
    firsts.wait().await;
}

/// Makes an event's first attempts, keeping its message alive meanwhile, then acknowledges it;
/// NAKs it if a delivery to be attempted again could not be queued.
async fn attempt_firsts(
    state: State,
    msg: jetstream::Message,
    firsts: Vec<First>,
    _held: OwnedSemaphorePermit,
) {
    let attempts = futures::future::join_all(firsts.into_iter().map(|f| attempt_first(&state, f)));
    let results = keeping_alive(&msg, EVENT_ACK_WAIT / 3, attempts).await;
    if results.iter().all(Result::is_ok) {
        let _ = msg.ack().await;
    } else {
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
    }
}

/// One first attempt. A delivery to be attempted again goes on the work queue, whose worker holds
/// it until it is due; so does one whose attempt could not be made or recorded (retried there).
async fn attempt_first(state: &State, first: First) -> Result<(), BusError> {
    let span = tracing::info_span!("deliver webhook", otel.kind = "internal");
    let made = async {
        // Being attempted here already (its queued copy, say): the queue decides.
        let Some(_attempting) = state.in_flight.claim(first.id) else {
            return Ok(Some(Duration::ZERO));
        };
        make(
            state,
            first.id,
            Trigger::FIRST,
            &first.due,
            first.slots.into(),
        )
        .await
    }
    .instrument(span)
    .await;
    match made {
        Ok(None) => Ok(()),
        Ok(Some(_)) => enqueue(state, first.id, Trigger::FIRST).await,
        Err(err) => {
            let err = BusError::from(err);
            tracing::warn!(%err, delivery = %first.id, "first attempt not made or recorded; queued");
            enqueue(state, first.id, Trigger::FIRST).await
        }
    }
}

/// A stored delivery, as the intake's insert finds it.
#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    subscription_id: Uuid,
    body: Vec<u8>,
    status: String,
    scheduled_attempts: i32,
    requeues: i32,
}

/// Stores the deliveries of one event and queues their first attempts, or hands them back to be
/// made here.
async fn take(state: &State, payload: &[u8]) -> db::Result<Vec<First>> {
    let Ok(event) = serde_json::from_slice::<Event<AttendanceEvent>>(payload) else {
        tracing::error!("unreadable attendance event skipped");
        return Ok(Vec::new());
    };
    if event.data.imported {
        return Ok(Vec::new());
    }
    let subs = state.active(event.org_id).await?;
    let wanted: Vec<&SubRow> = subs
        .iter()
        .filter(|s| s.events.contains(&event.data.event))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let tz = state.directory.org(event.org_id).await?.org.timezone;
    let (mut matched, mut subs_of, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for sub in wanted {
        if sub.filters.0.matches(&event.data, tz) {
            matched.push(sub);
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
        return Ok(Vec::new());
    }
    // One statement for all of the event's deliveries; a redelivered event finds them stored.
    // What it finds is attempted (or queued) again only if no scheduled attempt was made yet (its
    // first one may have been cut short): the schedule of one attempted lives in JetStream, and
    // queueing it again after the queue's duplicate window (an event published again after a
    // long outage) would give the delivery a second schedule.
    let ids: Vec<Uuid> = (0..subs_of.len()).map(|_| Uuid::new_v4()).collect();
    let stored: Vec<Stored> = sqlx::query_as(
        "INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_type, body) \
         SELECT d.id, $2, d.sub, $3, $4, d.body FROM unnest($1::uuid[], $5::uuid[], $6::bytea[]) \
            AS d(id, sub, body) \
         ON CONFLICT (subscription_id, event_id) DO UPDATE SET event_type = deliveries.event_type \
         RETURNING id, subscription_id, body, status, scheduled_attempts, requeues",
    )
    .bind(&ids)
    .bind(event.org_id.as_uuid())
    .bind(event.id.as_uuid())
    .bind(&event.data.event)
    .bind(&subs_of)
    .bind(&bodies)
    .fetch_all(&state.pool)
    .await?;
    let mut firsts = Vec::new();
    let mut queued = Vec::new();
    let deadline = tokio::time::Instant::now() + FIRST_WAIT;
    for row in stored {
        if row.status != "pending" || row.scheduled_attempts != 0 {
            continue;
        }
        let sub = matched.iter().find(|s| s.id == row.subscription_id);
        let slots = match sub.filter(|_| row.requeues == 0) {
            Some(sub) => first(state, sub, deadline).await,
            None => None,
        };
        match (sub, slots) {
            (Some(sub), Some(slots)) => {
                metrics::counter!("clokio_webhook_first_attempts_total", "at" => "intake")
                    .increment(1);
                firsts.push(First {
                    id: row.id,
                    due: Due {
                        body: row.body,
                        status: row.status,
                        scheduled_attempts: 0,
                        requeues: 0,
                        next_attempt_at: None,
                        sub: (*sub).clone(),
                    },
                    slots,
                });
            }
            _ => {
                metrics::counter!("clokio_webhook_first_attempts_total", "at" => "queue")
                    .increment(1);
                queued.push(enqueue(state, row.id, Trigger::FIRST));
            }
        }
    }
    for result in futures::future::join_all(queued).await {
        result?;
    }
    Ok(firsts)
}

/// How long the intake waits, for all of an event's deliveries together, for the replica's slots
/// for first attempts before queueing the rest: in a burst, attempts free slots within
/// milliseconds, and a first attempt made here costs far less than one through the queue
/// (meanwhile further events wait in their stream). Once the wait is over, an event's deliveries
/// take only slots free at once, so slots held by slow receivers cost each event this much at most.
const FIRST_WAIT: Duration = Duration::from_millis(50);

/// The slots for a first attempt at intake for `sub`, when it may be made there: the subscription
/// is healthy as far as this replica knows (a failing one's attempts go through the queue, whose
/// worker reads it afresh), one of the replica's slots is free by `deadline`, and a slot of the
/// subscription's cap is free at once (a slow receiver's deliveries are not waited for here,
/// where they would hold up other orgs' events). Otherwise the queue takes the delivery.
async fn first(
    state: &State,
    sub: &SubRow,
    deadline: tokio::time::Instant,
) -> Option<[OwnedSemaphorePermit; 2]> {
    if sub.failing_since.is_some() || !sub.active {
        return None;
    }
    let budget = state.firsts.slots.clone();
    // Polled once even after the deadline: a free slot is still taken.
    let budget = tokio::time::timeout_at(deadline, budget.acquire_owned())
        .await
        .ok()?
        .ok()?;
    let slot = state
        .caps
        .of(sub.id, state.config.per_subscription)
        .try_acquire_owned()
        .ok()?;
    Some([slot, budget])
}
