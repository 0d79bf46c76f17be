//! Forgotten clock-outs: a session still open `max_shift_hours` (an org setting, 16 by default)
//! after its clock-in is closed at clock-in + `max_shift_hours`, flagged `auto_closed`, with a
//! `clock-out` event that says so, so the next clock-in is accepted and payroll sees the flag.
//!
//! Every replica sweeps every [`SWEEP`]; a session is closed under its employee's state row
//! lock, taken with `SKIP LOCKED` and only while the session is still the open one, so two
//! replicas (or a sweep and a punch) never close it twice. A punch of the employee closes an
//! expired session itself before it is decided (`handlers::clock`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::calendar::{hours, minutes, whole_seconds};
use clokio_bus::events::kind;
use clokio_bus::ids::{AttendanceId, EmployeeId, LocationId, OrgId};
use clokio_bus::ops::{Actor, ActorKind, CorrectionAction, Employee};
use clokio_runtime::directory::OrgInfo;
use clokio_runtime::outbox;
use sqlx::PgConnection;

use crate::events::{self, Clocked};
use crate::handlers::corrections::{self, Entry, audit};
use crate::{State, db};

/// How often each replica looks for expired sessions: a session is closed within this of
/// passing its limit.
pub const SWEEP: Duration = Duration::from_secs(20);

/// No org allows a shift shorter than this, so younger sessions are never looked at.
const MIN_SHIFT: chrono::Duration = chrono::Duration::hours(1);

/// The system, as the audit trail names it.
pub fn system() -> Actor {
    Actor {
        kind: ActorKind::System,
        id: None,
        name: "Clokio".to_owned(),
    }
}

/// Closes the open session `session` of `employee` at clock-in + `max_shift_hours` (or at the
/// employee's last recorded event, if that came later), if that limit is not after `due`. The
/// limit is taken from the session as locked, not as the caller read it (a correction may have
/// moved the clock-in since). False when it is not expired, no longer open, or another replica is
/// closing it right now.
pub async fn close(
    state: &State,
    conn: &mut PgConnection,
    info: &OrgInfo,
    employee: &Employee,
    session: i64,
    due: DateTime<Utc>,
) -> db::Result<bool> {
    let org = info.org.id;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let locked: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT last_event_at FROM employee_state \
         WHERE org_id = $1 AND employee_id = $2 AND open_session_id = $3 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(org.as_uuid())
    .bind(employee.employee_id.get())
    .bind(session)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(last) = locked else {
        return Ok(false);
    };
    let Some(before) = corrections::load(&mut tx, org, session, true).await? else {
        return Ok(false);
    };
    let limit =
        before.row.clock_in + chrono::Duration::hours(i64::from(info.org.settings.max_shift_hours));
    if limit > due {
        return Ok(false);
    }
    let at = [
        Some(whole_seconds(limit)),
        before.row.break_open_since,
        last,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(limit);
    let open_break = before
        .row
        .break_open_since
        .map(|since| (at - since).num_seconds().max(0));
    let break_seconds = before.row.break_seconds + open_break.unwrap_or(0);
    let revision: i64 = sqlx::query_scalar(
        "UPDATE sessions SET clock_out = $2, out_location_id = location_id, \
            out_location = location, break_seconds = $3, break_open_since = NULL, \
            auto_closed = true, revision = revision + 1 \
         WHERE id = $1 RETURNING revision",
    )
    .bind(session)
    .bind(at)
    .bind(break_seconds)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE breaks SET ended_at = $2 WHERE session_id = $1 AND ended_at IS NULL")
        .bind(session)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE employee_state SET open_session_id = NULL, \
            last_event_at = greatest(last_event_at, $3) \
         WHERE org_id = $1 AND employee_id = $2",
    )
    .bind(org.as_uuid())
    .bind(employee.employee_id.get())
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let after = corrections::load(&mut tx, org, session, false)
        .await?
        .ok_or_else(BusError::internal)?;
    let max = info.org.settings.max_shift_hours;
    let reason = format!("Still open after max_shift_hours ({max} h)");
    audit(
        &mut tx,
        org,
        Entry {
            session,
            employee_id: employee.employee_id.get(),
            action: CorrectionAction::AutoClosed,
            actor: &system(),
            reason: &reason,
            before: Some(&before.state()),
            after: Some(&after.state()),
        },
    )
    .await?;
    let clocked = Clocked {
        attendance_id: AttendanceId::new(session),
        employee,
        location_id: LocationId::new(before.row.location_id),
        location: &before.row.location,
        work_date: before.row.work_date,
        clock_in: before.row.clock_in,
        revision,
    };
    let mut rows = outbox::Rows::default();
    if open_break.is_some() {
        clocked.emit(state, &mut rows, org, kind::BREAK_END, at)?;
    }
    let mut out = clocked.event(kind::CLOCK_OUT, at);
    out.clock_out = Some(at);
    out.total_hours = Some(hours(
        (at - before.row.clock_in).num_seconds() - break_seconds,
    ));
    out.break_minutes = Some(minutes(break_seconds));
    out.break_seconds = Some(break_seconds);
    out.auto_closed = true;
    events::emit(state, &mut rows, org, kind::CLOCK_OUT, at, out)?;
    rows.flush(&mut tx).await?;
    tx.commit().await?;
    state.kick.kick();
    metrics::counter!("clokio_sessions_auto_closed_total").increment(1);
    tracing::info!(%org, session, %at, "forgotten clock-out closed");
    Ok(true)
}

/// Closes every expired session it finds; runs until the task is aborted.
pub async fn run(state: State) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(closed = n, "auto-close sweep"),
            Err(err) => {
                let err = BusError::from(err);
                tracing::warn!(%err, "auto-close sweep failed");
            }
        }
    }
}

/// One pass: this deployment's open sessions older than the shortest allowed shift, judged by
/// their org's `max_shift_hours`.
pub async fn sweep(state: &State) -> db::Result<usize> {
    let now = whole_seconds(Utc::now());
    let prefix = state.subjects.prefix().to_string();
    let mut closed = 0;
    // Page by (clock_in, id): orgs allow different shifts, so an expired session may sit behind
    // any number of older ones that are not expired yet.
    let mut after: Option<(DateTime<Utc>, i64)> = None;
    loop {
        let page: Vec<(i64, sqlx::types::Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, org_id, employee_id, clock_in FROM sessions \
             WHERE clock_out IS NULL AND clock_in <= $1 AND (prefix = $2 OR prefix IS NULL) \
                AND ($3::timestamptz IS NULL OR (clock_in, id) > ($3, $4)) \
             ORDER BY clock_in, id LIMIT $5",
        )
        .bind(now - MIN_SHIFT)
        .bind(&prefix)
        .bind(after.map(|a| a.0))
        .bind(after.map_or(0, |a| a.1))
        .bind(PAGE as i64)
        .fetch_all(&state.pool)
        .await?;
        let full = page.len() == PAGE;
        if let Some((id, _, _, clock_in)) = page.last() {
            after = Some((*clock_in, *id));
        }
        for (session, org, employee_id, clock_in) in page {
            let org = OrgId::from_uuid(org);
            match close_expired(state, org, session, employee_id, clock_in, now).await {
                Ok(true) => closed += 1,
                Ok(false) => {}
                // One org's trouble (its settings unreachable) does not stop the others.
                Err(err) => {
                    let err = BusError::from(err);
                    tracing::warn!(%err, %org, session, "could not auto-close a session");
                }
            }
        }
        if !full {
            return Ok(closed);
        }
    }
}

/// Open sessions read per page of a sweep.
const PAGE: usize = 1000;

/// Closes one candidate of a sweep if its org's limit has passed.
async fn close_expired(
    state: &State,
    org: OrgId,
    session: i64,
    employee_id: i64,
    clock_in: DateTime<Utc>,
    now: DateTime<Utc>,
) -> db::Result<bool> {
    let info = state.directory.org(org).await?;
    let limit = clock_in + chrono::Duration::hours(i64::from(info.org.settings.max_shift_hours));
    if limit > now {
        return Ok(false);
    }
    let staff = state.directory.staff(org).await?;
    let Some(employee) = staff.by_id.get(&EmployeeId::new(employee_id)).cloned() else {
        tracing::warn!(%org, employee_id, "open session of an unknown employee");
        return Ok(false);
    };
    let mut conn = state.pool.acquire().await?;
    close(state, &mut conn, &info, &employee, session, now).await
}
