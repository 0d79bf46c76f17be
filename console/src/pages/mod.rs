//! The console's pages, one module per page (its routes, form structs and view structs), the
//! way the gateway has one module per resource. A handler does what a gateway handler does —
//! parse the form into a typed bus request, send it, map the reply — and then renders.

pub mod admins;
pub mod api_keys;
pub mod attendance;
pub mod corrections;
pub mod employees;
pub mod leave;
pub mod reports;
pub mod settings;
pub mod sign_in;
pub mod webhooks;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use clokio_bus::types::Timezone;

use crate::App;
use crate::error::PageError;
use crate::session::{Reveal, Session};

/// Pages of a signed-in admin (GET; they show the session's flash and reveal).
pub fn page_routes() -> Router<App> {
    Router::new()
        .merge(attendance::pages())
        .merge(corrections::pages())
        .merge(employees::pages())
        .merge(api_keys::pages())
        .merge(reports::pages())
        .merge(webhooks::pages())
        .merge(leave::pages())
        .merge(settings::pages())
        .merge(admins::pages())
        .merge(sign_in::pages())
}

/// Actions of a signed-in admin: forms (CSRF-checked), the live stream, downloads, and `/`,
/// which only redirects (so a flash waits for the page it leads to).
pub fn action_routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/attendance/today") }))
        .merge(attendance::actions())
        .merge(corrections::actions())
        .merge(employees::actions())
        .merge(api_keys::actions())
        .merge(reports::actions())
        .merge(webhooks::actions())
        .merge(leave::actions())
        .merge(settings::actions())
        .merge(admins::actions())
        .merge(sign_in::actions())
}

/// The sign-in pages, open to anyone.
pub fn public_routes() -> Router<App> {
    sign_in::public()
}

/// What every page of a signed-in admin shows around its content.
pub struct Chrome {
    /// The navigation section this page belongs to.
    pub section: &'static str,
    pub org_name: String,
    pub admin_name: String,
    pub csrf: String,
    pub flash: Option<String>,
    pub reveal: Option<Reveal>,
    pub css: &'static str,
    pub js: &'static str,
    pub icon: &'static str,
}

impl Chrome {
    pub fn new(s: &Session, section: &'static str) -> Self {
        Self {
            section,
            org_name: s.org_name.clone(),
            admin_name: s.admin_name.clone(),
            csrf: s.csrf.clone(),
            flash: s.flash.as_ref().map(|f| f.text.clone()),
            reveal: s.reveal.clone(),
            css: crate::assets::css(),
            js: crate::assets::js(),
            icon: crate::assets::icon(),
        }
    }

    /// What to know about the secret shown once (the product document's words for API keys).
    pub fn reveal_note(&self) -> &'static str {
        match self.reveal.as_ref().map(|r| r.what.as_str()) {
            Some("API key") => {
                "The API key is shown only once at creation time. If you lose it, you will need to create a new key. Keys are SHA-256 hashed in the database, so Clokio cannot retrieve the original key for you."
            }
            Some("Password") => "The password is shown only once. Give it to its owner securely.",
            Some("Signing secret") => {
                "The signing secret is shown only once. Store it where your endpoint checks webhook signatures."
            }
            _ => {
                "This one-time password is shown only once. Give it to its owner securely: it must be changed at the first sign-in."
            }
        }
    }

    /// `aria-current="page"` for the section's own navigation link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// Renders a page with 200.
pub fn render<T: Template>(page: &T) -> Result<Response, PageError> {
    render_status(StatusCode::OK, page)
}

/// Renders a page with `status` (a form shown again with its errors: 422 or 409).
pub fn render_status<T: Template>(status: StatusCode, page: &T) -> Result<Response, PageError> {
    match page.render() {
        Ok(html) => Ok((status, Html(html)).into_response()),
        Err(err) => {
            tracing::error!(%err, "template failed");
            Err(PageError::Internal)
        }
    }
}

/// An instant in the organization's zone, `HH:MM`.
pub fn hm(at: DateTime<Utc>, tz: Timezone) -> String {
    at.with_timezone(&tz.tz()).format("%H:%M").to_string()
}

/// An instant in UTC for places that show no organization zone, `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Hours with two decimals, as the API rounds them.
pub fn hours(h: f64) -> String {
    format!("{h:.2}")
}

/// Redirect after a successful POST (303: the browser GETs the target).
pub fn done(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Records a flash message, then redirects. A Redis outage loses only the message.
pub async fn done_with(app: &App, s: &Session, to: &str, message: &str) -> Response {
    if let Err(err) = app.sessions.flash(s, message).await {
        tracing::warn!(%err, "flash not stored");
    }
    done(to)
}

/// A page number from a query (1 when absent or not a positive number).
pub fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|p| *p >= 1 && *p <= 1_000_000)
        .unwrap_or(1)
}

/// Page links: which pages exist around `page` of `pages`.
pub struct Pager {
    pub page: u32,
    pub pages: u32,
    pub total: u64,
    /// The query string without `page`, to append page numbers to.
    pub base: String,
}

impl Pager {
    pub fn new(page: u32, per_page: u32, total: u64, base: String) -> Self {
        let pages = total.div_ceil(u64::from(per_page.max(1))).max(1) as u32;
        Self {
            page,
            pages,
            total,
            base,
        }
    }

    pub fn href(&self, page: u32) -> String {
        if self.base.is_empty() {
            format!("?page={page}")
        } else {
            format!("?{}&page={page}", self.base)
        }
    }

    pub fn prev(&self) -> Option<String> {
        (self.page > 1).then(|| self.href(self.page - 1))
    }

    pub fn next(&self) -> Option<String> {
        (self.page < self.pages).then(|| self.href(self.page + 1))
    }
}

/// A query string of the pairs whose value is not empty.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

/// A trimmed form value; blank is absent (as the API treats it).
pub fn opt(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// An optional `YYYY-MM-DD` form value of `field`.
pub fn opt_date(
    field: &'static str,
    value: &str,
) -> Result<Option<chrono::NaiveDate>, crate::error::Errors> {
    match opt(value) {
        None => Ok(None),
        Some(v) => chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
            .ok()
            .filter(|_| v.len() == 10)
            .map(Some)
            .ok_or_else(|| {
                crate::error::Errors::none().field(
                    field,
                    format!("The {field} field must be a valid date in YYYY-MM-DD format"),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagers() {
        let p = Pager::new(1, 50, 10_000, "status=active".into());
        assert_eq!(p.pages, 200);
        assert_eq!(p.prev(), None);
        assert_eq!(p.next().as_deref(), Some("?status=active&page=2"));
        let p = Pager::new(3, 50, 120, String::new());
        assert_eq!(p.pages, 3);
        assert_eq!(p.next(), None);
        assert_eq!(p.prev().as_deref(), Some("?page=2"));
        assert_eq!(Pager::new(1, 50, 0, String::new()).pages, 1);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("x")), 1);
        assert_eq!(page_number(Some("7")), 7);
        assert_eq!(query_string(&[("q", "a b"), ("status", "")]), "q=a+b");
    }
}
