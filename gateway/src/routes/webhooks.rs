//! `/api/v1/webhooks`: subscriptions, their secrets, test deliveries and the delivery log.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clokio_bus::ops::{
    CreatedWebhook, Delivery, DeliveryGetOp, DeliveryListOp, DeliveryListQuery, DeliveryPage,
    DeliveryRef, DeliveryRetryOp, Filters, Platform, TimeRange, WEBHOOK_EVENTS, Webhook,
    WebhookCreateOp, WebhookDeleteOp, WebhookFields, WebhookGetOp, WebhookListOp, WebhookListQuery,
    WebhookRef, WebhookRotateOp, WebhookTestOp, WebhookUpdateOp, WebhookWrite,
};
use clokio_bus::types::{LocalTime, Weekday};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{self, PageParams, forward_list};
use crate::request::{
    Body, Field, Flag, Params, Strings, Text, clearable, field, object, one_of, optional,
};
use crate::{App, RequestId};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::ArrayBuilder;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/webhooks/{id}/test", post(test))
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
            get(delivery),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry),
        )
}

fn webhook_id(s: &str) -> Result<Uuid, ApiError> {
    s.parse()
        .map_err(|_| ApiError::not_found("Webhook not found"))
}

/// A subscription's fields: what `create` takes.
#[derive(Deserialize, ToSchema)]
pub struct WebhookBody {
    /// `https` only; private, loopback, link-local and reserved addresses are refused.
    #[schema(value_type = String, pattern = r"^\s*[hH][tT][tT][pP][sS]?://[^\s/?#@]+")]
    url: Text<2048>,
    /// Default `generic`.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Platform>)]
    platform: Option<Text<32>>,
    #[schema(inline)]
    events: EventNames,
    #[serde(default, deserialize_with = "object")]
    filters: Option<FiltersBody>,
    /// The message chat platforms get (not `generic`), default
    /// `{employee_name} {event_type} at {location_name} ({timestamp})`. Placeholders:
    /// `{employee_name}` (`Sarah Johnson`), `{employee_code}` (`EMP-1042`), `{department}`
    /// (`Engineering`; empty when none), `{event}` (the type as the API names it: `clock-in`,
    /// `clock-out`, `break-start`, `break-end`, `correction`), `{event_type}` (the same in
    /// words: `clocked in`, `clocked out`, `started a break`, `ended a break`, `had a session
    /// corrected`), `{timestamp}` (org-local: `2026-02-12 10:55 IST`), `{location_name}`
    /// (`Main Office`). Any other `{…}` is refused.
    #[serde(default, deserialize_with = "clearable")]
    #[schema(value_type = Option<String>)]
    template: Option<Option<Text<2000>>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    active: Option<Flag>,
}

/// The fields of [`WebhookBody`] to change, each optional.
#[derive(Deserialize, ToSchema)]
pub struct WebhookPatchBody {
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<String>, pattern = r"^\s*[hH][tT][tT][pP][sS]?://[^\s/?#@]+")]
    url: Option<Text<2048>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Platform>)]
    platform: Option<Text<32>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    events: Option<EventNames>,
    #[serde(default, deserialize_with = "object")]
    filters: Option<FiltersBody>,
    /// As in `WebhookBody`; `null` restores the default.
    #[serde(default, deserialize_with = "clearable")]
    #[schema(value_type = Option<String>)]
    template: Option<Option<Text<2000>>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    active: Option<Flag>,
}

impl WebhookBody {
    fn fields(self) -> Result<WebhookFields, ApiError> {
        WebhookPatchBody {
            url: Some(self.url),
            platform: self.platform,
            events: Some(self.events),
            filters: self.filters,
            template: self.template,
            active: self.active,
        }
        .fields()
    }
}

impl WebhookPatchBody {
    fn fields(self) -> Result<WebhookFields, ApiError> {
        let platform = self
            .platform
            .map(|p| p.0.parse::<Platform>())
            .transpose()
            .map_err(ApiError::invalid)?;
        Ok(WebhookFields {
            url: self.url.map(|u| u.0),
            platform,
            events: self.events.map(|e| e.0),
            filters: self.filters.map(FiltersBody::filters).transpose()?,
            clear_template: matches!(self.template, Some(None)),
            template: self.template.flatten().map(|t| t.0),
            active: self.active.map(|a| a.0),
        })
    }
}

/// What a subscription lets through; a list left out means all.
#[derive(Deserialize, ToSchema)]
pub struct FiltersBody {
    /// Location names.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<String>>)]
    locations: Option<Strings<1000>>,
    /// Employee codes.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<String>>)]
    employees: Option<Strings<1000>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<String>>)]
    departments: Option<Strings<1000>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<Weekday>>)]
    days_of_week: Option<Strings<7>>,
    /// In the org's time zone.
    #[serde(default, deserialize_with = "object")]
    time_range: Option<TimeRangeBody>,
}

/// `HH:MM` to `HH:MM`, org-local; a range past midnight wraps.
#[derive(Deserialize, ToSchema)]
pub struct TimeRangeBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "09:00")]
    start: Value,
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "17:00")]
    end: Value,
}

impl FiltersBody {
    fn filters(self) -> Result<Filters, ApiError> {
        let names = |list: Option<Strings<1000>>| list.map(|l| l.0).unwrap_or_default();
        let days_of_week = self
            .days_of_week
            .map_or_else(Vec::new, |days| days.0)
            .iter()
            .map(|s| {
                Weekday::parse(s).ok_or_else(|| {
                    ApiError::invalid(
                        "The days_of_week field must only contain days of the week (monday … sunday)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time_range = self
            .time_range
            .map(|r| {
                Ok::<_, ApiError>(TimeRange {
                    start: time("start", r.start)?,
                    end: time("end", r.end)?,
                })
            })
            .transpose()?;
        Ok(Filters {
            locations: names(self.locations),
            employees: names(self.employees),
            departments: names(self.departments),
            days_of_week,
            time_range,
        })
    }
}

/// A time range's end: `HH:MM`.
fn time(name: &str, value: Value) -> Result<LocalTime, ApiError> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        _ => String::new(),
    };
    if text.is_empty() || text.chars().count() > 5 {
        return Err(ApiError::invalid(format!(
            "The time_range.{name} field is required (HH:MM)"
        )));
    }
    LocalTime::parse(&text).map_err(|_| {
        ApiError::invalid(format!(
            "The time_range.{name} field must be a time in HH:MM format"
        ))
    })
}

/// The events a webhook asks for, each one of `WEBHOOK_EVENTS` (webhook-svc checks which).
pub struct EventNames(Vec<String>);

impl Field for EventNames {
    fn read(value: Value) -> Result<Option<Self>, String> {
        Ok(Strings::<{ WEBHOOK_EVENTS.len() }>::read(value)?.map(|names| Self(names.0)))
    }
}
field!(
    EventNames,
    ArrayBuilder::new()
        .items(one_of(WEBHOOK_EVENTS.iter().copied()))
        .min_items(Some(1))
        .max_items(Some(WEBHOOK_EVENTS.len()))
);

/// Create a webhook subscription; the response shows its signing secret once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "Webhooks", request_body = WebhookBody,
    responses(
        (status = 201, body = Envelope<CreatedWebhook>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Body(body): Body<WebhookBody>,
) -> Result<Response, ApiError> {
    let req = WebhookWrite {
        org_id: auth.org_id,
        id: None,
        fields: body.fields()?,
    };
    forward::<WebhookCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Webhook created successfully",
    )
    .await
}

/// List the organization's webhooks (secrets as hints).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "Webhooks", params(PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<Webhook>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Params(page): Params<PageParams>,
) -> Result<Response, ApiError> {
    let req = WebhookListQuery {
        org_id: auth.org_id,
    };
    forward_list::<WebhookListOp>(&app, &rid, &req, page.page()?, &uri, RETRIEVED).await
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Envelope<Webhook>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn show(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = WebhookRef {
        org_id: auth.org_id,
        id: webhook_id(&id)?,
    };
    forward::<WebhookGetOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// Change a webhook; absent fields stay, `"template": null` restores the default, `"active": true`
/// switches back on one that was disabled.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "Webhooks", request_body = WebhookPatchBody,
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Envelope<Webhook>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn update(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    body: Result<Body<WebhookPatchBody>, ApiError>,
) -> Result<Response, ApiError> {
    let id = webhook_id(&id)?;
    let Body(body) = body?;
    let req = WebhookWrite {
        org_id: auth.org_id,
        id: Some(id),
        fields: body.fields()?,
    };
    forward::<WebhookUpdateOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Webhook updated successfully",
    )
    .await
}

/// Delete a webhook and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Envelope<Object>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn remove(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = WebhookRef {
        org_id: auth.org_id,
        id: webhook_id(&id)?,
    };
    forward::<WebhookDeleteOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Webhook deleted successfully",
    )
    .await
}

/// Send a sample clock-in to the webhook now; returns the delivery to follow in the log.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 202, body = Envelope<Delivery>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn test(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = WebhookRef {
        org_id: auth.org_id,
        id: webhook_id(&id)?,
    };
    forward::<WebhookTestOp>(
        &app,
        &rid,
        &req,
        StatusCode::ACCEPTED,
        "Test delivery queued",
    )
    .await
}

/// A new signing secret, shown once; the old one also signs for 24 hours.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Envelope<CreatedWebhook>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn rotate(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = WebhookRef {
        org_id: auth.org_id,
        id: webhook_id(&id)?,
    };
    forward::<WebhookRotateOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Secret rotated successfully",
    )
    .await
}

fn page_param(q: &HashMap<String, String>, name: &str, default: u32) -> Result<u32, ApiError> {
    let raw = q.get(name).map(String::as_str);
    Ok(paging::positive(raw, name, paging::MAX_PAGE)?.unwrap_or(default))
}

/// The webhook's deliveries, newest first (`page`, `per_page` up to 100).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid),
        ("page" = Option<u32>, Query, minimum = 1), ("per_page" = Option<u32>, Query, minimum = 1, description = "At most 100 are returned")),
    responses((status = 200, body = Envelope<DeliveryPage>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn deliveries(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = DeliveryListQuery {
        org_id: auth.org_id,
        webhook_id: webhook_id(&id)?,
        page: page_param(&q, "page", 1)?,
        per_page: page_param(&q, "per_page", 20)?.min(100),
    };
    forward::<DeliveryListOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

fn delivery_ref(auth: &Auth, id: &str, delivery: &str) -> Result<DeliveryRef, ApiError> {
    Ok(DeliveryRef {
        org_id: auth.org_id,
        webhook_id: webhook_id(id)?,
        delivery_id: delivery
            .parse()
            .map_err(|_| ApiError::not_found("Delivery not found"))?,
    })
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid), ("delivery_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Envelope<Delivery>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn delivery(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let req = delivery_ref(&auth, &id, &delivery_id)?;
    forward::<DeliveryGetOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// Send a delivery again now; the attempt is logged as `manual`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "Webhooks",
    params(("id" = String, Path, format = Uuid), ("delivery_id" = String, Path, format = Uuid)),
    responses((status = 202, body = Envelope<Delivery>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn retry(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let req = delivery_ref(&auth, &id, &delivery_id)?;
    forward::<DeliveryRetryOp>(&app, &rid, &req, StatusCode::ACCEPTED, "Retry queued").await
}
