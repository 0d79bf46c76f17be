//! The one request helper every caller uses. It sends a typed request with a timeout and maps
//! the outcome: a reply, a service error from the micro error headers, 503 when nobody listens on
//! the subject, 504 when nobody answers in time. Replies too large for one message arrive in
//! chunks (see [`crate::chunk`]) and are joined here.

use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use serde::Serialize;

use crate::chunk;
use crate::error::{BusError, ErrorCode};
use crate::ops::Operation;
use crate::subject::Subjects;

/// Header carrying the HTTP request id across the bus, for log correlation.
pub const REQUEST_ID_HEADER: &str = "clokio-request-id";

/// A NATS client bound to one subject prefix and one request timeout.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
}

impl Bus {
    pub fn new(client: async_nats::Client, subjects: Subjects, timeout: Duration) -> Self {
        Self {
            client,
            subjects,
            timeout,
        }
    }

    /// The same bus with another request timeout (for operations known to take longer).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// How long a request waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `req` and decodes the reply.
    pub async fn call<O: Operation>(&self, req: &O::Request) -> Result<O::Reply, BusError> {
        let bytes = self.call_raw::<O>(req, None).await?;
        serde_json::from_slice(&bytes).map_err(|err| {
            tracing::error!(operation = O::NAME, %err, "undecodable reply");
            BusError::internal()
        })
    }

    /// Sends `req` and returns the reply's bytes (the JSON of `O::Reply`) without decoding them,
    /// so the gateway can splice them into its envelope.
    pub async fn call_raw<O: Operation>(
        &self,
        req: &O::Request,
        request_id: Option<&str>,
    ) -> Result<Bytes, BusError> {
        let subject = self.subjects.request(O::SERVICE, O::NAME);
        self.request_bytes(subject, encode(req)?, request_id).await
    }

    /// Sends raw bytes to a subject, with the same error mapping as [`Bus::call`].
    pub async fn request_bytes(
        &self,
        subject: String,
        payload: Bytes,
        request_id: Option<&str>,
    ) -> Result<Bytes, BusError> {
        let span = tracing::info_span!(
            "bus request",
            otel.kind = "client",
            messaging.destination.name = %subject,
        );
        let mut headers = HeaderMap::new();
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        crate::trace::inject(&span, &mut headers);
        tracing::Instrument::instrument(self.send(subject, payload, headers), span).await
    }

    async fn send(
        &self,
        subject: String,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<Bytes, BusError> {
        // A request too large for one message: send the first chunk and serve the rest until the
        // reply is in.
        let chunk_bytes = chunk::chunk_bytes(&self.client);
        let (payload, _serving) = if payload.len() > chunk_bytes {
            let inbox = self.client.new_inbox();
            let sub = self.client.subscribe(inbox.clone()).await.map_err(|err| {
                tracing::warn!(%err, "could not subscribe for request chunks");
                BusError::unavailable()
            })?;
            let count = payload.len().div_ceil(chunk_bytes);
            headers.insert(chunk::CHUNKS_HEADER, count.to_string().as_str());
            headers.insert(chunk::SUBJECT_HEADER, inbox.as_str());
            headers.insert(chunk::TOKEN_HEADER, "request");
            let first = payload.slice(..chunk_bytes);
            let serving = chunk::Serving::start(self.client.clone(), sub, payload, chunk_bytes);
            (first, Some(serving))
        } else {
            (payload, None)
        };
        let mut request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(self.timeout));
        if !headers.is_empty() {
            request = request.headers(headers);
        }
        let msg = match self.client.send_request(subject.clone(), request).await {
            Ok(msg) => msg,
            Err(err) => {
                return Err(match err.kind() {
                    RequestErrorKind::NoResponders => {
                        tracing::warn!(%subject, "no responders");
                        BusError::unavailable()
                    }
                    RequestErrorKind::TimedOut => {
                        tracing::warn!(%subject, "request timed out");
                        BusError::timeout()
                    }
                    _ => {
                        tracing::warn!(%subject, %err, "request failed");
                        BusError::unavailable()
                    }
                });
            }
        };
        if let Some(err) = decode_error(msg.headers.as_ref()) {
            return Err(err);
        }
        match chunk::chunked(msg.headers.as_ref(), chunk::MAX_CHUNKS)? {
            Some((count, chunk_subject, token)) => {
                chunk::pull(
                    &self.client,
                    msg.payload,
                    count,
                    &chunk_subject,
                    &token,
                    self.timeout,
                )
                .await
            }
            None => Ok(msg.payload),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, BusError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        tracing::error!(%err, "unencodable request");
        BusError::internal()
    })
}

/// Reads the micro error headers of a reply, if it is an error.
pub fn decode_error(headers: Option<&HeaderMap>) -> Option<BusError> {
    let headers = headers?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?;
    let status: u16 = code.as_str().parse().unwrap_or(500);
    let message = headers
        .get(NATS_SERVICE_ERROR)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| "Internal server error".to_owned());
    Some(BusError::new(ErrorCode::from_status(status), message))
}
