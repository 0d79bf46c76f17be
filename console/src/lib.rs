//! The admin console: a second edge beside the gateway, for people. An organization's admins sign
//! in with email and password and do in the browser what the product document describes (Admin >
//! API Keys, Webhooks > Delivery Log, Reports > Monthly Summary > Export CSV), plus employees,
//! live attendance, leave and settings. Every action is the bus operation the public API uses,
//! with the same validation and the same events; rules stay in the services. Its only state of
//! its own is sessions and sign-in throttles, in Redis.
//!
//! Pages are rendered on the server from templates compiled into the binary; every form works
//! without JavaScript (POST, redirect, GET). The few lines of script only enhance: the live
//! board (Server-Sent Events), copy buttons, the webhook template preview.

mod assets;
mod config;
mod error;
mod live;
mod pages;
mod security;
mod session;
mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use clokio_bus::ids::{EmployeeId, OrgId};
use clokio_bus::ops::{Admin, AdminGetOp, AdminRef};
use clokio_bus::{Bus, BusError, ErrorCode};
use clokio_runtime::redis::LazyRedis;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

use error::PageError;
use live::LiveHub;
use session::{Session, SessionStore};
use throttle::Throttle;

/// State shared by every handler.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub(crate) bus: Bus,
    /// For the operations that hash or verify a password (seconds on a busy machine).
    pub(crate) slow_bus: Bus,
    pub(crate) sessions: SessionStore,
    pub(crate) throttle: Throttle,
    pub(crate) redis: Arc<LazyRedis>,
    /// Admins as employee-svc last described them, for `admin_check` at most.
    pub(crate) admins: moka::sync::Cache<(OrgId, EmployeeId), Arc<Admin>>,
    pub(crate) live: Arc<LiveHub>,
    pub(crate) config: Config,
    /// The session cookie's name.
    pub(crate) cookie: &'static str,
    /// Turns true when the console shuts down: live streams end so the drain can finish.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Whether the session's admin is still an active admin with the credentials it signed in
    /// with. Asked of employee-svc at most once per `admin_check` per admin.
    pub(crate) async fn admin_valid(&self, s: &Session) -> Result<bool, BusError> {
        let key = (s.org_id, s.admin_id);
        let admin = match self.admins.get(&key) {
            Some(admin) => admin,
            None => {
                let req = AdminRef {
                    org_id: s.org_id,
                    employee_id: s.admin_id,
                };
                match self.bus.call::<AdminGetOp>(&req).await {
                    Ok(admin) => {
                        let admin = Arc::new(admin);
                        self.admins.insert(key, admin.clone());
                        admin
                    }
                    Err(err) if err.code == ErrorCode::NotFound => return Ok(false),
                    Err(err) => return Err(err),
                }
            }
        };
        Ok(admin.status == clokio_bus::types::EmployeeStatus::Active
            && admin.credentials_version == s.credentials_version)
    }

    /// Forget what is known of an admin (after this console changed them).
    pub(crate) fn admin_changed(&self, org: OrgId, admin: EmployeeId) {
        self.admins.invalidate(&(org, admin));
    }
}

/// Serves the console on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clokio_runtime::telemetry::metrics_handle();
    let nats = clokio_runtime::connect_nats(&config.bus, "console").await?;
    let bus = Bus::new(
        nats.clone(),
        config.bus.subjects.clone(),
        config.bus.request_timeout,
    );
    let redis = Arc::new(LazyRedis::new(&config.redis_url, Duration::from_secs(2))?);
    let prefix = config.bus.subjects.prefix().to_string();
    let (stop_tx, stopping) = watch::channel(false);
    let live = LiveHub::start(bus.clone()).await?;
    let mut background = vec![];
    if let Some(addr) = config.ops_addr {
        let readiness = clokio_runtime::ops_port::Readiness::new()
            .nats(nats.clone())
            .redis(redis.clone());
        background.push(clokio_runtime::ops_port::start(addr, "console", readiness).await?);
    }
    let app = App(Arc::new(AppInner {
        slow_bus: bus.with_timeout(config.bus.request_timeout.max(Duration::from_secs(15))),
        bus,
        sessions: SessionStore::new(
            redis.clone(),
            &prefix,
            config.session_idle,
            config.session_max,
        ),
        throttle: Throttle::new(
            redis.clone(),
            &prefix,
            config.signin_window,
            config.signin_account_limit,
            config.signin_address_limit,
        ),
        redis,
        admins: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(config.admin_check)
            .build(),
        live: live.clone(),
        cookie: session::cookie_name(config.https()),
        config,
        stopping,
    }));
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let listener = clokio_runtime::http::nodelay(listener);
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    live.stop();
    for task in background {
        task.abort();
    }
    let _ = nats.flush().await;
    Ok(())
}

/// The whole console.
pub fn router(app: App) -> Router {
    // Pages a signed-in admin reads: they take the session's flash and reveal.
    let pages = pages::page_routes().route_layer(middleware::from_fn_with_state(
        app.clone(),
        security::signed_in_page,
    ));
    // Everything else of a signed-in admin: forms (CSRF-checked), the live stream, downloads.
    let actions = pages::action_routes()
        .route_layer(middleware::from_fn_with_state(app.clone(), security::csrf))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            security::signed_in_action,
        ));
    Router::new()
        .merge(pages)
        .merge(actions)
        .merge(pages::public_routes())
        .route("/assets/{name}", axum::routing::get(assets::serve))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { PageError::NotFound })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            PageError::Internal.into_response()
        }))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(request_context))
        .with_state(app)
}

/// Outermost: the security headers every response carries, metrics and the access log.
async fn request_context(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let mut res = next.run(req).await;
    // What axum itself refused (a form that does not parse, a wrong method) still gets a page
    // that says so; the preview's JSON stays JSON.
    if res.status().as_u16() >= 400 && !is_html_or_json(&res) {
        res = PageError::Status(res.status()).into_response();
    }
    security::headers(res.headers_mut());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("clokio_console_requests_total",
        "route" => route.clone(), "method" => method, "status" => status.to_string())
    .increment(1);
    metrics::histogram!("clokio_console_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if status >= 500 {
        tracing::warn!(%method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    res
}

fn is_html_or_json(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html") || v.starts_with("application/json"))
}

/// `Cache-Control: no-store`: what a signed-in admin sees stays out of every cache, so Back
/// after signing out shows nothing.
pub(crate) fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
