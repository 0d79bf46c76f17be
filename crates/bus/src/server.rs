//! Serving a bus service: one NATS micro service per service name (so `$SRV.PING` finds every
//! replica), one queue subscription for all its operations (so replicas share the load), each
//! request handled on its own task with a bound on how many run at once. Replies larger than
//! one NATS message are pulled in chunks (see [`crate::chunk`]).

use std::future::Future;
use std::sync::Arc;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, ServiceExt};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::chunk;
use crate::client::REQUEST_ID_HEADER;
use crate::error::BusError;
use crate::ops::Operation;
use crate::subject::{ServiceName, Subjects};

pub use bytes::Bytes;

/// A service's request handler: gets the operation name and payload, answers bytes or an error.
/// Services write it with [`operations!`](crate::operations), from one table that also lists the
/// operations they register.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        operation: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, BusError>> + Send;
}

/// Decodes `payload` as `O::Request`, runs `f`, encodes the reply. Undecodable input is a 400:
/// the gateway never sends it, so whoever did gets told plainly.
pub async fn dispatch<O, F, Fut, E>(payload: &[u8], f: F) -> Result<Bytes, BusError>
where
    O: Operation,
    F: FnOnce(O::Request) -> Fut,
    Fut: Future<Output = Result<O::Reply, E>>,
    E: Into<BusError>,
{
    let reply = f(decode::<O>(payload)?).await.map_err(Into::into)?;
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

/// Registers the service and answers requests until `shutdown` resolves, then drains: it stops
/// taking requests without dropping any that NATS already routed to it, and waits for the
/// requests in flight to finish.
///
/// One queue subscription on `<group>.*` carries every operation, so a replica has one count of
/// requests delivered to it. That count is what makes the drain lossless: the replica asks the
/// server to stop after `delivered + margin` messages (`UNSUB <sid> <max>`), and both the server
/// and the client drop the subscription at exactly that message, so nothing routed here is left
/// unread. (A plain unsubscribe, and async-nats' drain, drop the subscription in the client before
/// the server has stopped routing to it; the requests in between would time out.) The margin
/// covers what is on its way at the moment of the UNSUB: a quarter second of the last second's
/// traffic, at least [`DRAIN_MARGIN_MIN`]. The replica then uses the margin up itself, however
/// thin the traffic: it publishes fillers (no reply subject) to its own group in rounds, each
/// sized by how many of the last round's came here (about one in as many as there are
/// replicas), until the count is reached; the fillers that reach other replicas are ignored
/// there. A drain sends at most [`FILL_BUDGET`] fillers. Only one that has not ended after
/// [`DRAIN_LIMIT`] (a client that lost messages as a slow consumer, so its count lags the
/// server's) unsubscribes plainly.
///
/// The NATS micro service (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) still announces each replica;
/// its metadata names the subject and operations, since it registers no endpoints of its own.
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
    let group = subjects.service_group(service);
    let subject = format!("{group}.*");
    // Subscribed before the replica announces itself, so a replica that `$SRV.PING` finds is
    // one that requests reach (what arrives before the loop below starts waits in the
    // subscription's buffer).
    let mut requests = client
        .queue_subscribe(subject.clone(), service.micro_name())
        .await?;
    let micro = client
        .service_builder()
        .description(description)
        .metadata(HashMap::from([
            ("subject".to_owned(), subject.clone()),
            ("queue_group".to_owned(), service.micro_name()),
            ("operations".to_owned(), operations.join(",")),
        ]))
        .start(service.micro_name(), env!("CARGO_PKG_VERSION"))
        .await?;
    let chunks = Arc::new(
        ChunkStore::serve(
            client.clone(),
            format!("{group}._chunks.{}", micro.info().await.id),
        )
        .await?,
    );
    let limit = Arc::new(Semaphore::new(max_in_flight));
    let tasks = tokio_util::task::TaskTracker::new();
    tracing::info!(
        service = service.as_str(),
        operations = operations.len(),
        "bus service started"
    );

    tokio::pin!(shutdown);
    let mut micro = Some(micro);
    let mut traffic = Traffic::new();
    let mut drain: Option<Drain> = None;
    loop {
        let next = match &mut drain {
            None => tokio::select! {
                () = &mut shutdown => {
                    if let Some(micro) = micro.take() {
                        micro.stop().await?;
                    }
                    let max = traffic.delivered + traffic.margin();
                    requests.unsubscribe_after(max).await?;
                    tracing::info!(service = service.as_str(), max, "draining bus requests");
                    drain = Some(Drain::start(&client, &group, max).await);
                    continue;
                }
                next = requests.next() => next,
            },
            Some(drain) => {
                let (until, max) = (drain.until, drain.max);
                tokio::select! {
                    // Messages already waiting are counted before the next round is sized (those
                    // still on their way from the connection are not: a round may send a few
                    // too many, never too few).
                    biased;
                    next = requests.next() => next,
                    () = drain.filled() => {
                        drain.fill(max.saturating_sub(traffic.delivered), traffic.delivered);
                        continue;
                    }
                    () = tokio::time::sleep_until(until) => {
                        tracing::warn!(
                            service = service.as_str(),
                            left = max.saturating_sub(traffic.delivered),
                            "drain ends at its limit; a request in transit may be dropped"
                        );
                        break;
                    }
                }
            }
        };
        // The subscription ends on its last counted message (or if the connection closes).
        let Some(msg) = next else { break };
        // Every message counts toward the UNSUB's number; only requests (which have a reply
        // subject; a drain's fillers have none) size the next drain's margin.
        traffic.count(msg.reply.is_some());
        if msg.reply.is_none() {
            continue;
        }
        let op = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|op| operations.iter().find(|known| **known == op).copied());
        let (handler, chunks, client, limit) = (
            handler.clone(),
            chunks.clone(),
            client.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let Some(reply) = msg.reply.clone() else {
                return;
            };
            let Some(op) = op else {
                let err = BusError::new(
                    crate::ErrorCode::NotFound,
                    format!("Unknown operation {}", msg.subject),
                );
                send(&client, reply, Err(err), &chunks, "unknown").await;
                return;
            };
            let Ok(_permit) = limit.acquire_owned().await else {
                return;
            };
            let request_id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(REQUEST_ID_HEADER))
                .map(|v| v.as_str().to_owned());
            let span = tracing::info_span!(
                "bus",
                otel.kind = "server",
                operation = op,
                request_id = request_id.as_deref(),
                trace_id = tracing::field::Empty,
            );
            crate::trace::continue_from(&span, msg.headers.as_ref());
            let started = Instant::now();
            let result = tracing::Instrument::instrument(
                async {
                    let payload = whole_request(&client, &msg).await?;
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
            send(&client, reply, result, &chunks, op).await;
        });
    }
    // Whatever is still subscribed goes now (a drain that hit its limit).
    drop(requests);
    if let Some(drain) = drain {
        tracing::info!(
            service = service.as_str(),
            fillers = drain.fillers,
            "bus requests drained"
        );
    }
    if let Some(micro) = micro {
        micro.stop().await?;
    }
    tasks.close();
    tasks.wait().await;
    chunks.stop();
    // Replies are queued in the client; make sure they are written before the caller closes it.
    client.flush().await?;
    tracing::info!(service = service.as_str(), "bus service stopped");
    Ok(())
}

/// Answers one request: its reply (chunked when large) or its error in the NATS micro error
/// headers, which is what [`crate::client`] reads.
async fn send(
    client: &async_nats::Client,
    reply: async_nats::Subject,
    result: Result<Bytes, BusError>,
    chunks: &ChunkStore,
    op: &str,
) {
    let sent = match result {
        Ok(bytes) => match chunks.split(bytes) {
            (first, None) => client.publish(reply, first).await,
            (first, Some(headers)) => client.publish_with_headers(reply, headers, first).await,
        },
        Err(err) => {
            if err.code == crate::ErrorCode::Internal {
                tracing::error!(operation = op, "request failed: internal error");
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(NATS_SERVICE_ERROR, header_safe(&err.message).as_str());
            headers.insert(
                NATS_SERVICE_ERROR_CODE,
                err.code.status().to_string().as_str(),
            );
            client
                .publish_with_headers(reply, headers, Bytes::new())
                .await
        }
    };
    if let Err(err) = sent {
        tracing::warn!(operation = op, %err, "could not send reply");
    }
}

/// `message` fit for a NATS header value: messages quote what clients sent, and a CR or LF in a
/// header would make the reply unsendable (the client would wait out its timeout), so control
/// characters become spaces.
pub fn header_safe(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Requests delivered to this replica: the total, which the drain's UNSUB counts on, and the
/// last second's, which sizes its margin.
struct Traffic {
    delivered: u64,
    second_started: Instant,
    this_second: u64,
    last_second: u64,
}

impl Traffic {
    fn new() -> Self {
        Self {
            delivered: 0,
            second_started: Instant::now(),
            this_second: 0,
            last_second: 0,
        }
    }

    fn count(&mut self, request: bool) {
        self.delivered += 1;
        if !request {
            return;
        }
        let elapsed = self.second_started.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.last_second = if elapsed < Duration::from_secs(2) {
                self.this_second
            } else {
                0
            };
            self.this_second = 0;
            self.second_started = Instant::now();
        }
        self.this_second += 1;
    }

    /// How many more requests the server may route here after the UNSUB: far more than can be
    /// in transit, which is what was routed in the time an UNSUB takes to reach the server.
    fn margin(&self) -> u64 {
        (self.last_second.max(self.this_second) / 4).max(DRAIN_MARGIN_MIN)
    }
}

/// The least margin a drain allows for requests in transit.
const DRAIN_MARGIN_MIN: u64 = 32;

/// The operation name of the drain's filler messages: no operation has it, and a filler has no
/// reply subject, so whichever replica it reaches counts it and ignores it.
const DRAIN_FILLER: &str = "_drain";

/// How many fillers the first round sends per message the draining replica still awaits. Later
/// rounds send as many per message as the last round needed for each one that came here (about
/// the number of replicas), doubled after a round of which none came.
const FILL_FACTOR: u64 = 4;

/// The most fillers a round sends per message still awaited.
const FILL_FACTOR_MAX: u64 = 256;

/// The most fillers one round sends.
const FILL_ROUND_MAX: u64 = 10_000;

/// The most fillers one drain sends. A client whose count lags the server's (it dropped
/// messages as a slow consumer) never sees its count reached, and would otherwise flood the
/// other replicas until the drain's limit.
const FILL_BUDGET: u64 = 50_000;

/// How long a round waits for its marker. A marker lost with a reconnect (async-nats drops what
/// it had not yet written) must not hold the drain until its limit.
const ROUND_WAIT: Duration = Duration::from_secs(2);

/// A replica's drain: the count at which its subscription ends, and its filler rounds.
struct Drain {
    max: u64,
    until: tokio::time::Instant,
    client: async_nats::Client,
    /// Where fillers go: the service's group, under an operation no replica has.
    subject: String,
    /// An inbox of this replica's own, whose message marks the end of a round.
    marker: String,
    /// The inbox's subscription while no round holds it (`None` for good if it could not be
    /// made: the drain then waits for traffic).
    echo: Option<async_nats::Subscriber>,
    round: Option<futures::future::BoxFuture<'static, async_nats::Subscriber>>,
    factor: u64,
    /// The last round's fillers, and the count when it started.
    last_round: u64,
    delivered_at_round: u64,
    fillers: u64,
}

impl Drain {
    async fn start(client: &async_nats::Client, group: &str, max: u64) -> Self {
        let marker = client.new_inbox();
        let echo = match client.subscribe(marker.clone()).await {
            Ok(echo) => Some(echo),
            Err(err) => {
                tracing::warn!(%err, "the drain sends no fillers and waits for traffic");
                None
            }
        };
        Self {
            max,
            until: tokio::time::Instant::now() + DRAIN_LIMIT,
            client: client.clone(),
            subject: format!("{group}.{DRAIN_FILLER}"),
            marker,
            echo,
            round: None,
            factor: FILL_FACTOR,
            last_round: 0,
            delivered_at_round: 0,
            fillers: 0,
        }
    }

    /// Resolves when a round may start: when the one in flight has ended, at once before the
    /// first; never when there is no marker inbox or the budget is spent.
    async fn filled(&mut self) {
        match &mut self.round {
            Some(round) => {
                self.echo = Some(round.await);
                self.round = None;
            }
            None if self.echo.is_none() || self.fillers >= FILL_BUDGET => {
                std::future::pending::<()>().await;
            }
            None => {}
        }
    }

    /// Sends a round of fillers for the `left` messages still awaited (`delivered` so far), then
    /// a marker to this replica's own inbox. The server handles a connection's messages in order,
    /// so when the marker is back every filler of the round has been routed, and those routed
    /// here have arrived ahead of it: the next round counts them and sends only what is missing.
    fn fill(&mut self, left: u64, delivered: u64) {
        let Some(mut echo) = self.echo.take() else {
            return;
        };
        if self.last_round > 0 {
            let came = delivered.saturating_sub(self.delivered_at_round);
            self.factor = match came {
                0 => self.factor * 2,
                came => self.last_round.div_ceil(came),
            }
            .clamp(1, FILL_FACTOR_MAX);
        }
        let n = (left * self.factor)
            .min(FILL_ROUND_MAX)
            .min(FILL_BUDGET - self.fillers);
        self.fillers += n;
        self.last_round = n;
        self.delivered_at_round = delivered;
        let (client, subject, marker) = (
            self.client.clone(),
            self.subject.clone(),
            self.marker.clone(),
        );
        self.round = Some(Box::pin(async move {
            for _ in 0..n {
                if client.publish(subject.clone(), Bytes::new()).await.is_err() {
                    break;
                }
            }
            let back = match client.publish(marker, Bytes::new()).await {
                Ok(()) => tokio::time::timeout(ROUND_WAIT, echo.next()).await,
                Err(_) => Ok(None),
            };
            if let Ok(None) = back {
                // Not connected: the next round waits a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            echo
        }));
    }
}

/// The longest a stopping service keeps answering what is routed to it. Below the 30 s a
/// Kubernetes pod gets by default between SIGTERM and SIGKILL, with room for in-flight work.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

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

/// A service's operations in one table: the [`Handler`] that answers them and the list of names it
/// registers (`State::OPERATIONS`), so neither can have an operation the other lacks.
///
/// Each row names the operation and how it is answered, `Op => |state, request| future`: the
/// request is decoded as the operation's (undecodable → 400), the future's reply encoded, its
/// error turned into a [`BusError`]. A row marked `encoded` answers with bytes it encoded itself
/// (a reply stored with an idempotency key, a stream of chunks).
///
/// ```ignore
/// clokio_bus::operations! {
///     State {
///         ops::OrgGetOp => |s, r| orgs::get(s, r.org_id),
///         ops::ClockInOp => encoded |s, r| clock::handle(s, Action::ClockIn, r),
///     }
/// }
/// ```
#[macro_export]
macro_rules! operations {
    ($state:ty { $($op:ty => $($kind:ident)? |$s:ident, $r:pat_param| $body:expr),* $(,)? }) => {
        impl $crate::server::Handler for $state {
            async fn handle(
                &self,
                operation: &str,
                payload: $crate::server::Bytes,
            ) -> ::core::result::Result<$crate::server::Bytes, $crate::BusError> {
                $(
                    if operation == <$op as $crate::ops::Operation>::NAME {
                        return $crate::__operation!([$($kind)?] self, payload, $op, $s, $r, $body);
                    }
                )*
                Err($crate::BusError::new(
                    $crate::ErrorCode::NotFound,
                    format!("Unknown operation {operation}"),
                ))
            }
        }

        impl $state {
            /// The operations this service answers, as its table lists them.
            pub const OPERATIONS: &'static [&'static str] =
                &[$(<$op as $crate::ops::Operation>::NAME),*];
        }
    };
}

/// One row of [`operations!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __operation {
    ([] $self:ident, $payload:ident, $op:ty, $s:ident, $r:pat_param, $body:expr) => {{
        let $s = $self;
        $crate::server::dispatch::<$op, _, _, _>(&$payload, |$r| $body).await
    }};
    ([encoded] $self:ident, $payload:ident, $op:ty, $s:ident, $r:pat_param, $body:expr) => {{
        let $s = $self;
        let $r = $crate::server::decode::<$op>(&$payload)?;
        $body.await.map_err(::core::convert::Into::into)
    }};
}
