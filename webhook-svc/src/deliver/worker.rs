//! The workers: one attempt per work-queue message, and what it comes to.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use clokio_bus::BusError;
use clokio_bus::ids::OrgId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{State, db};

use super::Trigger;
use super::consume::{consume, keeping_alive};
use super::http::{Outcome, post};
use super::store::{Due, Success};

/// How early a retry may be attempted: the replicas' clocks differ by about this much.
const EARLY_SLACK: Duration = Duration::from_millis(50);

/// A subscription failing for this long without a success is switched off.
const DISABLE_AFTER: chrono::Duration = chrono::Duration::days(5);

/// Per-subscription in-flight attempts on this replica, and which subscriptions' receivers were
/// slow of late.
#[derive(Default)]
pub struct Caps {
    slots: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    /// When each slow receiver last kept an attempt waiting past [`SLOW_AFTER`].
    slow: Mutex<HashMap<Uuid, Instant>>,
}

/// An attempt still unanswered after this long marks its receiver slow.
const SLOW_AFTER: Duration = Duration::from_secs(1);
/// How long a receiver counts as slow after an attempt was.
const SLOW_FOR: Duration = Duration::from_secs(60);

impl Caps {
    pub(super) fn of(&self, sub: Uuid, cap: usize) -> Arc<Semaphore> {
        let mut map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| s.available_permits() < cap);
        }
        map.entry(sub)
            .or_insert_with(|| Arc::new(Semaphore::new(cap)))
            .clone()
    }

    /// Whether `sub`'s receiver kept an attempt waiting past [`SLOW_AFTER`] within [`SLOW_FOR`].
    pub(super) fn slow(&self, sub: Uuid) -> bool {
        let slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        slow.get(&sub).is_some_and(|at| at.elapsed() < SLOW_FOR)
    }

    fn mark_slow(&self, sub: Uuid) {
        let mut slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        if slow.len() > 10_000 {
            slow.retain(|_, at| at.elapsed() < SLOW_FOR);
        }
        slow.insert(sub, Instant::now());
    }
}

/// The deliveries being attempted on this replica.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<Uuid>>);

/// A delivery held by [`InFlight::claim`] until dropped.
pub struct Attempting<'a>(&'a InFlight, Uuid);

impl InFlight {
    /// Holds `id` for one attempt: `None` when it is being attempted already.
    pub(super) fn claim(&self, id: Uuid) -> Option<Attempting<'_>> {
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

/// Attempts the work queue's deliveries, `CLOKIO_WEBHOOK_WORKERS` at once, until `stop`; then
/// finishes and records the attempts under way, so none is sent again by another replica.
pub async fn run_workers(
    state: State,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    stop: CancellationToken,
) {
    let workers = state.config.workers;
    consume(
        &consumer,
        workers,
        &stop,
        "delivery",
        |_| {
            tracing::info_span!(
                "deliver webhook",
                otel.kind = "consumer",
                trace_id = tracing::field::Empty
            )
        },
        move |msg| {
            let state = state.clone();
            async move { attempt(&state, msg).await }
        },
    )
    .await;
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
    // A slow receiver keeps the message alive.
    let every = state.config.ack_wait / 3;
    match keeping_alive(&msg, every, try_attempt(state, &msg, id, trigger)).await {
        Ok(Some(delay)) => {
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
        }
        Ok(None) => {
            let _ = msg.ack().await;
        }
        Err(err) => {
            // As the bus would answer it: a database error no one expected is logged as an error.
            let err = BusError::from(err);
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
) -> db::Result<Option<Duration>> {
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
    // A retry is not attempted before it is due. The retry of a first attempt that failed at
    // intake comes here at once and goes back to wait; so does a copy handed out again while the
    // first waited past its ack wait, once the first has failed. (The slack allows for the
    // replicas' clocks; a copy of a replica whose clock is behind waits that much longer.)
    let early = due
        .next_attempt_at
        .and_then(|at| (at - Utc::now()).to_std().ok());
    if !manual && let Some(early) = early.filter(|e| *e > EARLY_SLACK) {
        if msg.info().is_ok_and(|info| info.delivered > 1) {
            metrics::counter!("clokio_webhook_early_copies_total").increment(1);
        }
        return Ok(Some(early));
    }
    if !manual && !sub.active {
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&state.pool)
        .await?;
        return Ok(None);
    }
    let cap = state.caps.of(sub.id, state.config.per_subscription);
    // This receiver has enough in flight here: wait a moment, then let others go first.
    let Ok(Ok(slot)) = tokio::time::timeout(Duration::from_millis(100), cap.acquire_owned()).await
    else {
        return Ok(Some(Duration::from_millis(250)));
    };
    make(state, id, trigger, &due, vec![slot]).await
}

/// Makes one attempt of a delivery found due and records it: Some(delay) when it should be
/// attempted again after that long. `slots` (of its subscription's cap, and the like) are held for
/// the request and released once it is answered, before the record waits for its batch.
pub(super) async fn make(
    state: &State,
    id: Uuid,
    trigger: Trigger,
    due: &Due,
    slots: Vec<OwnedSemaphorePermit>,
) -> db::Result<Option<Duration>> {
    let manual = trigger.manual();
    let sub = &due.sub;
    // A generic delivery is signed: while its webhook's secret does not open (the key changed, or
    // the value was damaged) it waits, retried every 5 s, until the secret is rotated.
    let signing = if sub.platform() == clokio_bus::ops::Platform::Generic {
        let Some(secrets) = sub.signing_secrets(Utc::now()) else {
            tracing::error!(subscription = %sub.id, delivery = %id,
                "the webhook's secret does not open with CLOKIO_WEBHOOK_SECRET_KEY; the delivery waits");
            return Err(BusError::internal().into());
        };
        Some(secrets)
    } else {
        None
    };
    // A receiver that keeps an attempt waiting is marked slow as soon as it does: the intake
    // then queues its deliveries rather than wait for its slots (`intake::may_attempt`).
    let posting = post(state, sub, id, &due.body, signing.as_deref());
    tokio::pin!(posting);
    let outcome = tokio::select! {
        // The timer first: an answer that came after it (both ready at once on a busy replica)
        // was slow all the same.
        biased;
        () = tokio::time::sleep(SLOW_AFTER) => {
            state.caps.mark_slow(sub.id);
            posting.await
        }
        outcome = &mut posting => outcome,
    };
    drop(slots);
    let now = Utc::now();
    // The schedule's position counts scheduled attempts only: a manual retry beside a waiting
    // delivery neither uses up its schedule nor clears when it is due.
    let attempts = due.scheduled_attempts as usize + 1;
    let ok = (200..300).contains(&outcome.status);
    let next = if manual {
        None
    } else {
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        next_delay(&state.config.schedule, attempts, &outcome, jitter)
    };
    let status = next_status(ok, next.is_some(), trigger, &due.status);
    let gone = outcome.status == 410;
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
                unstored: due.new_delivery(),
            })
            .await?;
        metrics::counter!("clokio_webhook_attempts_total", "outcome" => "success").increment(1);
        return Ok(next);
    }
    // Otherwise the attempt and the delivery's new state in one statement, with the
    // subscription's own changes in the same transaction (a delivery attempted before it was
    // stored is stored first, in it too).
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
    let mut tx = state.pool.begin().await?;
    due.store(&mut *tx, id).await?;
    record.execute(&mut *tx).await?;
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
        .await?;
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
                .await?;
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
        .await?;
    }
    tx.commit().await?;
    // Whether a subscription is failing decides where its first attempts are made (at intake
    // only while it is not), so every replica's cache learns when that starts or ends.
    let began_failing = !ok && sub.failing_since.is_none();
    let recovered = ok && sub.failing_since.is_some();
    if disable.is_some() || began_failing || recovered {
        state.changed(OrgId::from_uuid(sub.org_id)).await;
    }
    metrics::counter!("clokio_webhook_attempts_total",
        "outcome" => if ok { "success" } else { outcome.error.unwrap_or("http") })
    .increment(1);
    Ok(next)
}

/// When a scheduled attempt that came to `outcome` is tried again, after `attempts` scheduled
/// attempts in all: the schedule's next delay, scaled by `jitter` (0.8 to 1.2), and no sooner than
/// the receiver's `Retry-After` on 429 or 503. `None` once the delivery is done: a success, a 410,
/// or the schedule used up.
fn next_delay(
    schedule: &[Duration],
    attempts: usize,
    outcome: &Outcome,
    jitter: f64,
) -> Option<Duration> {
    let ok = (200..300).contains(&outcome.status);
    if ok || outcome.status == 410 {
        return None;
    }
    let delay = schedule.get(attempts)?.mul_f64(jitter);
    Some(match outcome.retry_after {
        Some(after) if matches!(outcome.status, 429 | 503) => delay.max(after),
        _ => delay,
    })
}

/// The delivery's status after an attempt (`ok` or not, with another scheduled attempt to come
/// or not), made by `trigger` while the delivery was `current`.
fn next_status(ok: bool, again: bool, trigger: Trigger, current: &str) -> &str {
    match (ok, again) {
        (true, _) => "succeeded",
        (false, true) => "pending",
        // A sample has no scheduled attempts to wait for.
        (false, false) if trigger == Trigger::Test => "failed",
        // A delivery retried by hand keeps its own state: a scheduled one still waiting stays
        // pending, a settled one stays as it was.
        (false, false) if trigger.manual() => current,
        (false, false) => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn answered(status: u16, retry_after: Option<Duration>) -> Outcome {
        Outcome {
            status,
            error: None,
            latency: Duration::ZERO,
            body: String::new(),
            retry_after,
        }
    }

    #[test]
    fn the_next_delay_follows_the_schedule_and_retry_after() {
        let schedule: Vec<Duration> = [0, 5, 300].map(Duration::from_secs).to_vec();
        let s = |n| Duration::from_secs(n);
        // After the first attempt fails, the second delay, scaled by the jitter.
        assert_eq!(
            next_delay(&schedule, 1, &answered(500, None), 1.0),
            Some(s(5))
        );
        assert_eq!(
            next_delay(&schedule, 1, &answered(500, None), 1.2),
            Some(s(6))
        );
        assert_eq!(
            next_delay(&schedule, 2, &answered(0, None), 0.8),
            Some(s(240))
        );
        // Retry-After counts on 429 and 503 only, and only when it is longer.
        assert_eq!(
            next_delay(&schedule, 1, &answered(429, Some(s(60))), 1.0),
            Some(s(60))
        );
        assert_eq!(
            next_delay(&schedule, 1, &answered(503, Some(s(1))), 1.0),
            Some(s(5))
        );
        assert_eq!(
            next_delay(&schedule, 1, &answered(500, Some(s(60))), 1.0),
            Some(s(5))
        );
        // Done: a success, a 410, or the schedule used up.
        assert_eq!(next_delay(&schedule, 1, &answered(204, None), 1.0), None);
        assert_eq!(next_delay(&schedule, 1, &answered(410, None), 1.0), None);
        assert_eq!(next_delay(&schedule, 3, &answered(500, None), 1.0), None);
    }

    #[test]
    fn the_next_status_keeps_a_manual_retry_off_the_schedule() {
        let scheduled = Trigger::FIRST;
        assert_eq!(next_status(true, false, scheduled, "pending"), "succeeded");
        assert_eq!(next_status(false, true, scheduled, "pending"), "pending");
        assert_eq!(next_status(false, false, scheduled, "pending"), "failed");
        assert_eq!(
            next_status(false, false, Trigger::Test, "pending"),
            "failed"
        );
        // A manual retry that fails leaves the delivery as it was: still waiting, or settled.
        assert_eq!(
            next_status(false, false, Trigger::Manual, "pending"),
            "pending"
        );
        assert_eq!(
            next_status(false, false, Trigger::Manual, "failed"),
            "failed"
        );
        assert_eq!(
            next_status(false, false, Trigger::Manual, "succeeded"),
            "succeeded"
        );
        assert_eq!(
            next_status(true, false, Trigger::Manual, "failed"),
            "succeeded"
        );
    }
}
