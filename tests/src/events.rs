//! Events read back from JetStream.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// One event read from the stack's events stream.
pub struct ReceivedEvent {
    pub subject: String,
    pub body: Value,
    /// The `Nats-Msg-Id` header (the de-duplication id).
    pub msg_id: String,
}

/// A consumer of the stack's events stream, from its beginning, on one filter subject.
pub struct Events(pub(crate) async_nats::jetstream::consumer::pull::Stream);

impl Events {
    /// The next event (acknowledged); panics after 5 s without one.
    pub async fn next(&mut self) -> ReceivedEvent {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
    }

    /// The next event (acknowledged), or `None` when none arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<ReceivedEvent> {
        let msg = tokio::time::timeout(wait, self.0.next())
            .await
            .ok()?
            .expect("consumer open")
            .expect("event readable");
        let _ = msg.ack().await;
        Some(ReceivedEvent {
            subject: msg.subject.to_string(),
            body: serde_json::from_slice(&msg.payload).expect("event is JSON"),
            msg_id: msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    /// True when no further event arrives within `wait`.
    pub async fn none_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.0.next()).await.is_err()
    }
}
