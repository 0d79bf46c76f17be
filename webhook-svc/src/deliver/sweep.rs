//! Background sweeps: overdue deliveries queued again, old ones deleted.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{State, db};

use super::{Trigger, enqueue};

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
            Err(err) => {
                let err = clokio_bus::BusError::from(err);
                tracing::warn!(%err, "could not queue overdue deliveries again");
            }
        }
    }
}

/// One round of [`requeue_overdue`]: how many deliveries it queued again.
async fn requeue_batch(state: &State, after: Duration) -> db::Result<usize> {
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
    .await?;
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
