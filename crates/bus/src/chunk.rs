//! Messages larger than one NATS message (1 MiB by default), both ways.
//!
//! - Replies: the service answers with the first chunk and three headers, and the requester pulls
//!   the remaining chunks, one request each, from a subject only the answering replica listens on.
//! - Requests (a 5,000-record import): the requester sends the first chunk with the same headers
//!   and serves the rest on a subject of its own until the reply arrives; whichever replica took
//!   the request pulls them before handling it.
//!
//! Messages that fit one message are unchanged.

use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{BusError, ErrorCode};

/// Number of chunks in the whole reply (2 or more).
pub const CHUNKS_HEADER: &str = "Clokio-Chunks";
/// Where to pull the rest.
pub const SUBJECT_HEADER: &str = "Clokio-Chunk-Subject";
/// Which reply to pull.
pub const TOKEN_HEADER: &str = "Clokio-Chunk-Token";
/// Largest chunk (the server's max payload minus headroom, if that is smaller).
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Most chunks a requester accepts (256 MiB at the default chunk size).
pub const MAX_CHUNKS: usize = 512;
/// Most chunks a service accepts in one request (32 MiB at the default chunk size).
pub const MAX_REQUEST_CHUNKS: usize = 64;

/// A pull of chunk `index` (the first is 0, already received with the reply).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChunkPull {
    pub token: String,
    pub index: u32,
}

/// The chunk size for a connection: [`CHUNK_BYTES`], or less if the server's max payload is small.
pub fn chunk_bytes(client: &async_nats::Client) -> usize {
    CHUNK_BYTES
        .min(client.server_info().max_payload.saturating_sub(8 * 1024))
        .max(1024)
}

/// The chunk headers of a message: (count, subject, token). None for a message that is whole; an
/// error when the headers are there but unusable (never take the first chunk for the whole).
pub fn chunked(
    headers: Option<&async_nats::HeaderMap>,
    max_chunks: usize,
) -> Result<Option<(usize, String, String)>, BusError> {
    let Some(count) = headers.and_then(|h| h.get(CHUNKS_HEADER)) else {
        return Ok(None);
    };
    let headers = headers.ok_or_else(BusError::internal)?;
    let malformed = || {
        tracing::error!("malformed chunk headers");
        BusError::new(ErrorCode::BadRequest, "Malformed chunk headers")
    };
    let count: usize = count.as_str().parse().map_err(|_| malformed())?;
    if count > max_chunks {
        tracing::warn!(count, "message has more chunks than accepted");
        return Err(BusError::new(
            ErrorCode::PayloadTooLarge,
            "The message is too large",
        ));
    }
    if count < 2 {
        return Err(malformed());
    }
    let subject = headers.get(SUBJECT_HEADER).ok_or_else(malformed)?;
    let token = headers.get(TOKEN_HEADER).ok_or_else(malformed)?;
    Ok(Some((
        count,
        subject.as_str().to_owned(),
        token.as_str().to_owned(),
    )))
}

/// Pulls chunks 1..count from `subject` and joins them after `first`.
pub async fn pull(
    client: &async_nats::Client,
    first: Bytes,
    count: usize,
    subject: &str,
    token: &str,
    timeout: Duration,
) -> Result<Bytes, BusError> {
    let mut whole = bytes::BytesMut::with_capacity(first.len() * count);
    whole.extend_from_slice(&first);
    for index in 1..count {
        let pull = ChunkPull {
            token: token.to_owned(),
            index: index as u32,
        };
        let payload = serde_json::to_vec(&pull).map_err(|_| BusError::internal())?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));
        let msg = client
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|err| {
                tracing::warn!(%err, "could not pull a chunk");
                match err.kind() {
                    async_nats::RequestErrorKind::TimedOut => BusError::timeout(),
                    _ => BusError::unavailable(),
                }
            })?;
        if let Some(err) = crate::client::decode_error(msg.headers.as_ref()) {
            return Err(err);
        }
        whole.extend_from_slice(&msg.payload);
    }
    Ok(whole.freeze())
}

/// Serves the chunks of one outgoing request on `sub` until dropped.
pub(crate) struct Serving(tokio::task::JoinHandle<()>);

impl Serving {
    pub(crate) fn start(
        client: async_nats::Client,
        mut sub: async_nats::Subscriber,
        whole: Bytes,
        chunk_bytes: usize,
    ) -> Self {
        Self(tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(msg) = sub.next().await {
                let Some(reply) = msg.reply else { continue };
                let part = serde_json::from_slice::<ChunkPull>(&msg.payload)
                    .ok()
                    .map(|p| p.index as usize * chunk_bytes)
                    .filter(|start| *start < whole.len())
                    .map(|start| whole.slice(start..(start + chunk_bytes).min(whole.len())));
                let sent = match part {
                    Some(part) => client.publish(reply, part).await,
                    None => {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(NATS_SERVICE_ERROR, "No such chunk");
                        headers.insert(NATS_SERVICE_ERROR_CODE, "404");
                        client
                            .publish_with_headers(reply, headers, Bytes::new())
                            .await
                    }
                };
                if let Err(err) = sent {
                    tracing::warn!(%err, "could not send a request chunk");
                }
            }
        }))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}
