//! From events to HTTP requests. No retry lives in memory: JetStream holds it.
//!
//! - **Intake**: the durable consumer `webhook-intake` on `<prefix>.events.attendance.>` matches
//!   each event against the org's active subscriptions. Each delivery's first attempt is made
//!   right there when its subscription is healthy, its receiver was not slow lately and a slot of
//!   its cap and one of the replica's free within 500 ms (`intake.rs`); such a delivery of a recent
//!   event taken for the first time is stored with its attempt's record. The others are stored (unique
//!   per subscription and event, so a redelivered event stores nothing twice) and queued. The
//!   event is acknowledged when its first attempts are recorded (a replica killed meanwhile leaves
//!   the event to be taken again). A delivery to be attempted again, or not attempted here, goes
//!   to the work-queue stream `<PREFIX>-WEBHOOK-DELIVERIES` (the delivery id is the
//!   `Nats-Msg-Id`). Imported history is not announced.
//! - **Workers**: the durable consumer `webhook-workers` on that stream, shared by every replica.
//!   Each message is one attempt: POST with a 15 s timeout and no redirects; 2xx acknowledges it;
//!   a failure is NAKed with the next delay of the schedule (± 20 % jitter, at least the
//!   receiver's `Retry-After` on 429/503), so JetStream holds it until then; after the last
//!   attempt the delivery is `failed`. A message that arrives before its delivery's retry is due
//!   (a first attempt failed at intake) is NAKed until then. 410 switches the subscription off,
//!   and so does failing for 5 days. A per-subscription cap keeps one slow receiver from taking
//!   every worker.

mod consume;
mod http;
mod intake;
mod store;
mod sweep;
mod worker;

pub use intake::{Firsts, run_intake};
pub(crate) use store::Batched;
pub use sweep::{requeue_overdue, sweep};
pub use worker::{Caps, InFlight, run_workers};

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use clokio_bus::BusError;
use uuid::Uuid;

use crate::State;

pub const INTAKE: &str = "webhook-intake";
pub const WORKERS: &str = "webhook-workers";
/// How long the intake consumer waits for an event's acknowledgement before handing it out again.
const EVENT_ACK_WAIT: Duration = Duration::from_secs(5);
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
    // one is a lookup and one insert (its first attempts keep it alive while they run).
    let intake = events
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(INTAKE.to_owned()),
            filter_subject: state.subjects.event_all_orgs("attendance", ">"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: EVENT_ACK_WAIT,
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
