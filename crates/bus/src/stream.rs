//! Streamed replies, for results that should never be whole in memory on either side (a CSV
//! export of a 10,000-employee org). The requester subscribes to an inbox of its own and names it
//! in the request; the service answers the request at once (or refuses it), then sends the result
//! to that inbox as a sequence of chunks, each a request the requester acknowledges when it has
//! taken the chunk. So the service never runs ahead of the requester by more than one chunk, and
//! a requester that goes away (no responders) stops the service.

use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::BusError;

/// Marks the last message of a stream (empty payload).
pub const END_HEADER: &str = "Clokio-Stream-End";

/// The service's side: sends chunks to the requester's inbox.
pub struct Sink {
    client: async_nats::Client,
    inbox: String,
    timeout: Duration,
}

impl Sink {
    pub fn new(client: async_nats::Client, inbox: String, timeout: Duration) -> Self {
        Self {
            client,
            inbox,
            timeout,
        }
    }

    async fn send_with(&self, headers: Option<HeaderMap>, chunk: Bytes) -> Result<(), BusError> {
        let mut request = async_nats::Request::new()
            .payload(chunk)
            .timeout(Some(self.timeout));
        if let Some(headers) = headers {
            request = request.headers(headers);
        }
        self.client
            .send_request(self.inbox.clone(), request)
            .await
            .map(|_| ())
            .map_err(|err| match err.kind() {
                RequestErrorKind::TimedOut => BusError::timeout(),
                _ => BusError::unavailable(),
            })
    }

    /// Sends one chunk and waits until the requester took it.
    pub async fn send(&self, chunk: Bytes) -> Result<(), BusError> {
        self.send_with(None, chunk).await
    }

    /// Ends the stream.
    pub async fn end(self) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        headers.insert(END_HEADER, "1");
        self.send_with(Some(headers), Bytes::new()).await
    }

    /// Ends the stream with an error (the requester's result is cut short).
    pub async fn fail(self, err: &BusError) {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_SERVICE_ERROR,
            crate::server::header_safe(&err.message).as_str(),
        );
        headers.insert(
            NATS_SERVICE_ERROR_CODE,
            err.code.status().to_string().as_str(),
        );
        let _ = self.send_with(Some(headers), Bytes::new()).await;
    }
}

/// The requester's side: an inbox to name in the request, subscribed before the request is sent.
pub async fn open(
    client: &async_nats::Client,
) -> Result<(String, async_nats::Subscriber), BusError> {
    let inbox = client.new_inbox();
    let sub = client.subscribe(inbox.clone()).await.map_err(|err| {
        tracing::warn!(%err, "could not subscribe for a stream");
        BusError::unavailable()
    })?;
    Ok((inbox, sub))
}

/// The chunks arriving on `sub`, each acknowledged as it is taken; ends after the end message,
/// with an error item if the service failed or went quiet for `timeout`.
pub fn chunks(
    client: async_nats::Client,
    sub: async_nats::Subscriber,
    timeout: Duration,
) -> impl Stream<Item = Result<Bytes, BusError>> + Send + 'static {
    futures::stream::unfold(Some((client, sub)), move |state| async move {
        let (client, mut sub) = state?;
        let msg = match tokio::time::timeout(timeout, sub.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Some((Err(BusError::unavailable()), None)),
            Err(_) => return Some((Err(BusError::timeout()), None)),
        };
        if let Some(reply) = msg.reply.clone() {
            // Taking the chunk is the acknowledgement: the service sends the next one.
            let _ = client.publish(reply, Bytes::new()).await;
        }
        if let Some(err) = crate::client::decode_error(msg.headers.as_ref()) {
            return Some((Err(err), None));
        }
        if msg
            .headers
            .as_ref()
            .is_some_and(|h| h.get(END_HEADER).is_some())
        {
            return None;
        }
        Some((Ok(msg.payload), Some((client, sub))))
    })
}

/// The monthly summary as CSV, streamed from reporting-svc: the chunks as they come, each
/// acknowledged as it is taken (an error item ends a download cut short, and is logged). The
/// gateway's `format=csv` and the console's "Export CSV" both serve this, so their bytes are the
/// same by construction.
pub async fn summary_csv(
    bus: &crate::Bus,
    org_id: crate::ids::OrgId,
    year: i32,
    month: u32,
    request_id: Option<&str>,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, BusError> {
    use crate::ops::{SummaryCsvOp, SummaryCsvRequest};
    let client = bus.client().clone();
    let (inbox, sub) = open(&client).await?;
    let req = SummaryCsvRequest {
        org_id,
        year,
        month,
        inbox,
    };
    bus.call_raw::<SummaryCsvOp>(&req, request_id).await?;
    let request_id = request_id.map(str::to_owned);
    Ok(chunks(client, sub, bus.timeout()).map(move |chunk| {
        chunk.map_err(|err| {
            // The status line is gone already: the download ends short, and says so here.
            tracing::warn!(request_id = request_id.as_deref().unwrap_or(""), %err, "CSV stream cut short");
            std::io::Error::other(err.message)
        })
    }))
}
