//! What keeps a browser session safe: the headers every response carries (a strict CSP with no
//! inline script and no other origin, no framing, no referrer leaving the site), the signed-in
//! check of every page and action, and the CSRF check of every state-changing request (the
//! session's token and a same-origin `Origin`, else 403).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::PageError;
use crate::session::{self, Session, constant_time_eq};
use crate::{App, Config, no_store};

/// The policy of every response: our own scripts, styles, images and connections only; forms
/// post only here; no page of ours in a frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers of every response.
pub fn headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The form field that carries the CSRF token (and the header scripts use instead).
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether the request's `Origin` is the console's own: the configured public URL's, else the
/// request's own host. A missing or `null` Origin is not.
pub fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::config::origin_of)
    else {
        return false;
    };
    match &config.public_origin {
        Some(expected) => &origin == expected,
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase);
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            host.is_some() && origin_host == host.as_deref()
        }
    }
}

/// The client's address for sign-in throttling: the TCP peer, or behind a trusted proxy the last
/// `X-Forwarded-For` entry (the one the proxy added).
pub fn client_address(
    config: &Config,
    req_headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> String {
    if config.trust_forwarded
        && let Some(last) = req_headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
    {
        return last.to_owned();
    }
    peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string())
}

/// Routes a page: the session's flash and reveal are taken for it.
pub async fn signed_in_page(State(app): State<App>, req: Request, next: Next) -> Response {
    signed_in(app, req, next, true).await
}

/// Routes an action (a form post, the live stream, a download).
pub async fn signed_in_action(State(app): State<App>, req: Request, next: Next) -> Response {
    signed_in(app, req, next, false).await
}

/// A signed-in admin's request: a live session whose admin is still an active admin with the
/// same credentials, else the sign-in page. Until a one-time password is changed, only the
/// password page (and signing out) is open. Every answer is `no-store`.
async fn signed_in(app: App, mut req: Request, next: Next, page: bool) -> Response {
    let id = session::cookie(req.headers(), app.cookie).map(str::to_owned);
    let take = page && req.method() == Method::GET;
    let session = match id {
        None => None,
        Some(id) => match app.sessions.load(&id, take).await {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%err, "sessions unreachable");
                return PageError::Unavailable.into_response();
            }
        },
    };
    let Some(session) = session else {
        return to_sign_in(&app, &req);
    };
    match app.admin_valid(&session).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = app.sessions.destroy(&session.key).await;
            return to_sign_in(&app, &req);
        }
        Err(err) => return PageError::from(err).into_response(),
    }
    let path = req.uri().path();
    if session.must_change_password && path != "/account/password" && path != "/sign-out" {
        let mut res = Redirect::to("/account/password").into_response();
        no_store(&mut res);
        return res;
    }
    req.extensions_mut().insert(session);
    let mut res = next.run(req).await;
    no_store(&mut res);
    res
}

/// Not signed in: pages go to the sign-in page (and come back after it), the live stream and
/// scripts get 401, and a stale cookie is dropped.
fn to_sign_in(app: &App, req: &Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
    let mut res = if req.method() == Method::GET && wants_html {
        let here = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let target = if here == "/" {
            "/sign-in".to_owned()
        } else {
            // askama's filter: everything but letters, digits and `/` percent-encoded.
            let next = askama::filters::urlencode(&here)
                .map(|n| n.to_string())
                .unwrap_or_default();
            format!("/sign-in?next={next}")
        };
        Redirect::to(&target).into_response()
    } else if req.method() == Method::GET {
        (StatusCode::UNAUTHORIZED, "Signed out").into_response()
    } else {
        Redirect::to("/sign-in").into_response()
    };
    if session::cookie(req.headers(), app.cookie).is_some()
        && let Ok(v) = HeaderValue::from_str(&session::set_cookie(
            app.cookie,
            "",
            app.config.https(),
            None,
        ))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    no_store(&mut res);
    res
}

/// Browsers drop tabs and line breaks from a URL, so only visible ASCII is let through (`/\t/x`
/// would otherwise become `//x`).
pub fn local_target(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The most a form body may carry.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Every state-changing request of a session: a same-origin `Origin` and the session's CSRF
/// token (the `_csrf` form field, or the `X-CSRF-Token` header of a script), else 403.
pub async fn csrf(State(app): State<App>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return PageError::Forbidden.into_response();
    };
    if !same_origin(&app.config, req.headers()) {
        tracing::info!("form refused: not from the console's origin");
        return PageError::Forbidden.into_response();
    }
    let header_token = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return PageError::TooLarge.into_response();
    };
    let token = header_token.or_else(|| form_field(&bytes, CSRF_FIELD));
    if !token.is_some_and(|t| constant_time_eq(&t, &session.csrf)) {
        tracing::info!("form refused: missing or wrong CSRF token");
        return PageError::Forbidden.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The first value of `name` in a URL-encoded form body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public: Option<&str>) -> Config {
        let mut c = clokio_runtime::config::from_env::<Config>().unwrap();
        c.public_origin = public.map(str::to_owned);
        c
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins_must_be_the_consoles_own() {
        let c = config(None);
        assert!(same_origin(
            &c,
            &headers(&[
                ("host", "127.0.0.1:8081"),
                ("origin", "http://127.0.0.1:8081")
            ])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[("host", "127.0.0.1:8081"), ("origin", "http://evil.test")])
        ));
        assert!(!same_origin(&c, &headers(&[("host", "127.0.0.1:8081")])));
        assert!(!same_origin(
            &c,
            &headers(&[("host", "127.0.0.1:8081"), ("origin", "null")])
        ));
        let c = config(Some("https://admin.example.com"));
        assert!(same_origin(
            &c,
            &headers(&[
                ("host", "internal:8081"),
                ("origin", "https://admin.example.com")
            ])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[
                ("host", "admin.example.com"),
                ("origin", "http://admin.example.com")
            ])
        ));
    }

    #[test]
    fn next_targets_stay_on_the_site() {
        assert_eq!(local_target(Some("/employees?page=2")), "/employees?page=2");
        assert_eq!(local_target(Some("//evil.test/")), "/");
        assert_eq!(local_target(Some("https://evil.test/")), "/");
        assert_eq!(local_target(Some("/\\evil.test")), "/");
        assert_eq!(local_target(Some("/\t/evil.test")), "/");
        assert_eq!(local_target(Some("/\n/evil.test")), "/");
        assert_eq!(local_target(Some("/ /evil.test")), "/");
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn forwarded_addresses_only_when_trusted() {
        let mut c = config(None);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2")]);
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 5)));
        assert_eq!(client_address(&c, &h, peer), "10.0.0.1");
        c.trust_forwarded = true;
        assert_eq!(client_address(&c, &h, peer), "2.2.2.2");
    }

    #[test]
    fn form_fields() {
        assert_eq!(
            form_field(b"a=1&_csrf=x%2By&b=2", "_csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1", "_csrf"), None);
    }
}
