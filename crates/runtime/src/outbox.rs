//! The transactional outbox. A service writes its state change and the event in one Postgres
//! transaction (`enqueue`), so an event exists exactly when the change committed. The relay
//! publishes pending rows to JetStream with the event id as `Nats-Msg-Id` (the stream drops a
//! duplicate publish within its window) and deletes them only after JetStream acknowledged them.
//! One replica relays at a time (a transaction-scoped advisory lock per outbox), so events leave
//! in commit order; when it dies, another replica's next poll takes over.
//!
//! Each owning service creates the table in its own schema with this shape:
//! `outbox (seq bigserial primary key, event_id uuid not null unique, subject text not null,
//! payload bytea not null, created_at timestamptz not null default now())`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use clokio_bus::events::Event;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;

const BATCH: i64 = 256;

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: Serialize>(
    tx: &mut Transaction<'_, Postgres>,
    subject: &str,
    event: &Event<T>,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_vec(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)")
        .bind(event.id.as_uuid())
        .bind(subject)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Wakes the relay after a commit, so events go out at once instead of at the next poll.
#[derive(Clone, Default)]
pub struct Kick(Arc<Notify>);

impl Kick {
    pub fn kick(&self) {
        self.0.notify_one();
    }
}

/// Publishes outbox rows until `shutdown` resolves, then flushes what is pending once more.
pub async fn relay(
    pool: PgPool,
    js: jetstream::Context,
    kick: Kick,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay_batch(&pool, &js).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(%err, "outbox relay failed; will retry");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = kick.0.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Last flush so a clean shutdown leaves nothing behind for the next replica to find.
    while let Ok(n) = relay_batch(&pool, &js).await {
        if n == 0 {
            break;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("publish: {0}")]
    Publish(String),
}

/// Publishes one batch; returns how many rows it relayed.
async fn relay_batch(pool: &PgPool, js: &jetstream::Context) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    // One relayer per outbox at a time (the lock ends with the transaction), so events leave in
    // commit order even with several replicas.
    let (leader,): (bool,) =
        sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))")
            .fetch_one(&mut *tx)
            .await?;
    if !leader {
        return Ok(0);
    }
    let rows: Vec<(i64, uuid::Uuid, String, Vec<u8>)> =
        sqlx::query_as("SELECT seq, event_id, subject, payload FROM outbox ORDER BY seq LIMIT $1")
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(rows.len());
    for (_, id, subject, payload) in &rows {
        let msg = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(payload.clone()))
            .message_id(id.to_string());
        let ack = js
            .send_publish(subject.clone(), msg)
            .await
            .map_err(|e| RelayError::Publish(e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| RelayError::Publish(e.to_string()))?;
    }
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("clokio_outbox_published_total").increment(rows.len() as u64);
    Ok(rows.len())
}
