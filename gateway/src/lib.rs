//! The gateway: the only HTTP surface. It authenticates API keys, applies the per-key rate limit,
//! parses each request into a typed bus request, sends it to the owning service over NATS and
//! splices the service's reply into the envelope. Business rules live in the services.

mod auth;
mod body;
mod config;
mod envelope;
mod events;
mod idempotency;
mod openapi;
mod paging;
mod ratelimit;
mod request;
mod routes;
mod scopes;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{Bus, ServiceName};
use clokio_runtime::cache::OrgCache;
use tokio::net::TcpListener;

pub use config::Config;
pub use envelope::ApiError;
pub use ratelimit::{Decision, RateLimiter};

use auth::Authenticator;
use body::BodyLimit;

/// State shared by every handler: one `Arc`, so the per-request clones extractors make are a
/// reference count, not a copy.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub(crate) bus: Bus,
    /// employee-svc's list replies, invalidated by its announcements, fenced per read.
    pub(crate) lists: Arc<OrgCache<Option<EmployeeStatus>, paging::IndexedList>>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) limiter: Arc<RateLimiter>,
    /// The event streams' share of the org events.
    pub(crate) hub: Arc<events::Hub>,
    pub(crate) leases: Arc<events::Leases>,
    /// Set when the gateway starts shutting down: event streams tell clients to reconnect.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    pub(crate) config: Config,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The caller's org cache generation, read from Redis by the limiter script in the same round
/// trip (None when the limiter fell back to memory). Cached reads use it to prove freshness.
#[derive(Clone, Copy, Debug)]
pub struct OrgGeneration(pub Option<u64>);

/// The request id: the client's `X-Request-Id` when it is sane, else a new one.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves the gateway on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (app, background) = build(config).await?;
    let router = router(app.clone());
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    let stopping = app.stopping.clone();
    // A make-service clones the router per connection (an `Arc`); serving the `Router` itself
    // would rebuild its route table for every connection (18 KiB each, measured with heaptrack).
    let listener = clokio_runtime::http::nodelay(listener);
    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Event streams never end by themselves: ask them to, so the drain can finish.
            stopping.send_replace(true);
        })
        .await?;
    for task in background {
        task.abort();
    }
    app.auth.flush_key_uses().await;
    let _ = app.bus.client().flush().await;
    Ok(())
}

async fn build(
    config: Config,
) -> Result<(App, Vec<tokio::task::JoinHandle<()>>), Box<dyn std::error::Error + Send + Sync>> {
    // Install the metrics recorder before anything records.
    clokio_runtime::telemetry::metrics_handle();
    let auth_slot: Arc<std::sync::OnceLock<Arc<Authenticator>>> = Arc::default();
    let nats = {
        let slot = auth_slot.clone();
        clokio_runtime::nats_options("gateway")
            .event_callback(move |event| {
                let slot = slot.clone();
                async move {
                    // Revocations may have been missed while disconnected: start over.
                    if let async_nats::Event::Connected = event
                        && let Some(auth) = slot.get()
                    {
                        auth.evict_all();
                        tracing::info!("NATS reconnected; auth cache cleared");
                    }
                }
            })
            .connect(config.bus.servers())
            .await?
    };
    let bus = Bus::new(
        nats.clone(),
        config.bus.subjects.clone(),
        config.bus.request_timeout,
    );
    let auth = Arc::new(Authenticator::new(
        bus.clone(),
        config.auth_cache_ttl,
        config.rate_limit_basic,
        config.rate_limit_pro,
    ));
    let _ = auth_slot.set(auth.clone());
    let limiter = Arc::new(RateLimiter::new(
        &config.redis_url,
        config.bus.subjects.prefix().as_str(),
        config.redis_timeout,
    )?);
    let lists = Arc::new(
        OrgCache::new(
            "gateway_employee_list",
            nats.clone(),
            config
                .bus
                .subjects
                .cache_invalidations(ServiceName::Employee),
            Some(
                config
                    .bus
                    .request_timeout
                    .min(std::time::Duration::from_secs(1)),
            ),
        )
        .await?,
    );
    let mut background = Vec::new();
    background.push(tokio::spawn({
        let lists = lists.clone();
        async move { lists.run_sync().await }
    }));
    background.push(tokio::spawn(auth::follow_revocations(
        auth.clone(),
        bus.clone(),
    )));
    background.push(tokio::spawn({
        let auth = auth.clone();
        let every = config.key_touch_interval;
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                auth.flush_key_uses().await;
            }
        }
    }));
    // Make sure the invalidation subscription is registered at the server before the first
    // request is served (a round trip, not just a flush of our own buffer). If NATS is not
    // reachable yet, serve anyway: the client subscribes when it connects. (Revocations need no
    // such wait: their follower drops the auth cache when it starts.)
    if !lists.confirm_subscriptions().await {
        tracing::warn!("NATS did not confirm the gateway's subscriptions yet");
    }
    if let Some(addr) = config.ops_addr {
        let readiness = clokio_runtime::ops_port::Readiness::new()
            .nats(nats.clone())
            .redis(limiter.redis());
        background.push(clokio_runtime::ops_port::start(addr, "gateway", readiness).await?);
    }
    let hub = events::Hub::new(
        nats.clone(),
        config.bus.subjects.clone(),
        config.stream_buffer,
    );
    background.push(tokio::spawn(hub.clone().run()));
    if !hub.wait_ready(std::time::Duration::from_secs(2)).await {
        tracing::warn!(
            "the event stream hub is not following events yet; streams answer 503 until it does"
        );
    }
    let leases = events::Leases::new(limiter.redis(), config.bus.subjects.prefix().as_str());
    let app = App(Arc::new(AppInner {
        bus,
        lists,
        auth,
        limiter,
        hub,
        leases,
        stopping: tokio::sync::watch::channel(false).0,
        config,
    }));
    Ok((app, background))
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let api =
        routes::api_routes().route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .merge(api)
        .merge(routes::system::routes())
        // Unknown routes (404) and wrong methods (405) get the envelope from request_context.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                .into_response()
        }))
        .layer(middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app)
}

/// The longest request URI (path and query) served; longer ones get 414.
const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names and values) a request may carry; more gets 431. (hyper itself
/// refuses more than 100 headers, also with 431.)
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Outermost layer: the request's span (continuing a caller's W3C trace context when it sends
/// one), request id in and out, the body bound, metrics and the access log.
async fn request_context(State(app): State<App>, req: Request, next: Next) -> Response {
    // Probes and scrapes are not traced: they would be most of the traces and say nothing.
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return in_request_context(app, req, next).await;
    }
    let span = tracing::info_span!(
        "http request",
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = tracing::field::Empty,
        request_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        clokio_bus::trace::continue_from_values(
            &span,
            header(clokio_bus::trace::TRACEPARENT),
            header(clokio_bus::trace::TRACESTATE),
        );
    }
    tracing::Instrument::instrument(in_request_context(app, req, next), span).await
}

async fn in_request_context(app: App, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // A fixed set: a client inventing methods must not mint new metric series.
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let span = tracing::Span::current();
    span.record("request_id", id.as_str());
    span.record("http.route", route.as_str());
    req.extensions_mut().insert(RequestId(id.clone()));
    // History imports carry up to 5,000 records; every other body is small.
    let body_limit = if route == "/api/v1/attendance/import" {
        app.config.max_import_body_bytes
    } else {
        app.config.max_body_bytes
    };
    req.extensions_mut().insert(BodyLimit(body_limit));
    let declared_too_large = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|len| len > body_limit);
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let uri = req.uri();
    let uri_bytes = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    let mut res = if uri_bytes > MAX_URI_BYTES {
        ApiError::new(StatusCode::URI_TOO_LONG, "The request URI is too long").into_response()
    } else if header_bytes > MAX_HEADER_BYTES {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request headers are too large",
        )
        .into_response()
    } else if declared_too_large {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large",
        )
        .into_response()
    } else {
        next.run(req).await
    };
    // Anything answered outside our handlers (a query or path the extractors refused) still gets
    // the envelope.
    if res.status().as_u16() >= 400 && !is_json(&res) {
        res = envelope_for_status(res.status()).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("clokio_http_requests_total",
        "route" => route.clone(), "method" => method, "status" => status.to_string())
    .increment(1);
    metrics::histogram!("clokio_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(request_id = %id, %method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    res
}

/// A new request id: 32 hex characters, a random per-process base plus a counter (unique without
/// a system call per request).
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(rand::random);
    format!(
        "{base:016x}{:016x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_json(res: &Response) -> bool {
    res.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

fn envelope_for_status(status: StatusCode) -> ApiError {
    let message = match status {
        StatusCode::BAD_REQUEST => "The request is malformed",
        StatusCode::NOT_FOUND => "Route not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        other => other.canonical_reason().unwrap_or("Request failed"),
    };
    ApiError::new(status, message)
}

/// API routes: authenticate, rate-limit, and put the rate-limit headers on whatever comes back.
async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    let auth = match app.auth.authenticate(header).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    let (decision, generation) = app
        .limiter
        .check(auth.key_id, auth.org_id, auth.limit)
        .await;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let missing = match route.and_then(|path| scopes::required(req.method(), path)) {
        Some(scope) => (!auth.scopes.contains(scope)).then_some(scope),
        None => clokio_bus::scope::Scopes::FULL.first_missing_from(auth.scopes),
    };
    let mut res = if let Some(scope) = missing.filter(|_| decision.allowed) {
        ApiError::new(StatusCode::FORBIDDEN, scopes::refusal(scope)).into_response()
    } else if decision.allowed {
        req.extensions_mut().insert(auth);
        req.extensions_mut().insert(OrgGeneration(generation));
        next.run(req).await
    } else {
        let wait = decision.retry_after_secs();
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Rate limit exceeded. Try again in {wait} seconds."),
        )
        .into_response();
        res.headers_mut()
            .insert("retry-after", HeaderValue::from(wait));
        res
    };
    rate_limit_headers(&mut res, &decision);
    res
}

fn rate_limit_headers(res: &mut Response, d: &Decision) {
    let reset_secs = d.retry_after_secs();
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let reset_at = ratelimit::reset_at(now_ms, d.reset_ms);
    let h = res.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset_at));
    let window = ratelimit::WINDOW.as_secs();
    if let Ok(v) = HeaderValue::from_str(&format!("\"default\";q={};w={window}", d.limit)) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"default\";r={};t={reset_secs}", d.remaining)) {
        h.insert("ratelimit", v);
    }
}
