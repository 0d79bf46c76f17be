//! The delivery log through the API: deliveries newest first (paged), one with every attempt, a
//! manual retry, and a test delivery of a sample event.

use chrono::Utc;
use clokio_bus::BusError;
use clokio_bus::ops::{
    Attempt, Delivery, DeliveryListQuery, DeliveryPage, DeliveryRef, WebhookRef,
};
use uuid::Uuid;

use crate::deliver::{Trigger, enqueue};
use crate::{State, db, render, subs};

pub async fn list(state: &State, q: DeliveryListQuery) -> db::Result<DeliveryPage> {
    subs::fetch(state, q.org_id, q.webhook_id).await?;
    let per_page = q.per_page.clamp(1, 100);
    let page = q.page.max(1);
    let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = $1 \
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    ))
    .bind(q.webhook_id)
    .bind(i64::from(per_page))
    .bind(i64::from(page - 1) * i64::from(per_page))
    .fetch_all(&state.pool)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM deliveries WHERE subscription_id = $1")
            .bind(q.webhook_id)
            .fetch_one(&state.pool)
            .await?;
    Ok(DeliveryPage {
        deliveries: rows.into_iter().map(DeliveryRow::view).collect(),
        page,
        per_page,
        total: total.max(0) as u64,
    })
}

async fn fetch(state: &State, r: &DeliveryRef) -> db::Result<Delivery> {
    subs::fetch(state, r.org_id, r.webhook_id).await?;
    let row: Option<DeliveryRow> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 AND subscription_id = $2"
    ))
    .bind(r.delivery_id)
    .bind(r.webhook_id)
    .fetch_optional(&state.pool)
    .await?;
    Ok(row
        .ok_or_else(|| BusError::not_found("Delivery not found"))?
        .view())
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    at: chrono::DateTime<Utc>,
    trigger: String,
    status_code: i32,
    error: Option<String>,
    latency_ms: i32,
    response_body: String,
}

pub async fn get(state: &State, r: DeliveryRef) -> db::Result<Delivery> {
    let mut delivery = fetch(state, &r).await?;
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT at, trigger, status_code, error, latency_ms, response_body FROM attempts \
         WHERE delivery_id = $1 ORDER BY at, id",
    )
    .bind(r.delivery_id)
    .fetch_all(&state.pool)
    .await?;
    delivery.attempts = Some(
        attempts
            .into_iter()
            .map(|a| Attempt {
                at: a.at,
                trigger: a.trigger,
                status_code: a.status_code.clamp(0, 999) as u16,
                error: a.error,
                latency_ms: a.latency_ms.max(0) as u64,
                response_body: a.response_body,
            })
            .collect(),
    );
    Ok(delivery)
}

/// Sends the delivery once more now (whatever its state); the attempt is logged as `manual`.
pub async fn retry(state: &State, r: DeliveryRef) -> db::Result<Delivery> {
    let delivery = fetch(state, &r).await?;
    enqueue(state, delivery.id, Trigger::Manual).await?;
    Ok(delivery)
}

/// A sample clock-in sent to the subscription now, as a delivery in its log.
pub async fn test(state: &State, r: WebhookRef) -> db::Result<Delivery> {
    let sub = subs::fetch(state, r.org_id, r.id).await?;
    let tz = state.directory.org(r.org_id).await?.org.timezone;
    let event = render::sample_event(r.org_id, tz, Utc::now());
    let body = render::body(sub.platform(), sub.template.as_deref(), &event, tz);
    let row: DeliveryRow = sqlx::query_as(&format!(
        "INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_type, body) \
         VALUES ($1, $2, $3, $4, 'clock-in', $5) RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(r.org_id.as_uuid())
    .bind(sub.id)
    .bind(event.id.as_uuid())
    .bind(body)
    .fetch_one(&state.pool)
    .await?;
    let delivery = row.view();
    enqueue(state, delivery.id, Trigger::Test).await?;
    Ok(delivery)
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    subscription_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempt_count: i32,
    next_attempt_at: Option<chrono::DateTime<Utc>>,
    created_at: chrono::DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str =
    "id, subscription_id, event_id, event_type, status, attempt_count, next_attempt_at, created_at";

impl DeliveryRow {
    fn view(self) -> Delivery {
        Delivery {
            id: self.id,
            webhook_id: self.subscription_id,
            event_id: self.event_id,
            event_type: self.event_type,
            status: self.status,
            attempt_count: self.attempt_count.max(0) as u32,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            attempts: None,
        }
    }
}
