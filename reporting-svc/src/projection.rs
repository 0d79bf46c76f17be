//! The projection: sessions and leave, kept from the events attendance-svc publishes. One durable
//! pull consumer (`reporting`) on `<prefix>.events.>` is shared by every replica; each batch of
//! events is applied in one transaction of bulk upserts and acknowledged after it commits. The
//! upserts are keyed by the source's ids and do not depend on order (a clock-out seen before its
//! clock-in, a deletion before its creation), so redeliveries and replays change nothing.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, NaiveDate, Utc};
use clokio_bus::Subjects;
use clokio_bus::events::{Event, kind};
use clokio_bus::ops::{AttendanceEvent, Leave, PeriodEvent};
use futures::StreamExt;
use serde::Deserialize;
use sqlx::PgPool;

use crate::State;
use uuid::Uuid;

/// The durable consumer's name.
pub const CONSUMER: &str = "reporting";
const BATCH: usize = 1000;
/// Events one pull asks for (async-nats's default).
const PULL: usize = 200;
/// How long a replica may hold events unacknowledged before they go to another one. Short, so
/// the events a killed replica had taken come back within seconds; a slow write keeps its batch
/// with progress acknowledgements.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Creates (or finds) the consumer.
pub async fn consumer(
    js: &jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
) -> Result<jetstream::consumer::Consumer<jetstream::consumer::pull::Config>, async_nats::Error> {
    let stream = clokio_bus::events::ensure_events_stream(js, subjects, replicas).await?;
    // Created, or updated to these settings (a deployment started with other ones follows).
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            filter_subject: subjects.events_wildcard(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await?;
    Ok(consumer)
}

/// Applies events until `shutdown` resolves; reconnects to the consumer after errors.
pub async fn run(
    state: State,
    js: jetstream::Context,
    subjects: Subjects,
    replicas: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let consumed = async {
            let consumer = consumer(&js, &subjects, replicas).await?;
            let mut messages = clokio_bus::events::messages(&consumer, PULL)
                .await?
                .ready_chunks(BATCH);
            while let Some(batch) = messages.next().await {
                let mut failed = None;
                let batch: Vec<jetstream::Message> = batch
                    .into_iter()
                    .filter_map(|m| m.map_err(|err| failed = Some(err)).ok())
                    .collect();
                apply_and_ack(&state, batch).await;
                // A consumer deleted (a rebuild) or a connection lost: start over with a fresh
                // subscription; what was not acknowledged is delivered again.
                if let Some(err) = failed {
                    return Err(err.into());
                }
            }
            Ok::<(), async_nats::Error>(())
        };
        tokio::select! {
            () = &mut shutdown => return,
            result = consumed => {
                if let Err(err) = result {
                    tracing::warn!(%err, "event consumer failed; retrying");
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The `type` of an event, read first to pick its data's shape.
#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Default)]
struct Changes {
    sessions: HashMap<i64, SessionRow>,
    leaves: HashMap<i64, LeaveRow>,
}

/// A session's state as one event tells it. Of two states of a session the later revision wins
/// (and at equal revisions, from events written before revisions, the closed one).
struct SessionRow {
    org_id: Uuid,
    employee_id: i64,
    work_date: NaiveDate,
    clock_in: DateTime<Utc>,
    clock_out: Option<DateTime<Utc>>,
    net_seconds: Option<i64>,
    revision: i64,
    deleted: bool,
    auto_closed: bool,
}

impl SessionRow {
    fn rank(&self) -> (i64, bool) {
        (self.revision, self.clock_out.is_some() || self.deleted)
    }
}

/// What one event asks of the projection.
enum Added {
    /// Folded into the batch's changes (or not this projection's business).
    Change,
    /// Unreadable: it never will be, skip it.
    Unreadable,
    /// A period closed or reopened: handled after the batch's changes are written.
    Period(Uuid, bool, PeriodEvent),
}

struct LeaveRow {
    org_id: Uuid,
    employee_id: i64,
    start_date: NaiveDate,
    end_date: NaiveDate,
    deleted: bool,
}

impl Changes {
    /// Adds one event.
    fn add(&mut self, payload: &[u8]) -> Added {
        match self.add_inner(payload) {
            Some(added) => added,
            None => Added::Unreadable,
        }
    }

    fn add_inner(&mut self, payload: &[u8]) -> Option<Added> {
        let Kind { kind: k } = serde_json::from_slice::<Kind>(payload).ok()?;
        let (domain, event) = k.split_once('.').unwrap_or((&k, ""));
        match domain {
            kind::ATTENDANCE => {
                let e = serde_json::from_slice::<Event<AttendanceEvent>>(payload).ok()?;
                let d = e.data;
                let closed = d
                    .clock_out
                    .filter(|_| event == kind::CLOCK_OUT || event == kind::CORRECTED);
                let row = SessionRow {
                    org_id: e.org_id.as_uuid(),
                    employee_id: d.employee_id.get(),
                    work_date: d.work_date,
                    clock_in: d.clock_in,
                    clock_out: closed,
                    net_seconds: closed.map(|out| {
                        (out - d.clock_in).num_seconds() - d.break_seconds.unwrap_or_default()
                    }),
                    revision: d.revision.unwrap_or(1),
                    deleted: d.deleted,
                    auto_closed: d.auto_closed,
                };
                match self.sessions.entry(d.attendance_id.get()) {
                    std::collections::hash_map::Entry::Occupied(mut held) => {
                        if row.rank() > held.get().rank() {
                            held.insert(row);
                        }
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(row);
                    }
                }
                Some(Added::Change)
            }
            kind::LEAVE => {
                let e = serde_json::from_slice::<Event<Leave>>(payload).ok()?;
                let l = e.data;
                let deleted = event == kind::DELETED;
                let row = self.leaves.entry(l.id.get()).or_insert(LeaveRow {
                    org_id: e.org_id.as_uuid(),
                    employee_id: l.employee_id.get(),
                    start_date: l.start_date,
                    end_date: l.end_date,
                    deleted,
                });
                row.deleted |= deleted;
                Some(Added::Change)
            }
            kind::PERIOD => {
                let e = serde_json::from_slice::<Event<PeriodEvent>>(payload).ok()?;
                let closed = match event {
                    kind::CLOSED => true,
                    kind::REOPENED => false,
                    _ => return Some(Added::Change),
                };
                Some(Added::Period(e.org_id.as_uuid(), closed, e.data))
            }
            // Other domains are not this projection's business.
            _ => Some(Added::Change),
        }
    }

    async fn write(self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        if !self.sessions.is_empty() {
            let mut ids = Vec::with_capacity(self.sessions.len());
            let (mut orgs, mut emps, mut dates, mut ins, mut outs, mut nets) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            let (mut revisions, mut deleted, mut auto_closed) =
                (Vec::new(), Vec::new(), Vec::new());
            for (id, s) in self.sessions {
                ids.push(id);
                orgs.push(s.org_id);
                emps.push(s.employee_id);
                dates.push(s.work_date);
                ins.push(s.clock_in);
                outs.push(s.clock_out);
                nets.push(s.net_seconds);
                revisions.push(s.revision);
                deleted.push(s.deleted);
                auto_closed.push(s.auto_closed);
            }
            // A later revision replaces what is held; at an equal one (events written before
            // revisions) only a clock-out fills in the close.
            sqlx::query(
                "INSERT INTO sessions (attendance_id, org_id, employee_id, work_date, clock_in, \
                    clock_out, net_seconds, revision, deleted, auto_closed) \
                 SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::date[], \
                    $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::bigint[], \
                    $9::boolean[], $10::boolean[]) \
                 ON CONFLICT (attendance_id) DO UPDATE SET \
                    work_date = EXCLUDED.work_date, clock_in = EXCLUDED.clock_in, \
                    clock_out = EXCLUDED.clock_out, net_seconds = EXCLUDED.net_seconds, \
                    revision = EXCLUDED.revision, deleted = EXCLUDED.deleted, \
                    auto_closed = EXCLUDED.auto_closed \
                 WHERE (EXCLUDED.revision, EXCLUDED.clock_out IS NOT NULL OR EXCLUDED.deleted) \
                    > (sessions.revision, sessions.clock_out IS NOT NULL OR sessions.deleted)",
            )
            .bind(ids)
            .bind(orgs)
            .bind(emps)
            .bind(dates)
            .bind(ins)
            .bind(outs)
            .bind(nets)
            .bind(revisions)
            .bind(deleted)
            .bind(auto_closed)
            .execute(&mut *tx)
            .await?;
        }
        if !self.leaves.is_empty() {
            let mut ids = Vec::with_capacity(self.leaves.len());
            let (mut orgs, mut emps, mut starts, mut ends, mut deleted) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, l) in self.leaves {
                ids.push(id);
                orgs.push(l.org_id);
                emps.push(l.employee_id);
                starts.push(l.start_date);
                ends.push(l.end_date);
                deleted.push(l.deleted);
            }
            sqlx::query(
                "INSERT INTO leaves (id, org_id, employee_id, start_date, end_date, deleted) \
                 SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::date[], \
                    $5::date[], $6::boolean[]) \
                 ON CONFLICT (id) DO UPDATE SET deleted = leaves.deleted OR EXCLUDED.deleted",
            )
            .bind(ids)
            .bind(orgs)
            .bind(emps)
            .bind(starts)
            .bind(ends)
            .bind(deleted)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

/// Applies a batch and acknowledges it, or asks for it again after a second.
async fn apply_and_ack(state: &State, batch: Vec<jetstream::Message>) {
    if batch.is_empty() {
        return;
    }
    let pool = &state.pool;
    let mut changes = Changes::default();
    let mut periods = Vec::new();
    for (i, msg) in batch.iter().enumerate() {
        // A span per event in the trace of the write that made it.
        let span = tracing::info_span!(
            "project event",
            otel.kind = "consumer",
            subject = %msg.subject,
            trace_id = tracing::field::Empty,
        );
        clokio_bus::trace::continue_from(&span, msg.headers.as_ref());
        let _entered = span.enter();
        match changes.add(&msg.payload) {
            Added::Change => {}
            Added::Unreadable => {
                tracing::error!(subject = %msg.subject, "unreadable event skipped");
            }
            Added::Period(org, closed, event) => periods.push((i, org, closed, event)),
        }
    }
    let write = changes.write(pool);
    tokio::pin!(write);
    let written = loop {
        tokio::select! {
            written = &mut write => break written,
            () = tokio::time::sleep(ACK_WAIT / 3) => {
                for msg in &batch {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            }
        }
    };
    match written {
        Ok(()) => {
            metrics::counter!("clokio_projection_events_total").increment(batch.len() as u64);
            // A period's event after the changes before it in the batch: a close waits until
            // the projection holds what attendance-svc held when it closed.
            let mut held = vec![false; batch.len()];
            for (i, org, closed, event) in &periods {
                let msg = &batch[*i];
                let delivered = msg.info().map(|info| info.delivered).unwrap_or(1);
                let again =
                    match crate::periods::apply(state, *org, *closed, event, delivered).await {
                        Ok(true) => continue,
                        Ok(false) => crate::periods::wait(delivered),
                        Err(err) => {
                            tracing::warn!(%err, "period event not applied; retrying");
                            Duration::from_secs(1)
                        }
                    };
                held[*i] = true;
                let _ = msg.ack_with(AckKind::Nak(Some(again))).await;
            }
            for (msg, held) in batch.iter().zip(held) {
                if held {
                    continue;
                }
                if let Err(err) = msg.ack().await {
                    tracing::warn!(%err, "event ack failed; it will be redelivered");
                }
            }
        }
        Err(err) => {
            tracing::warn!(%err, events = batch.len(), "projection write failed; events redelivered");
            for msg in &batch {
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }
}
