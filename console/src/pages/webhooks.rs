//! Webhooks: the organization's subscriptions; create and edit (URL, platform, events, every
//! filter, the message template with a live preview of what a sample clock-in would send); send
//! a test; rotate the signing secret (shown once); switch on and off; delete. Webhooks > Delivery
//! Log: deliveries newest first with their status and attempts, each attempt's time, status code,
//! latency, error and response excerpt, and "Retry now". The operations of `/api/v1/webhooks`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use clokio_bus::ops::{
    Delivery, DeliveryGetOp, DeliveryListOp, DeliveryListQuery, DeliveryRef, DeliveryRetryOp,
    Filters, LocationListOp, OrgRef, Platform, TimeRange, WEBHOOK_EVENTS, Webhook, WebhookCreateOp,
    WebhookDeleteOp, WebhookFields, WebhookGetOp, WebhookListOp, WebhookListQuery, WebhookPreview,
    WebhookPreviewOp, WebhookPreviewed, WebhookRef, WebhookRotateOp, WebhookTestOp,
    WebhookUpdateOp, WebhookWrite,
};
use clokio_bus::types::{LocalTime, Weekday};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, Pager, opt, page_number, render, render_status, utc};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new()
        .route("/webhooks", get(list))
        .route("/webhooks/new", get(new))
        .route("/webhooks/{id}", get(edit))
        .route("/webhooks/{id}/delete", get(confirm_delete))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery}", get(delivery))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/webhooks", post(create))
        .route("/webhooks/preview", post(preview))
        .route("/webhooks/{id}", post(update))
        .route("/webhooks/{id}/test", post(test))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/active", post(set_active))
        .route("/webhooks/{id}/delete", post(delete))
        .route("/webhooks/{id}/deliveries/{delivery}/retry", post(retry))
}

pub const PLATFORMS: [(&str, &str); 5] = [
    ("generic", "Generic HTTPS endpoint (JSON, signed)"),
    ("slack", "Slack"),
    ("teams", "Microsoft Teams"),
    ("discord", "Discord"),
    ("google_chat", "Google Chat"),
];

const DAYS: [(&str, &str); 7] = [
    ("monday", "Mon"),
    ("tuesday", "Tue"),
    ("wednesday", "Wed"),
    ("thursday", "Thu"),
    ("friday", "Fri"),
    ("saturday", "Sat"),
    ("sunday", "Sun"),
];

fn webhook_id(id: &str) -> Result<Uuid, PageError> {
    id.parse().map_err(|_| PageError::NotFound)
}

/// The subscription form, as typed. Checkboxes repeat their name once per ticked box.
#[derive(Clone, Debug, Default)]
pub struct WebhookForm {
    pub url: String,
    pub platform: String,
    pub events: Vec<String>,
    pub locations: Vec<String>,
    pub employees: String,
    pub departments: String,
    pub days: Vec<String>,
    pub time_start: String,
    pub time_end: String,
    pub template: String,
    pub active: bool,
    /// `preview` shows what would be sent instead of saving.
    pub action: String,
}

impl WebhookForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "url" => f.url = v,
                "platform" => f.platform = v,
                "events" => f.events.push(v),
                "locations" => f.locations.push(v),
                "employees" => f.employees = v,
                "departments" => f.departments = v,
                "days_of_week" => f.days.push(v),
                "time_start" => f.time_start = v,
                "time_end" => f.time_end = v,
                "template" => f.template = v,
                "active" => f.active = v == "true",
                "action" => f.action = v,
                _ => {}
            }
        }
        f
    }

    fn of(w: &Webhook) -> Self {
        let f = &w.filters;
        Self {
            url: w.url.clone(),
            platform: w.platform.as_str().to_owned(),
            events: w.events.clone(),
            locations: f.locations.clone(),
            employees: f.employees.join(", "),
            departments: f.departments.join(", "),
            days: f
                .days_of_week
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect(),
            time_start: f
                .time_range
                .as_ref()
                .map(|r| r.start.to_string())
                .unwrap_or_default(),
            time_end: f
                .time_range
                .as_ref()
                .map(|r| r.end.to_string())
                .unwrap_or_default(),
            template: w.template.clone().unwrap_or_default(),
            active: w.active,
            action: String::new(),
        }
    }

    fn new() -> Self {
        Self {
            platform: "generic".to_owned(),
            events: WEBHOOK_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
            active: true,
            ..Self::default()
        }
    }

    pub fn has_event(&self, e: &str) -> bool {
        self.events.iter().any(|x| x == e)
    }

    pub fn has_location(&self, l: &str) -> bool {
        self.locations.iter().any(|x| x == l)
    }

    pub fn has_day(&self, d: &str) -> bool {
        self.days.iter().any(|x| x == d)
    }

    fn platform(&self) -> Result<Platform, Errors> {
        self.platform
            .parse::<Platform>()
            .map_err(|m| Errors::none().field("platform", m))
    }

    fn fields(&self) -> Result<WebhookFields, Errors> {
        let list = |text: &str, by_space: bool| -> Vec<String> {
            text.split(|c: char| c == ',' || c == '\n' || (by_space && c.is_whitespace()))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let days_of_week = self
            .days
            .iter()
            .map(|d| {
                Weekday::parse(d).ok_or_else(|| {
                    Errors::none().field(
                        "days_of_week",
                        "The days_of_week field must only contain days of the week (monday … sunday)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |field: &'static str, v: &str| {
            LocalTime::parse(v.trim()).map_err(|_| {
                Errors::none().field(
                    field,
                    format!("The {field} field must be a time in HH:MM format"),
                )
            })
        };
        let time_range = match (opt(&self.time_start), opt(&self.time_end)) {
            (None, None) => None,
            (Some(start), Some(end)) => Some(TimeRange {
                start: time("time_range.start", &start)?,
                end: time("time_range.end", &end)?,
            }),
            (None, Some(_)) => {
                return Err(Errors::none().field(
                    "time_range.start",
                    "The time_range.start field is required (HH:MM)",
                ));
            }
            (Some(_), None) => {
                return Err(Errors::none().field(
                    "time_range.end",
                    "The time_range.end field is required (HH:MM)",
                ));
            }
        };
        let template = opt(&self.template);
        Ok(WebhookFields {
            url: opt(&self.url),
            platform: Some(self.platform()?),
            events: Some(self.events.clone()),
            filters: Some(Filters {
                locations: self.locations.clone(),
                employees: list(&self.employees, true),
                departments: list(&self.departments, false),
                days_of_week,
                time_range,
            }),
            clear_template: template.is_none(),
            template,
            active: Some(self.active),
        })
    }
}

const FIELDS: &[&str] = &[
    "url",
    "platform",
    "events",
    "filters",
    "locations",
    "employees",
    "departments",
    "days_of_week",
    "time_range.start",
    "time_range.end",
    "time_range",
    "template",
];

pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub platform: &'static str,
    pub events: String,
    pub active: bool,
    pub disabled_reason: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    chrome: Chrome,
    webhooks: Vec<WebhookRow>,
}

/// `GET /webhooks`.
async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    let hooks = app
        .bus
        .call::<WebhookListOp>(&WebhookListQuery { org_id: s.org_id })
        .await?;
    render(&ListPage {
        chrome: Chrome::new(&s, "webhooks"),
        webhooks: hooks
            .iter()
            .map(|w| WebhookRow {
                id: w.id.to_string(),
                url: w.url.clone(),
                platform: platform_label(w.platform),
                events: w.events.join(", "),
                active: w.active,
                disabled_reason: w.disabled_reason.clone().unwrap_or_default(),
            })
            .collect(),
    })
}

fn platform_label(p: Platform) -> &'static str {
    PLATFORMS
        .iter()
        .find(|(v, _)| *v == p.as_str())
        .map_or("", |(_, label)| *label)
}

#[derive(Template)]
#[template(path = "webhook_form.html")]
struct FormPage {
    chrome: Chrome,
    /// None while creating.
    webhook: Option<Webhook>,
    form: WebhookForm,
    errors: Errors,
    platforms: [(&'static str, &'static str); 5],
    events: &'static [&'static str],
    days: [(&'static str, &'static str); 7],
    locations: Vec<String>,
    preview: Option<WebhookPreviewed>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.webhook {
            Some(w) => format!("/webhooks/{}", w.id),
            None => "/webhooks".to_owned(),
        }
    }
}

async fn form_page(
    app: &App,
    s: &Session,
    webhook: Option<Webhook>,
    form: WebhookForm,
    errors: Errors,
    preview: Option<WebhookPreviewed>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let locations = app
        .bus
        .call::<LocationListOp>(&OrgRef { org_id: s.org_id })
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    render_status(
        status,
        &FormPage {
            chrome: Chrome::new(s, "webhooks"),
            webhook,
            form,
            errors,
            platforms: PLATFORMS,
            events: WEBHOOK_EVENTS,
            days: DAYS,
            locations,
            preview,
        },
    )
}

/// `GET /webhooks/new`.
async fn new(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    form_page(
        &app,
        &s,
        None,
        WebhookForm::new(),
        Errors::none(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `GET /webhooks/{id}`: the subscription, its form and its actions.
async fn edit(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let w = fetch(&app, &s, &id).await?;
    let form = WebhookForm::of(&w);
    form_page(
        &app,
        &s,
        Some(w),
        form,
        Errors::none(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn fetch(app: &App, s: &Session, id: &str) -> Result<Webhook, PageError> {
    Ok(app
        .bus
        .call::<WebhookGetOp>(&WebhookRef {
            org_id: s.org_id,
            id: webhook_id(id)?,
        })
        .await?)
}

/// What a sample clock-in would look like, or the template's mistake.
async fn previewed(
    app: &App,
    s: &Session,
    form: &WebhookForm,
) -> Result<Result<WebhookPreviewed, Errors>, PageError> {
    let platform = match form.platform() {
        Ok(p) => p,
        Err(errors) => return Ok(Err(errors)),
    };
    let req = WebhookPreview {
        org_id: s.org_id,
        platform,
        template: opt(&form.template),
    };
    match app.bus.call::<WebhookPreviewOp>(&req).await {
        Ok(p) => Ok(Ok(p)),
        Err(err) => refusal(err, &["template", "platform"]).map(|(_, e)| Err(e)),
    }
}

/// Saves (create or update) or, with `action=preview`, shows the form again with the preview.
async fn save(
    app: &App,
    s: &Session,
    existing: Option<Webhook>,
    form: WebhookForm,
) -> Result<Response, PageError> {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    if form.action == "preview" {
        return match previewed(app, s, &form).await? {
            Ok(p) => {
                form_page(
                    app,
                    s,
                    existing,
                    form,
                    Errors::none(),
                    Some(p),
                    StatusCode::OK,
                )
                .await
            }
            Err(errors) => form_page(app, s, existing, form, errors, None, unprocessable).await,
        };
    }
    let fields = match form.fields() {
        Ok(fields) => fields,
        Err(errors) => return form_page(app, s, existing, form, errors, None, unprocessable).await,
    };
    let write = WebhookWrite {
        org_id: s.org_id,
        id: existing.as_ref().map(|w| w.id),
        fields,
    };
    let saved = match &existing {
        None => app
            .bus
            .call::<WebhookCreateOp>(&write)
            .await
            .map(|c| (c.webhook, Some(c.secret))),
        Some(_) => app
            .bus
            .call::<WebhookUpdateOp>(&write)
            .await
            .map(|w| (w, None)),
    };
    match saved {
        Ok((w, Some(secret))) => {
            app.sessions
                .reveal(s, "Webhook created.", "Signing secret", &w.url, &secret)
                .await
                .map_err(|_| PageError::Unavailable)?;
            Ok(super::done(&format!("/webhooks/{}", w.id)))
        }
        Ok((w, None)) => {
            Ok(super::done_with(app, s, &format!("/webhooks/{}", w.id), "Webhook saved.").await)
        }
        Err(err) => {
            let (status, errors) = refusal(err, FIELDS)?;
            form_page(app, s, existing, form, errors, None, status).await
        }
    }
}

/// `POST /webhooks`.
async fn create(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    save(&app, &s, None, WebhookForm::from_pairs(pairs)).await
}

/// `POST /webhooks/{id}`.
async fn update(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let existing = fetch(&app, &s, &id).await?;
    save(&app, &s, Some(existing), WebhookForm::from_pairs(pairs)).await
}

#[derive(Deserialize)]
pub struct PreviewForm {
    #[serde(default)]
    platform: String,
    #[serde(default)]
    template: String,
}

/// `POST /webhooks/preview` (the form's script): `{"text", "body"}`, or `{"error"}` with 422.
async fn preview(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<PreviewForm>,
) -> Result<Response, PageError> {
    let form = WebhookForm {
        platform: f.platform,
        template: f.template,
        ..WebhookForm::default()
    };
    Ok(match previewed(&app, &s, &form).await? {
        Ok(p) => Json(serde_json::json!({"text": p.text, "body": p.body})).into_response(),
        Err(errors) => {
            let message = errors
                .get("template")
                .or(errors.get("platform"))
                .or(errors.general.as_deref())
                .unwrap_or_default()
                .to_owned();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({"error": message})),
            )
                .into_response()
        }
    })
}

fn webhook_ref(s: &Session, id: &str) -> Result<WebhookRef, PageError> {
    Ok(WebhookRef {
        org_id: s.org_id,
        id: webhook_id(id)?,
    })
}

/// `POST /webhooks/{id}/test`: a sample clock-in, to follow in the delivery log.
async fn test(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let d = app
        .bus
        .call::<WebhookTestOp>(&webhook_ref(&s, &id)?)
        .await?;
    let to = format!("/webhooks/{}/deliveries/{}", d.webhook_id, d.id);
    Ok(super::done_with(&app, &s, &to, "Test delivery queued.").await)
}

/// `POST /webhooks/{id}/rotate-secret`: the new secret once; the old one signs for 24 hours more.
async fn rotate(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let c = app
        .bus
        .call::<WebhookRotateOp>(&webhook_ref(&s, &id)?)
        .await?;
    app.sessions
        .reveal(
            &s,
            "Secret rotated. The previous secret also signs for 24 hours.",
            "Signing secret",
            &c.webhook.url,
            &c.secret,
        )
        .await
        .map_err(|_| PageError::Unavailable)?;
    Ok(super::done(&format!("/webhooks/{}", c.webhook.id)))
}

#[derive(Deserialize)]
pub struct ActiveForm {
    #[serde(default)]
    active: String,
}

/// `POST /webhooks/{id}/active`: switch on (also one Clokio switched off) or off.
async fn set_active(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<ActiveForm>,
) -> Result<Response, PageError> {
    let active = f.active == "true";
    let w = app
        .bus
        .call::<WebhookUpdateOp>(&WebhookWrite {
            org_id: s.org_id,
            id: Some(webhook_id(&id)?),
            fields: WebhookFields {
                active: Some(active),
                ..WebhookFields::default()
            },
        })
        .await?;
    let message = if active {
        "Webhook enabled."
    } else {
        "Webhook disabled."
    };
    Ok(super::done_with(&app, &s, &format!("/webhooks/{}", w.id), message).await)
}

#[derive(Template)]
#[template(path = "webhook_delete.html")]
struct DeletePage {
    chrome: Chrome,
    webhook: Webhook,
}

async fn confirm_delete(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let webhook = fetch(&app, &s, &id).await?;
    render(&DeletePage {
        chrome: Chrome::new(&s, "webhooks"),
        webhook,
    })
}

/// `POST /webhooks/{id}/delete`: the subscription and its delivery log.
async fn delete(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    app.bus
        .call::<WebhookDeleteOp>(&webhook_ref(&s, &id)?)
        .await?;
    Ok(super::done_with(&app, &s, "/webhooks", "Webhook deleted.").await)
}

/// Deliveries per page of the log.
const PER_PAGE: u32 = 25;

pub struct DeliveryRow {
    pub id: String,
    pub created: String,
    pub event: String,
    pub status: String,
    pub attempts: u32,
    pub next: String,
}

impl From<&Delivery> for DeliveryRow {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            created: utc(d.created_at),
            event: d.event_type.clone(),
            status: d.status.clone(),
            attempts: d.attempt_count,
            next: d.next_attempt_at.map(utc).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct LogPage {
    chrome: Chrome,
    webhook: Webhook,
    deliveries: Vec<DeliveryRow>,
    pager: Pager,
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

/// `GET /webhooks/{id}/deliveries`: Webhooks > Delivery Log, newest first.
async fn deliveries(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let webhook = fetch(&app, &s, &id).await?;
    let page = page_number(q.page.as_deref());
    let log = app
        .bus
        .call::<DeliveryListOp>(&DeliveryListQuery {
            org_id: s.org_id,
            webhook_id: webhook.id,
            page,
            per_page: PER_PAGE,
        })
        .await?;
    render(&LogPage {
        chrome: Chrome::new(&s, "webhooks"),
        webhook,
        deliveries: log.deliveries.iter().map(DeliveryRow::from).collect(),
        pager: Pager::new(page, PER_PAGE, log.total, String::new()),
    })
}

pub struct AttemptRow {
    pub at: String,
    pub trigger: String,
    pub status_code: String,
    pub latency_ms: u64,
    pub error: String,
    pub response: String,
    pub ok: bool,
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    webhook: Webhook,
    delivery: DeliveryRow,
    attempts: Vec<AttemptRow>,
}

fn delivery_ref(s: &Session, id: &str, delivery: &str) -> Result<DeliveryRef, PageError> {
    Ok(DeliveryRef {
        org_id: s.org_id,
        webhook_id: webhook_id(id)?,
        delivery_id: delivery.parse().map_err(|_| PageError::NotFound)?,
    })
}

/// `GET /webhooks/{id}/deliveries/{delivery}`: every attempt.
async fn delivery(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let r = delivery_ref(&s, &id, &delivery)?;
    let webhook = fetch(&app, &s, &id).await?;
    let d = app.bus.call::<DeliveryGetOp>(&r).await?;
    let attempts = d
        .attempts
        .iter()
        .flatten()
        .map(|a| AttemptRow {
            at: utc(a.at),
            trigger: a.trigger.clone(),
            status_code: if a.status_code == 0 {
                "—".to_owned()
            } else {
                a.status_code.to_string()
            },
            latency_ms: a.latency_ms,
            error: a.error.clone().unwrap_or_default(),
            response: a.response_body.clone(),
            ok: a.error.is_none(),
        })
        .collect();
    render(&DeliveryPage {
        chrome: Chrome::new(&s, "webhooks"),
        webhook,
        delivery: (&d).into(),
        attempts,
    })
}

/// `POST /webhooks/{id}/deliveries/{delivery}/retry`: "Retry now".
async fn retry(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let d = app
        .bus
        .call::<DeliveryRetryOp>(&delivery_ref(&s, &id, &delivery)?)
        .await?;
    let to = format!("/webhooks/{}/deliveries/{}", d.webhook_id, d.id);
    Ok(super::done_with(&app, &s, &to, "Retry queued: a new attempt is on its way.").await)
}
