//! Events: one envelope for every domain event, stored in one JetStream stream per prefix
//! (`<PREFIX>-EVENTS`, subjects `<prefix>.events.>`). The event id is the `Nats-Msg-Id`, so a
//! relay that publishes twice stores once; consumers are idempotent on it.

use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, EventId, OrgId};
use crate::key::KeyHash;
use crate::subject::Subjects;

/// Domain and event tokens of the event subjects.
pub mod kind {
    pub const EMPLOYEE: &str = "employee";
    pub const APIKEY: &str = "apikey";
    pub const ORGANIZATION: &str = "organization";

    pub const CREATED: &str = "created";
    pub const UPDATED: &str = "updated";
    pub const STATUS_CHANGED: &str = "status_changed";
    pub const REVOKED: &str = "revoked";

    pub const ATTENDANCE: &str = "attendance";
    pub const LEAVE: &str = "leave";

    pub const CLOCK_IN: &str = "clock-in";
    pub const CLOCK_OUT: &str = "clock-out";
    pub const BREAK_START: &str = "break-start";
    pub const BREAK_END: &str = "break-end";
    pub const DELETED: &str = "deleted";
    /// `attendance.corrected`: a session was created, changed or deleted by a correction.
    pub const CORRECTED: &str = "corrected";
    /// The webhook and stream name of `attendance.corrected`.
    pub const CORRECTION: &str = "correction";

    pub const PERIOD: &str = "period";
    pub const CLOSED: &str = "closed";
    pub const REOPENED: &str = "reopened";
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<T> {
    pub id: EventId,
    pub org_id: OrgId,
    pub occurred_at: DateTime<Utc>,
    /// `<domain>.<event>`, e.g. `employee.created`.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: T,
}

/// Data of `apikey.revoked`: enough for a gateway to drop its cached entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub key_id: ApiKeyId,
    pub key_hash: KeyHash,
}

/// Creates the events stream if it is missing (every publishing service calls this at start),
/// with `replicas` copies (3 on a production NATS cluster).
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    ensure_stream(
        js,
        jetstream::stream::Config {
            name: subjects.events_stream(),
            subjects: vec![subjects.events_wildcard()],
            storage: jetstream::stream::StorageType::File,
            retention: jetstream::stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
}

/// How long one pull request of [`messages`] waits on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often the server shows, while a pull request waits, that it still holds it.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);

/// A pull consumer's messages, with a heartbeat every second while the pull request waits. In a
/// NATS cluster the node leading a consumer can die while the client's own node lives: the client
/// keeps its connection, so nothing tells it the pull request died with that node, and it would
/// wait for messages that never come. The missing heartbeats end the stream within 2 s instead
/// (async-nats's default, 15 s heartbeats, took 30 s), and the caller pulls again from the
/// consumer's new leader. Idle, this costs one small message a second and a pull every 5 s.
/// `batch` bounds what one pull asks for, so what waits in the client's hands.
pub async fn messages(
    consumer: &jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    batch: usize,
) -> Result<jetstream::consumer::pull::Stream, jetstream::consumer::StreamError> {
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
}

/// Creates a stream if it is missing; an existing one keeps its settings except its replica
/// count, which follows `config` (so raising `CLOKIO_STREAM_REPLICAS` on a grown cluster takes
/// effect at the next start).
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: jetstream::stream::Config,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    let replicas = config.num_replicas;
    let mut stream = js.get_or_create_stream(config).await?;
    let current = stream.info().await?.config.clone();
    if current.num_replicas != replicas {
        tracing::info!(
            stream = %current.name,
            from = current.num_replicas,
            to = replicas,
            "changing the stream's replicas"
        );
        let name = current.name.clone();
        js.update_stream(jetstream::stream::Config {
            num_replicas: replicas,
            ..current
        })
        .await?;
        stream = js.get_stream(name).await?;
    }
    Ok(stream)
}
