//! `Idempotency-Key`: a write's first answer is stored with its key in the write's own
//! transaction, so a retry with the same key and request within 24 hours replays that answer
//! (status and body) and changes nothing, and the same key with another request is a 422.
//!
//! The key row is claimed first: a concurrent retry blocks on it until the first attempt commits
//! or rolls back. The work then runs under a savepoint, so a refusal (4xx) is undone and stored
//! as the answer, while a failure of ours (5xx) rolls everything back and leaves the key free.

use bytes::Bytes;
use clokio_bus::ids::OrgId;
use clokio_bus::{BusError, ErrorCode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Transaction};

use crate::{State, db};

/// How long a key is remembered.
pub const TTL_HOURS: i32 = 24;

/// One write's key, if the client sent one.
pub struct Idempotency {
    claim: Option<(OrgId, String, &'static str, Vec<u8>)>,
}

impl Idempotency {
    /// `request` is what makes two requests "the same": the typed request without its key.
    pub fn new<R: Serialize>(
        org: OrgId,
        key: Option<&str>,
        operation: &'static str,
        request: &R,
    ) -> Self {
        let claim = key.map(|key| {
            let mut hash = Sha256::new();
            hash.update(operation.as_bytes());
            hash.update([0]);
            // Serializing a plain request struct cannot fail.
            hash.update(serde_json::to_vec(request).unwrap_or_default());
            (org, key.to_owned(), operation, hash.finalize().to_vec())
        });
        Self { claim }
    }

    /// Whether the client sent a key (the write then runs inside the key's transaction).
    pub fn is_keyed(&self) -> bool {
        self.claim.is_some()
    }

    /// Claims the key inside `tx`. Some(answer) when the key was used before: the stored answer,
    /// or a 422 if it was used for another request.
    pub async fn claim(
        &self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> db::Result<Option<Result<Bytes, BusError>>> {
        let Some((org, key, operation, hash)) = &self.claim else {
            return Ok(None);
        };
        let fresh: Option<(i32,)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (org_id, key, operation, request_hash) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, key) DO UPDATE SET operation = EXCLUDED.operation, \
                request_hash = EXCLUDED.request_hash, status = NULL, response = NULL, \
                created_at = now() \
             WHERE idempotency_keys.created_at < now() - make_interval(hours => $5) \
             RETURNING 1",
        )
        .bind(org.as_uuid())
        .bind(key)
        .bind(operation)
        .bind(hash)
        .bind(TTL_HOURS)
        .fetch_optional(&mut **tx)
        .await?;
        if fresh.is_some() {
            sqlx::query("SAVEPOINT idempotent_work")
                .execute(&mut **tx)
                .await?;
            return Ok(None);
        }
        let (stored_op, stored_hash, status, response): (
            String,
            Vec<u8>,
            Option<i16>,
            Option<Vec<u8>>,
        ) = sqlx::query_as(
            "SELECT operation, request_hash, status, response FROM idempotency_keys \
             WHERE org_id = $1 AND key = $2",
        )
        .bind(org.as_uuid())
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
        if stored_op != *operation || stored_hash != *hash {
            return Ok(Some(Err(BusError::invalid(
                "The Idempotency-Key has already been used for a different request",
            ))));
        }
        let (Some(status), Some(response)) = (status, response) else {
            tracing::error!("idempotency key committed without an answer");
            return Err(BusError::internal().into());
        };
        metrics::counter!("clokio_idempotent_replays_total").increment(1);
        Ok(Some(if status < 300 {
            Ok(Bytes::from(response))
        } else {
            Err(BusError::new(
                ErrorCode::from_status(status as u16),
                String::from_utf8_lossy(&response).into_owned(),
            ))
        }))
    }

    /// Ends the write: stores the answer with the key (if any) and commits, or rolls back.
    /// Returns the answer.
    ///
    /// A `COMMIT` whose connection is lost may have committed. With a key, the key's row shows
    /// whether it did (it commits with the work), and the answer follows it. Without one the
    /// answer is a 504 that says the outcome is unknown, never a 503 that says it failed.
    pub async fn settle(
        &self,
        state: &State,
        mut tx: Transaction<'_, Postgres>,
        result: db::Result<Bytes>,
    ) -> db::Result<Bytes> {
        // A refusal is stored with the key as the bus answers it (a unique index the write ran
        // into is a 409 like any other).
        let result = result.map_err(BusError::from);
        let Some((org, key, _, hash)) = &self.claim else {
            return match result {
                Ok(reply) => match tx.commit().await {
                    Ok(()) => Ok(reply),
                    Err(err) if clokio_runtime::db::is_connection_lost(&err) => {
                        tracing::warn!(%err, "connection lost during a commit");
                        Err(clokio_runtime::db::outcome_unknown().into())
                    }
                    Err(err) => Err(err.into()),
                },
                Err(err) => {
                    // Dropping the transaction rolls it back.
                    drop(tx);
                    Err(err.into())
                }
            };
        };
        let (status, response) = match &result {
            Ok(reply) => (200i16, reply.to_vec()),
            Err(err) if is_refusal(err.code) => {
                sqlx::query("ROLLBACK TO SAVEPOINT idempotent_work")
                    .execute(&mut *tx)
                    .await?;
                (err.code.status() as i16, err.message.clone().into_bytes())
            }
            Err(_) => return result.map_err(Into::into),
        };
        sqlx::query(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE org_id = $1 AND key = $2",
        )
        .bind(org.as_uuid())
        .bind(key)
        .bind(status)
        .bind(response)
        .execute(&mut *tx)
        .await?;
        match tx.commit().await {
            Ok(()) => result.map_err(Into::into),
            Err(err) if clokio_runtime::db::is_connection_lost(&err) => {
                tracing::warn!(%err, "connection lost during a keyed commit; finding out whether it committed");
                let stored = || async {
                    let (found,): (bool,) = sqlx::query_as(
                        "SELECT EXISTS (SELECT 1 FROM idempotency_keys \
                         WHERE org_id = $1 AND key = $2 AND request_hash = $3 \
                           AND status IS NOT NULL \
                           AND created_at >= now() - make_interval(hours => $4))",
                    )
                    .bind(org.as_uuid())
                    .bind(key)
                    .bind(hash)
                    .bind(TTL_HOURS)
                    .fetch_one(&state.pool)
                    .await?;
                    Ok(found)
                };
                match clokio_runtime::db::settle(state.settle_wait, stored).await {
                    Some(true) => result.map_err(Into::into),
                    Some(false) => Err(err.into()),
                    None => Err(clokio_runtime::db::outcome_unknown().into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A refusal of the request (the same request will be refused again), as opposed to a failure.
fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadRequest
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::Conflict
            | ErrorCode::Unprocessable
    )
}

/// Deletes expired keys now and then.
pub async fn sweep(pool: sqlx::PgPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(err) = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        )
        .bind(TTL_HOURS)
        .execute(&pool)
        .await
        {
            tracing::warn!(%err, "could not sweep idempotency keys");
        }
    }
}
