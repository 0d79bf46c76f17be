//! The transactional outbox. A service writes its state change and the event in one Postgres
//! transaction (`enqueue`), so an event exists exactly when the change committed. The relay
//! publishes pending rows to JetStream with the event id as `Nats-Msg-Id` (the stream drops a
//! duplicate publish within its window) and deletes them only after JetStream acknowledged them.
//! One replica relays at a time (a transaction-scoped advisory lock per outbox and subject prefix),
//! so events leave in commit order; when it dies, another replica's next poll takes over. A relay
//! handles only rows under its own subject prefix. A row that cannot be published stays, with the
//! later rows of its subject behind it (their order is kept), while other subjects go on; nothing
//! is skipped or dropped.
//!
//! The order promised: a subject's events enter the stream in commit order, with one exception.
//! A batch is published without waiting for each ack, so if NATS loses one publish and takes a
//! later one of the same subject, the later event is in the stream first and the lost one follows
//! when its row is published again (the later row stays too, and its copy is dropped as a
//! duplicate). Consumers that need a session's order have the `revision` and `timestamp` that
//! attendance events carry.
//!
//! Each owning service creates the table in its own schema with this shape:
//! `outbox (seq bigserial primary key, event_id uuid not null unique, subject text not null,
//! payload bytea not null, created_at timestamptz not null default now(), traceparent text,
//! tracestate text)`, indexed on `(split_part(subject, '.', 1), seq)` (prefix, then commit order).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use clokio_bus::events::Event;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::Notify;

const BATCH: i64 = 256;

/// An outbox row: sequence, event id, subject, payload and the writer's trace context.
type Row = (
    i64,
    uuid::Uuid,
    String,
    Vec<u8>,
    Option<String>,
    Option<String>,
);

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: Serialize>(
    tx: &mut Transaction<'_, Postgres>,
    subject: &str,
    event: &Event<T>,
) -> Result<(), sqlx::Error> {
    let mut rows = Rows::default();
    rows.push(subject.to_owned(), event)?;
    rows.insert(tx).await
}

/// Outbox rows: inserted on their own ([`Rows::insert`]), or by the statement that makes the
/// change itself, which saves the write a round trip to Postgres: that statement takes
/// [`rows_cte`] among its `WITH` items and binds the rows with [`Rows::bind`] after its own
/// parameters.
#[derive(Clone, Default)]
pub struct Rows {
    ids: Vec<uuid::Uuid>,
    subjects: Vec<String>,
    payloads: Vec<Vec<u8>>,
}

impl Rows {
    pub fn push<T: Serialize>(
        &mut self,
        subject: String,
        event: &Event<T>,
    ) -> Result<(), sqlx::Error> {
        let payload = serde_json::to_vec(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        self.ids.push(event.id.as_uuid());
        self.subjects.push(subject);
        self.payloads.push(payload);
        Ok(())
    }

    /// How many rows are waiting to be inserted.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Inserts the rows inside the caller's transaction, in one statement.
    pub async fn insert(mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        self.flush(tx).await
    }

    /// Inserts the rows so far inside the caller's transaction, in one statement, and starts
    /// over: a bulk writer flushes now and then, so neither its rows nor the statement's encoded
    /// parameters grow with the whole batch.
    pub async fn flush(&mut self, tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        static INSERT: LazyLock<String> =
            LazyLock::new(|| format!("WITH {} SELECT 1", rows_cte(1)));
        if self.is_empty() {
            return Ok(());
        }
        std::mem::take(self)
            .bind(sqlx::query(&INSERT))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Binds the rows and the current span's trace context: the five parameters of [`rows_cte`].
    pub fn bind(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        let trace = clokio_bus::trace::context_of(&tracing::Span::current());
        self.bind_with(query, trace)
    }

    /// Binds the rows and `trace`, the trace context they were made in: the five parameters of
    /// [`rows_cte`].
    pub fn bind_with(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
        trace: clokio_bus::trace::TraceHeaders,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.ids)
            .bind(self.subjects)
            .bind(self.payloads)
            .bind(trace.traceparent)
            .bind(trace.tracestate)
    }
}

/// The outbox rows of several writes made by one statement, each write's rows with its own trace
/// context, numbered by write: the statement takes [`owned_rows_cte`] among its `WITH` items and
/// binds these with [`Owned::bind`] after its own parameters.
#[derive(Default)]
pub struct Owned {
    owners: Vec<i64>,
    rows: Rows,
    traceparents: Vec<Option<String>>,
    tracestates: Vec<Option<String>>,
}

impl Owned {
    /// Adds a copy of write `owner`'s rows, with the trace context they were made in. A copy: a
    /// write whose batch fails is written again on its own, with its rows.
    pub fn push(&mut self, owner: i64, rows: &Rows, trace: &clokio_bus::trace::TraceHeaders) {
        let n = rows.len();
        self.owners.extend(std::iter::repeat_n(owner, n));
        self.traceparents
            .extend(std::iter::repeat_n(trace.traceparent.clone(), n));
        self.tracestates
            .extend(std::iter::repeat_n(trace.tracestate.clone(), n));
        self.rows.ids.extend_from_slice(&rows.ids);
        self.rows.subjects.extend_from_slice(&rows.subjects);
        self.rows.payloads.extend_from_slice(&rows.payloads);
    }

    /// Binds the six parameters of [`owned_rows_cte`].
    pub fn bind(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.owners)
            .bind(self.rows.ids)
            .bind(self.rows.subjects)
            .bind(self.rows.payloads)
            .bind(self.traceparents)
            .bind(self.tracestates)
    }
}

/// The `WITH` item that inserts [`Owned`] rows, whose parameters are `$first` to `$first + 5`:
/// only those of the writes numbered in `owners` (SQL, a subquery's set of numbers), in the order
/// they were pushed.
pub fn owned_rows_cte(first: usize, owners: &str) -> String {
    let [owner, ids, subjects, payloads, parents, states] = std::array::from_fn(|i| first + i);
    format!(
        "outbox_rows AS (INSERT INTO outbox (event_id, subject, payload, traceparent, tracestate) \
         SELECT e.id, e.subject, e.payload, e.parent, e.state \
         FROM unnest(${owner}::bigint[], ${ids}::uuid[], ${subjects}::text[], ${payloads}::bytea[], \
             ${parents}::text[], ${states}::text[]) \
             WITH ORDINALITY AS e(owner, id, subject, payload, parent, state, k) \
         WHERE e.owner IN ({owners}) ORDER BY e.k)"
    )
}

/// The `WITH` item that inserts [`Rows`], whose parameters are `$first` to `$first + 4`.
pub fn rows_cte(first: usize) -> String {
    rows_cte_if(first, "true")
}

/// [`rows_cte`] inserting only when `condition` (SQL) holds: for a statement whose change is
/// conditional, so its events are written exactly when it is.
pub fn rows_cte_if(first: usize, condition: &str) -> String {
    let [ids, subjects, payloads, parent, state] = std::array::from_fn(|i| first + i);
    format!(
        "outbox_rows AS (INSERT INTO outbox (event_id, subject, payload, traceparent, tracestate) \
         SELECT e.*, ${parent}, ${state} \
         FROM unnest(${ids}::uuid[], ${subjects}::text[], ${payloads}::bytea[]) AS e \
         WHERE {condition})"
    )
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
    prefix: String,
    kick: Kick,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        // After trouble, wait longer and longer before retrying what is held back; a kick (a new
        // commit) always wakes the relay, so new events never wait behind a stuck row.
        let wait = match relay_batch(&pool, &js, &prefix).await {
            Ok(out) if out.held_back == 0 && out.fetched == BATCH as usize => continue,
            // Another replica is publishing a batch, which may have been read before the commit
            // that kicked this one: look again as soon as that batch is likely done, rather than
            // leaving the new rows for the next poll.
            Ok(out) if !out.leader => Duration::from_millis(25),
            Ok(out) if out.held_back == 0 => {
                backoff = Duration::from_millis(100);
                Duration::from_secs(1)
            }
            Ok(out) => {
                tracing::warn!(
                    held_back = out.held_back,
                    "outbox rows could not be published; will retry"
                );
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
            Err(err) => {
                tracing::warn!(%err, "outbox relay failed; will retry");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = kick.0.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Last flush so a clean shutdown leaves nothing behind for the next replica to find.
    while let Ok(out) = relay_batch(&pool, &js, &prefix).await {
        if out.published == 0 {
            break;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Default)]
struct Outcome {
    /// False when another replica held the relay lock, and nothing was looked at.
    leader: bool,
    fetched: usize,
    published: usize,
    held_back: usize,
}

/// Publishes one batch of this prefix's rows, in commit order. A row that cannot be published
/// stays, and so do the later rows of its subject (their order is kept); other subjects go on.
/// The rows to delete after a batch's acks, given in commit order: every acknowledged row, except
/// those behind an unacknowledged row of their subject. Those stay with it and are published
/// again after it (JetStream drops the copies it already holds, by event id), so the outbox never
/// holds a subject's earlier event without its later ones.
fn deletable(acked: &[(i64, &str, bool)]) -> Vec<i64> {
    let mut unacked = HashSet::new();
    let mut published = Vec::with_capacity(acked.len());
    for &(seq, subject, ok) in acked {
        if !ok {
            unacked.insert(subject);
        } else if !unacked.contains(subject) {
            published.push(seq);
        }
    }
    published
}

async fn relay_batch(
    pool: &PgPool,
    js: &jetstream::Context,
    prefix: &str,
) -> Result<Outcome, RelayError> {
    let mut tx = pool.begin().await?;
    // One relayer per outbox and prefix at a time (the lock ends with the transaction), so events
    // leave in commit order even with several replicas.
    let (leader,): (bool,) = sqlx::query_as(
        "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox.' || $1))",
    )
    .bind(prefix)
    .fetch_one(&mut *tx)
    .await?;
    if !leader {
        return Ok(Outcome::default());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, event_id, subject, payload, traceparent, tracestate FROM outbox \
         WHERE split_part(subject, '.', 1) = $1 ORDER BY seq LIMIT $2",
    )
    .bind(prefix)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Outcome {
        leader: true,
        fetched: rows.len(),
        ..Outcome::default()
    };
    if rows.is_empty() {
        return Ok(out);
    }
    let mut held: HashSet<&str> = HashSet::new();
    let mut acks = Vec::with_capacity(rows.len());
    for (seq, id, subject, payload, traceparent, tracestate) in &rows {
        if held.contains(subject.as_str()) {
            continue;
        }
        // The event carries the trace of the write that made it, to its consumers.
        let mut headers = async_nats::HeaderMap::new();
        clokio_bus::trace::TraceHeaders {
            traceparent: traceparent.clone(),
            tracestate: tracestate.clone(),
        }
        .write_to(&mut headers);
        let msg = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(payload.clone()))
            .headers(headers)
            .message_id(id.to_string());
        match js.send_publish(subject.clone(), msg).await {
            Ok(ack) => acks.push((*seq, subject.as_str(), ack)),
            Err(err) => {
                tracing::warn!(%err, %subject, "could not publish an outbox row");
                held.insert(subject);
            }
        }
    }
    // Awaited together: an ack's timeout (5 s) starts when it is awaited, and acks lost when NATS
    // went away would otherwise cost 5 s each, one after another, with the batch undeleted and the
    // relay lock held (a NATS restart under load once kept 1,053 published rows for over 20 s).
    let acked = futures::future::join_all(
        acks.into_iter()
            .map(|(seq, subject, ack)| async move { (seq, subject, ack.await) }),
    )
    .await;
    let acked: Vec<(i64, &str, bool)> = acked
        .into_iter()
        .map(|(seq, subject, ack)| {
            if let Err(err) = &ack {
                tracing::warn!(%err, %subject, "JetStream did not acknowledge an outbox row");
            }
            (seq, subject, ack.is_ok())
        })
        .collect();
    let published = deletable(&acked);
    sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("clokio_outbox_published_total").increment(published.len() as u64);
    out.published = published.len();
    out.held_back = out.fetched - out.published;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::deletable;

    #[test]
    fn a_row_behind_an_unacknowledged_one_of_its_subject_stays() {
        let acked = [
            (1, "p.events.a", true),
            (2, "p.events.b", false),
            (3, "p.events.a", true),
            (4, "p.events.b", true),
            (5, "p.events.c", true),
        ];
        // 4 was acknowledged, but 2 of its subject was not: 4 is published again after 2.
        assert_eq!(deletable(&acked), [1, 3, 5]);
    }
}
