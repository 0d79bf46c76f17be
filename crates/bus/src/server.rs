//! Serving a bus service: one NATS micro service per service name, one endpoint per operation in
//! the service's queue group (so `$SRV.PING` finds every replica and replicas share the load),
//! each request handled on its own task with a bound on how many run at once. Replies larger than
//! one NATS message are pulled in chunks (see [`crate::chunk`]).

use std::future::Future;
use std::sync::Arc;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::service::{
    NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, ServiceExt, error::Error as MicroError,
};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::chunk;
use crate::client::REQUEST_ID_HEADER;
use crate::error::BusError;
use crate::ops::Operation;
use crate::subject::{ServiceName, Subjects};

/// A service's request handler: gets the operation name and payload, answers bytes or an error.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        operation: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, BusError>> + Send;
}

/// Decodes `payload` as `O::Request`, runs `f`, encodes the reply. Undecodable input is a 400:
/// the gateway never sends it, so whoever did gets told plainly.
pub async fn dispatch<O, F, Fut>(payload: &[u8], f: F) -> Result<Bytes, BusError>
where
    O: Operation,
    F: FnOnce(O::Request) -> Fut,
    Fut: Future<Output = Result<O::Reply, BusError>>,
{
    let reply = f(decode::<O>(payload)?).await?;
    to_bytes(&reply)
}

/// Decodes an operation's request; undecodable input is a 400.
pub fn decode<O: Operation>(payload: &[u8]) -> Result<O::Request, BusError> {
    serde_json::from_slice(payload).map_err(|err| {
        BusError::new(
            crate::ErrorCode::BadRequest,
            format!("Invalid {} request: {err}", O::NAME),
        )
    })
}

pub fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, BusError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|err| {
        tracing::error!(%err, "unencodable reply");
        BusError::internal()
    })
}

/// What a service registers on the bus.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub service: ServiceName,
    pub description: &'static str,
    pub operations: &'static [&'static str],
    /// Requests handled at once by this replica.
    pub max_in_flight: usize,
}

/// Registers the service with its operations and answers requests until `shutdown` resolves;
/// then it unsubscribes and waits for in-flight requests to finish.
pub async fn serve<H: Handler>(
    client: async_nats::Client,
    subjects: &Subjects,
    spec: Spec,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), async_nats::Error> {
    let Spec {
        service,
        description,
        operations,
        max_in_flight,
    } = spec;
    let micro = client
        .service_builder()
        .description(description)
        .queue_group(service.micro_name())
        .start(service.micro_name(), env!("CARGO_PKG_VERSION"))
        .await?;
    let group = micro.group(subjects.service_group(service));
    let mut endpoints = Vec::with_capacity(operations.len());
    for op in operations {
        let endpoint = group.endpoint(*op).await?;
        endpoints.push(endpoint.map(move |req| (*op, req)));
    }
    let mut requests = futures::stream::select_all(endpoints);
    let chunks = Arc::new(
        ChunkStore::serve(
            client.clone(),
            format!(
                "{}._chunks.{}",
                subjects.service_group(service),
                micro.info().await.id
            ),
        )
        .await?,
    );
    let limit = Arc::new(Semaphore::new(max_in_flight));
    tracing::info!(
        service = service.as_str(),
        operations = operations.len(),
        "bus service started"
    );

    tokio::pin!(shutdown);
    // On shutdown the endpoints unsubscribe, and the requests NATS already routed here are still
    // answered (a drain), so a rolling restart does not cost the requests in flight towards this
    // replica. The drain is bounded in case a subscription never reports its end.
    let mut micro = Some(micro);
    let mut drain_until = None;
    loop {
        let next = match drain_until {
            None => tokio::select! {
                () = &mut shutdown => {
                    if let Some(micro) = micro.take() {
                        micro.stop().await?;
                    }
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                    continue;
                }
                // A service with no operations yet just waits for shutdown.
                next = requests.next(), if !requests.is_empty() => next,
            },
            Some(until) => match tokio::time::timeout_at(until, requests.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((op, req)) = next else { break };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.clone();
        let chunks = chunks.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let request_id = req
                .message
                .headers
                .as_ref()
                .and_then(|h| h.get(REQUEST_ID_HEADER))
                .map(|v| v.as_str().to_owned());
            let span =
                tracing::info_span!("bus", operation = op, request_id = request_id.as_deref());
            let started = Instant::now();
            let result = tracing::Instrument::instrument(
                async {
                    let payload = whole_request(&client, &req.message).await?;
                    handler.handle(op, payload).await
                },
                span,
            )
            .await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(err) if err.code.status() >= 500 => "error",
                Err(_) => "refused",
            };
            metrics::counter!("clokio_bus_requests_total", "operation" => op, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("clokio_bus_request_duration_seconds", "operation" => op)
                .record(started.elapsed().as_secs_f64());
            let sent = match result {
                Ok(bytes) => match chunks.split(bytes) {
                    (first, None) => req.respond(Ok(first)).await,
                    (first, Some(headers)) => req.respond_with_headers(Ok(first), headers).await,
                },
                Err(err) => {
                    if err.code == crate::ErrorCode::Internal {
                        tracing::error!(operation = op, "request failed: internal error");
                    }
                    let status = err.code.status() as usize;
                    req.respond(Err(MicroError {
                        status: err.message,
                        code: status,
                    }))
                    .await
                }
            };
            if let Err(err) = sent {
                tracing::warn!(operation = op, %err, "could not send reply");
            }
            drop(permit);
        });
    }
    drop(requests);
    // Wait for in-flight requests: every permit back means every task has answered.
    let _ = limit.acquire_many(max_in_flight as u32).await;
    chunks.stop();
    if let Some(micro) = micro {
        micro.stop().await?;
    }
    tracing::info!(service = service.as_str(), "bus service stopped");
    Ok(())
}

/// The longest a stopping service keeps answering what was routed to it before it stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How long a service waits for each chunk of a large request.
const REQUEST_CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// A request's whole payload: itself, or its chunks pulled from the requester.
async fn whole_request(
    client: &async_nats::Client,
    msg: &async_nats::Message,
) -> Result<Bytes, BusError> {
    match chunk::chunked(msg.headers.as_ref(), chunk::MAX_REQUEST_CHUNKS)? {
        None => Ok(msg.payload.clone()),
        Some((count, subject, token)) => {
            chunk::pull(
                client,
                msg.payload.clone(),
                count,
                &subject,
                &token,
                REQUEST_CHUNK_TIMEOUT,
            )
            .await
        }
    }
}

/// Replies larger than one NATS message. The first chunk goes back as the reply, with headers
/// naming how many chunks there are and where to pull the rest: a subject only this replica
/// listens on, and a token. The reply is kept for [`CHUNK_TTL`] for the requester to pull; small
/// replies never touch any of this.
struct ChunkStore {
    subject: String,
    chunk_bytes: usize,
    pending: Arc<Mutex<HashMap<String, (Instant, Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long a chunked reply waits to be pulled.
pub const CHUNK_TTL: Duration = Duration::from_secs(30);

impl ChunkStore {
    async fn serve(client: async_nats::Client, subject: String) -> Result<Self, async_nats::Error> {
        let chunk_bytes = chunk::chunk_bytes(&client);
        let pending: Arc<Mutex<HashMap<String, (Instant, Bytes)>>> = Arc::default();
        let mut sub = client.subscribe(subject.clone()).await?;
        let task = tokio::spawn({
            let pending = pending.clone();
            async move {
                while let Some(msg) = sub.next().await {
                    let Some(reply) = msg.reply.clone() else {
                        continue;
                    };
                    let answer = serde_json::from_slice::<chunk::ChunkPull>(&msg.payload)
                        .ok()
                        .and_then(|pull| {
                            let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
                            let (_, bytes) = map.get(&pull.token)?;
                            let start = pull.index as usize * chunk_bytes;
                            if start >= bytes.len() {
                                return None;
                            }
                            let end = (start + chunk_bytes).min(bytes.len());
                            let part = bytes.slice(start..end);
                            if end == bytes.len() {
                                map.remove(&pull.token);
                            }
                            Some(part)
                        });
                    let sent = match answer {
                        Some(part) => client.publish(reply, part).await,
                        None => {
                            let mut headers = async_nats::HeaderMap::new();
                            headers.insert(NATS_SERVICE_ERROR, "The reply is no longer available");
                            headers.insert(NATS_SERVICE_ERROR_CODE, "404");
                            client
                                .publish_with_headers(reply, headers, Bytes::new())
                                .await
                        }
                    };
                    if let Err(err) = sent {
                        tracing::warn!(%err, "could not send a reply chunk");
                    }
                }
            }
        });
        Ok(Self {
            subject,
            chunk_bytes,
            pending,
            task,
        })
    }

    /// The first message to send, and the chunk headers when there is more.
    fn split(&self, bytes: Bytes) -> (Bytes, Option<async_nats::HeaderMap>) {
        if bytes.len() <= self.chunk_bytes {
            return (bytes, None);
        }
        let count = bytes.len().div_ceil(self.chunk_bytes);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let first = bytes.slice(..self.chunk_bytes);
        {
            let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            map.retain(|_, (at, _)| now.duration_since(*at) < CHUNK_TTL);
            map.insert(token.clone(), (now, bytes));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(chunk::CHUNKS_HEADER, count.to_string().as_str());
        headers.insert(chunk::SUBJECT_HEADER, self.subject.as_str());
        headers.insert(chunk::TOKEN_HEADER, token.as_str());
        (first, Some(headers))
    }

    fn stop(&self) {
        self.task.abort();
    }
}
