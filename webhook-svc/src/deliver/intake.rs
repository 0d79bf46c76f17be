//! The intake: attendance events in, one stored delivery per matching subscription, queued.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use clokio_bus::events::Event;
use clokio_bus::ops::AttendanceEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::render;
use crate::subs::SubRow;
use crate::{State, db};

use super::consume::consume;
use super::{Trigger, enqueue};

pub async fn run_intake(
    state: State,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    stop: CancellationToken,
) {
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
                match take(&state, &msg.payload).await {
                    Ok(()) => {
                        let _ = msg.ack().await;
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
}

/// Stores and queues the deliveries of one event.
async fn take(state: &State, payload: &[u8]) -> db::Result<()> {
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
    .await?;
    let queued = stored
        .into_iter()
        .filter(|(_, unattempted)| *unattempted)
        .map(|(id, _)| enqueue(state, id, Trigger::FIRST));
    for result in futures::future::join_all(queued).await {
        result?;
    }
    Ok(())
}
