//! The intake: attendance events in, one delivery per matching subscription, and each delivery's
//! first attempt, made here (the delivery stored with its record) or put on the work queue.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
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
use super::store::{Due, delivery_id};
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

/// A delivery whose first attempt is made at intake (stored, or to be stored with its record),
/// with the slots it holds for its request: one of its subscription's cap and one of the
/// replica's.
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
                // An event taken for the first time has no stored deliveries yet.
                let fresh = msg.info().is_ok_and(|info| info.delivered == 1);
                match take(&state, &msg.payload, fresh).await {
                    Ok(firsts) if firsts.is_empty() => {
                        let _ = msg.ack().await;
                    }
                    // The event is acknowledged once its first attempts are recorded: a replica
                    // killed meanwhile leaves it to be taken again, and its deliveries without a
                    // recorded attempt are stored and attempted then. The intake goes on
                    // meanwhile.
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
/// it until it is due; so does one whose attempt could not be made or recorded (retried there),
/// stored first if it was not.
async fn attempt_first(state: &State, first: First) -> Result<(), BusError> {
    let span = tracing::info_span!("deliver webhook", otel.kind = "internal");
    let First { id, due, slots } = first;
    let made = match state.in_flight.claim(id) {
        Some(_attempting) => {
            let made = make(state, id, Trigger::FIRST, &due, slots.into());
            Some(made.instrument(span).await)
        }
        // Being attempted here already (its queued copy, say): the queue decides.
        None => None,
    };
    match made {
        Some(Ok(None)) => return Ok(()),
        // To be attempted again: stored with its record.
        Some(Ok(Some(_))) => {}
        unrecorded => {
            if let Some(Err(err)) = unrecorded {
                let err = BusError::from(err);
                tracing::warn!(%err, delivery = %id, "first attempt not made or recorded; queued");
            }
            due.store(&state.pool, id)
                .await
                .map_err(clokio_runtime::db::bus_error)?;
        }
    }
    enqueue(state, id, Trigger::FIRST).await
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

/// Matches one event against its org's subscriptions. The deliveries whose first attempts are
/// made here are handed back; the others are stored and queued. An event taken for the first
/// time (`fresh`) and recent ([`FRESH_FOR`]) has none stored, so those attempted here are stored
/// with their record ([`Due::unstored`]); one taken again (a replica died with it, or its
/// acknowledgement was lost), or an older one, stores its deliveries first and attempts only
/// those not attempted yet.
async fn take(state: &State, payload: &[u8], fresh: bool) -> db::Result<Vec<First>> {
    let Ok(event) = serde_json::from_slice::<Event<AttendanceEvent>>(payload) else {
        tracing::error!("unreadable attendance event skipped");
        return Ok(Vec::new());
    };
    if event.data.imported {
        return Ok(Vec::new());
    }
    // Only a recent event can be new: an older one may be one delivered before, taken again from
    // the stream (a consumer created anew starts from the stream's beginning) or published again
    // after the stream's 2-minute duplicate window. Its deliveries are stored first, which finds
    // those made already.
    let fresh = fresh && Utc::now().signed_duration_since(event.occurred_at) < FRESH_FOR;
    let subs = state.active(event.org_id).await?;
    let wanted = |sub: &SubRow| sub.events.contains(&event.data.event);
    if !subs.iter().any(wanted) {
        return Ok(Vec::new());
    }
    let tz = state.directory.org(event.org_id).await?.org.timezone;
    let matched: Vec<&SubRow> = subs
        .iter()
        .filter(|sub| wanted(sub) && sub.filters.0.matches(&event.data, tz))
        .collect();
    let deadline = tokio::time::Instant::now() + FIRST_WAIT;
    let here = matched
        .iter()
        .filter(|sub| fresh && may_attempt(state, sub))
        .count();
    let mut budget = replica_slots(state, here, deadline).await;
    let mut firsts = Vec::new();
    let (mut to_store, mut ids, mut subs_of, mut bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for sub in matched {
        let id = delivery_id(sub.id, event.id.as_uuid());
        let body = render::body(sub.platform(), sub.template.as_deref(), &event, tz);
        if fresh && let Some(slots) = first(state, sub, &mut budget, deadline).await {
            attempted_at("intake");
            let due = Due::unstored(
                sub.clone(),
                body,
                event.id.as_uuid(),
                event.data.event.clone(),
            );
            firsts.push(First { id, due, slots });
            continue;
        }
        to_store.push(sub);
        ids.push(id);
        subs_of.push(sub.id);
        bodies.push(body);
    }
    drop(budget);
    if subs_of.is_empty() {
        return Ok(firsts);
    }
    // One statement for the rest of the event's deliveries; a redelivered event finds them
    // stored. What it finds is attempted (or queued) again only if no scheduled attempt was made
    // yet (its first one may have been cut short): the schedule of one attempted lives in
    // JetStream, and queueing it again after the queue's duplicate window (an event published
    // again after a long outage) would give the delivery a second schedule.
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
    // A fresh event's stored deliveries were not to be attempted here, or found no slot.
    let unattempted: Vec<(Stored, Option<&SubRow>)> = stored
        .into_iter()
        .filter(|row| row.status == "pending" && row.scheduled_attempts == 0)
        .map(|row| {
            let sub = to_store.iter().find(|s| s.id == row.subscription_id);
            let here = sub.filter(|sub| !fresh && row.requeues == 0 && may_attempt(state, sub));
            (row, here.copied())
        })
        .collect();
    let here = unattempted.iter().filter(|(_, sub)| sub.is_some()).count();
    let mut budget = replica_slots(state, here, deadline).await;
    let mut queued = Vec::new();
    for (row, sub) in unattempted {
        let slots = match sub {
            Some(sub) => first(state, sub, &mut budget, deadline).await,
            None => None,
        };
        match (sub, slots) {
            (Some(sub), Some(slots)) => {
                attempted_at("intake");
                firsts.push(First {
                    id: row.id,
                    due: Due {
                        body: row.body,
                        status: row.status,
                        scheduled_attempts: 0,
                        requeues: 0,
                        next_attempt_at: None,
                        sub: (*sub).clone(),
                        unstored: None,
                    },
                    slots,
                });
            }
            _ => {
                attempted_at("queue");
                queued.push(enqueue(state, row.id, Trigger::FIRST));
            }
        }
    }
    for result in futures::future::join_all(queued).await {
        result?;
    }
    Ok(firsts)
}

/// How old an event taken for the first time may be for its deliveries to be attempted before
/// they are stored: well within the events stream's duplicate window (2 minutes), well beyond
/// the time an event takes to get here.
const FRESH_FOR: chrono::Duration = chrono::Duration::seconds(10);

/// Counts where a delivery's first attempt is made.
fn attempted_at(at: &'static str) {
    metrics::counter!("clokio_webhook_first_attempts_total", "at" => at).increment(1);
}

/// How long the intake waits, for all of an event's deliveries together, for slots for first
/// attempts before queueing the rest. Slots are held by receivers that answer within a second
/// (the deliveries of one that did not lately go to the queue), so a wait for them is a wait for
/// this replica's own work: in a burst they free within milliseconds, and a first attempt made
/// here costs far less than one through the queue (meanwhile further events wait in their
/// stream). Once the wait is over, an event's deliveries take only slots free at once.
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// Whether a first attempt for `sub` may be made at intake: the subscription is healthy as far as
/// this replica knows (a failing one's attempts go through the queue, whose worker reads it
/// afresh) and its receiver has not been slow lately (its deliveries are not waited for here,
/// where they would hold up other orgs' events).
fn may_attempt(state: &State, sub: &SubRow) -> bool {
    sub.failing_since.is_none() && sub.active && !state.caps.slow(sub.id)
}

/// The replica's slots for up to `n` first attempts of one event, taken together (events each
/// holding some while waiting for more could hold every slot and wait for one another): all `n`
/// (at most the replica's `CLOKIO_WEBHOOK_WORKERS`) when they are free by `deadline`, else those
/// free then.
async fn replica_slots(
    state: &State,
    n: usize,
    deadline: tokio::time::Instant,
) -> Option<OwnedSemaphorePermit> {
    take_slots(&state.firsts.slots, state.config.workers, n, deadline).await
}

/// Up to `n` of the `capacity` permits of `slots`, as [`replica_slots`] takes them: more than
/// `capacity` are never waited for.
async fn take_slots(
    slots: &Arc<Semaphore>,
    capacity: usize,
    n: usize,
    deadline: tokio::time::Instant,
) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n.min(capacity)).ok().filter(|n| *n > 0)?;
    match tokio::time::timeout_at(deadline, slots.clone().acquire_many_owned(n)).await {
        Ok(held) => held.ok(),
        Err(_) => {
            let free = u32::try_from(slots.available_permits()).ok()?.min(n);
            slots
                .clone()
                .try_acquire_many_owned(free)
                .ok()
                .filter(|_| free > 0)
        }
    }
}

/// The slots for a first attempt at intake for `sub`, when it may be made there
/// ([`may_attempt`]): one of the event's `budget` of the replica's slots ([`replica_slots`]), and one of the
/// subscription's cap, free by `deadline`. Otherwise the queue takes the delivery.
async fn first(
    state: &State,
    sub: &SubRow,
    budget: &mut Option<OwnedSemaphorePermit>,
    deadline: tokio::time::Instant,
) -> Option<[OwnedSemaphorePermit; 2]> {
    if !may_attempt(state, sub) || budget.as_ref()?.num_permits() == 0 {
        return None;
    }
    let cap = state.caps.of(sub.id, state.config.per_subscription);
    // Polled once even after the deadline: a free slot is still taken.
    let slot = tokio::time::timeout_at(deadline, cap.acquire_owned())
        .await
        .ok()?
        .ok()?;
    Some([slot, budget.as_mut()?.split(1)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event with more deliveries than the replica has slots takes them all at once, rather
    /// than wait until its deadline for slots that do not exist.
    #[tokio::test]
    async fn an_event_never_waits_for_more_slots_than_there_are() {
        let slots = Arc::new(Semaphore::new(2));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let held =
            tokio::time::timeout(Duration::from_secs(10), take_slots(&slots, 2, 3, deadline))
                .await
                .expect("taken without waiting for the deadline");
        assert_eq!(held.as_ref().map(|h| h.num_permits()), Some(2));
        assert_eq!(slots.available_permits(), 0);
    }

    /// Slots held elsewhere are waited for until the deadline; then those free are taken.
    #[tokio::test]
    async fn after_the_deadline_an_event_takes_the_slots_free() {
        let slots = Arc::new(Semaphore::new(3));
        let _elsewhere = slots.clone().acquire_owned().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let held = take_slots(&slots, 3, 3, deadline).await;
        assert_eq!(held.as_ref().map(|h| h.num_permits()), Some(2));
        assert!(
            take_slots(&slots, 3, 1, tokio::time::Instant::now())
                .await
                .is_none()
        );
    }
}
