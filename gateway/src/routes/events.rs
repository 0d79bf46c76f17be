//! `GET /api/v1/events/stream`: the organization's attendance events as Server-Sent Events, for
//! integrations that would rather hold one connection open than run a webhook endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer::push;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use clokio_bus::events::kind;
use clokio_bus::ops::Filters;
use futures::{Stream, StreamExt};

use crate::App;
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::events::{Lease, Live, MAX_STREAMS_PER_KEY, Registration, Resume, StreamFilter};

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/events/stream", get(stream))
}

const EVENT_TYPES: [&str; 5] = [
    kind::CLOCK_IN,
    kind::CLOCK_OUT,
    kind::BREAK_START,
    kind::BREAK_END,
    kind::CORRECTION,
];

/// How long a client waits before reconnecting after the gateway closed the stream to shut down.
const RETRY: Duration = Duration::from_secs(1);

/// Stream the organization's attendance events (Server-Sent Events).
///
/// Each event is `id:` (a position to resume from), `event:` (`clock-in`, `clock-out`,
/// `break-start`, `break-end`, `correction`) and `data:` (the JSON a generic webhook receives: `{type,
/// timestamp, data}`). Reconnect with `Last-Event-ID` (or `?last_event_id=`) to get every event
/// after that position exactly once, within the events stream's retention (30 days); an unknown
/// or expired position gets one `event: reset`, then live events. A comment line every 15 s keeps
/// proxies from closing an idle stream. At most 5 streams per key are open at once; opening one
/// counts once against the rate limit, its events do not. A reader that stops reading is cut off;
/// a gateway shutting down sends `retry:` and closes, so clients reconnect to another replica.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "Events",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated event types (default all)", example = "clock-in,clock-out"),
        ("employees" = Option<String>, Query, description = "Comma-separated employee codes"),
        ("locations" = Option<String>, Query, description = "Comma-separated location names"),
        ("departments" = Option<String>, Query, description = "Comma-separated departments"),
        ("last_event_id" = Option<u64>, Query, description = "Resume after this position (the Last-Event-ID header wins)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = crate::openapi::ErrorEnvelope),
        (status = 422, body = crate::openapi::ErrorEnvelope),
        (status = 429, description = "Rate limited, or 5 streams of this key are open", body = crate::openapi::ErrorEnvelope),
        (status = 503, body = crate::openapi::ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn stream(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = filter(&q)?;
    let after = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().ok().unwrap_or("")),
        None => q.get("last_event_id").map(String::as_str),
    }
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .map(|s| {
        s.parse::<u64>().map_err(|_| {
            ApiError::invalid("The last_event_id field must be a position this stream sent")
        })
    })
    .transpose()?;
    if !app.hub.ready() {
        return Err(unavailable());
    }
    let lease = app.leases.acquire(auth.key_id).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "This API key already has {MAX_STREAMS_PER_KEY} open event streams; close one first"
            ),
        )
    })?;
    // Live first, then the replay: every event after the position is in one or the other.
    let registration = app.hub.register(auth.org_id, filter.clone());
    let (reset, replay) = match after {
        None => (false, None),
        Some(after) => match app.hub.resume(auth.org_id, after).await {
            Ok(Resume::Reset) => (true, None),
            Ok(Resume::Replay(replay)) => (false, replay),
            Err(err) => {
                tracing::warn!(%err, "event stream: replay could not start");
                return Err(unavailable());
            }
        },
    };
    // Renew the lease and check the key is still valid (not revoked or expired) this often.
    let every = app
        .config
        .stream_heartbeat
        .min(crate::events::LEASE_REFRESH);
    let state = StreamState {
        key: headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        app: app.clone(),
        reset,
        replay,
        // After a reset the position means nothing: every live event is new.
        last_sent: if reset { 0 } else { after.unwrap_or(0) },
        filter,
        registration,
        lease,
        stopping: app.stopping.subscribe(),
        refresh: tokio::time::interval_at(tokio::time::Instant::now() + every, every),
        held: std::collections::VecDeque::new(),
        done: false,
    };
    let mut res = Sse::new(events(state))
        .keep_alive(KeepAlive::new().interval(app.config.stream_heartbeat))
        .into_response();
    // Proxies (nginx) must pass events on as they come.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The event stream is not available; try again shortly",
    )
}

/// A comma-separated query list; blank items are ignored.
fn list(q: &HashMap<String, String>, name: &str) -> Result<Vec<String>, ApiError> {
    let items: Vec<String> = q
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if items.len() > 100 {
        return Err(ApiError::invalid(format!(
            "The {name} field must not have more than 100 items"
        )));
    }
    if items.iter().any(|i| i.chars().count() > 100) {
        return Err(ApiError::invalid(format!(
            "Each item of the {name} field must not be greater than 100 characters"
        )));
    }
    Ok(items)
}

fn filter(q: &HashMap<String, String>) -> Result<StreamFilter, ApiError> {
    let types = list(q, "types")?;
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return Err(ApiError::invalid(format!(
            "The types field has an unknown event type: {bad}. Types are {}",
            EVENT_TYPES.join(", ")
        )));
    }
    Ok(StreamFilter {
        types,
        filters: Filters {
            employees: list(q, "employees")?,
            locations: list(q, "locations")?,
            departments: list(q, "departments")?,
            ..Filters::default()
        },
    })
}

struct StreamState {
    /// The key the stream was opened with, checked again on each refresh.
    key: String,
    app: App,
    /// Send `event: reset` first.
    reset: bool,
    replay: Option<Box<push::Ordered>>,
    /// The position of the last event sent (or resumed from).
    last_sent: u64,
    filter: StreamFilter,
    registration: Registration,
    lease: Lease,
    stopping: tokio::sync::watch::Receiver<bool>,
    refresh: tokio::time::Interval,
    /// Live events that arrived while the replay ran.
    held: std::collections::VecDeque<Arc<Live>>,
    done: bool,
}

/// The most live events a replaying stream holds; a replay this far behind is cut off (the
/// client resumes again from what it got).
const MAX_HELD: usize = 100_000;

/// Why a stream was aborted (the connection is closed without a clean end).
#[derive(Debug)]
struct CutOff;

impl std::fmt::Display for CutOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader fell too far behind")
    }
}

impl std::error::Error for CutOff {}

fn frame(live: &Live) -> Event {
    Event::default()
        .id(live.seq.to_string())
        .event(&live.kind)
        .data(&live.data)
}

fn events(state: StreamState) -> impl Stream<Item = Result<Event, CutOff>> {
    futures::stream::unfold(state, |mut st| async move {
        let item = next(&mut st).await?;
        Some((item, st))
    })
}

async fn next(st: &mut StreamState) -> Option<Result<Event, CutOff>> {
    if st.done {
        return None;
    }
    if st.reset {
        st.reset = false;
        return Some(Ok(Event::default().event("reset").data("{}")));
    }
    loop {
        if st.registration.cut.load(Ordering::Acquire) {
            st.done = true;
            return Some(Err(CutOff));
        }
        if *st.stopping.borrow() {
            st.done = true;
            return Some(Ok(Event::default()
                .retry(RETRY)
                .comment("the server is restarting; reconnect")));
        }
        if let Some(replay) = st.replay.as_mut() {
            // Live events keep coming during the replay: hold them (the hub must never find this
            // stream's buffer full because it is busy replaying) until the replay catches up.
            let msg = tokio::select! {
                changed = st.stopping.changed() => {
                    if changed.is_err() {
                        st.done = true;
                        return None;
                    }
                    continue;
                }
                live = st.registration.rx.recv() => {
                    match live {
                        Some(live) if st.held.len() < MAX_HELD => st.held.push_back(live),
                        Some(_) => {
                            st.done = true;
                            return Some(Err(CutOff));
                        }
                        None if st.registration.cut.load(Ordering::Acquire) => {}
                        None => {
                            st.done = true;
                            return None;
                        }
                    }
                    continue;
                }
                msg = replay.next() => msg,
            };
            let Some(Ok(msg)) = msg else {
                // The replay failed midway: end the stream; the client resumes from what it got.
                tracing::warn!("event stream: replay ended early");
                st.done = true;
                return None;
            };
            let Ok(info) = msg.info() else {
                st.done = true;
                return None;
            };
            let (seq, pending) = (info.stream_sequence, info.pending);
            if pending == 0 {
                st.replay = None;
            }
            if seq <= st.last_sent {
                continue;
            }
            st.last_sent = seq;
            match Live::decode(seq, &msg.payload) {
                Some((live, event)) if st.filter.accepts(&event.data) => {
                    return Some(Ok(frame(&live)));
                }
                _ => continue,
            }
        }
        // What arrived live during the replay, past what the replay sent.
        if let Some(live) = st.held.pop_front() {
            if live.seq > st.last_sent {
                st.last_sent = live.seq;
                return Some(Ok(frame(&live)));
            }
            continue;
        }
        tokio::select! {
            changed = st.stopping.changed() => {
                if changed.is_err() {
                    st.done = true;
                    return None;
                }
            }
            _ = st.refresh.tick() => {
                // Boxed: an idle stream's future would otherwise carry room for both calls
                // (measured: 2.4 KB) between its rare runs.
                Box::pin(st.lease.refresh()).await;
                // A key revoked or expired since the stream opened ends it (a cached key costs
                // no I/O; an unavailable employee-svc does not end it).
                if let Err(err) = Box::pin(st.app.auth.authenticate(Some(&st.key))).await
                    && err.status == StatusCode::UNAUTHORIZED
                {
                    st.done = true;
                    return None;
                }
            }
            live = st.registration.rx.recv() => match live {
                Some(live) if live.seq > st.last_sent => {
                    st.last_sent = live.seq;
                    return Some(Ok(frame(&live)));
                }
                Some(_) => continue,
                // The hub let go of this stream: cut off (checked at the top) or gone.
                None => {
                    if st.registration.cut.load(Ordering::Acquire) {
                        continue;
                    }
                    st.done = true;
                    return None;
                }
            },
        }
    }
}
