//! Corrections: an admin or a key with `attendance:write` fixes a session (moves a punch, sets a
//! missing clock-out, edits breaks), deletes a wrong one or adds one that was never punched,
//! always with a reason. The same rules as live punches hold (no overlap, breaks inside the
//! session, nothing in the future, nothing in a closed period). Each change keeps the session
//! before and after in `corrections` and emits `attendance.corrected` in its transaction.
//!
//! A correction locks the employee's state row first (moving its version on, so a concurrent
//! punch reads again), then reads the session: what it decides on cannot change under it.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clokio_bus::BusError;
use clokio_bus::calendar::{hours, minutes, whole_seconds};
use clokio_bus::events::kind;
use clokio_bus::ids::{AttendanceId, EmployeeId, LocationId, OrgId};
use clokio_bus::ops::{
    Actor, ActorKind, AttendanceEvent, AttendanceSession, Correction, CorrectionAction,
    CorrectionNote, Employee, ImportBreak, MAX_IMPORT_BREAKS, MAX_REASON_LEN, Operation,
    SessionBreak, SessionCreate, SessionCreateOp, SessionDelete, SessionDeleteOp, SessionRef,
    SessionState, SessionUpdate, SessionUpdateOp,
};
use clokio_bus::server::to_bytes;
use clokio_runtime::directory::OrgInfo;
use clokio_runtime::outbox;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::events::{self, Clocked};
use crate::idempotency::Idempotency;
use crate::{State, db, periods};

/// The longest session a correction may make, as for imports, or longer where the org lets
/// shifts run longer before they are closed automatically.
const MAX_SESSION_HOURS: u32 = 48;

/// A session's row, as corrections read it.
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub id: i64,
    pub work_date: NaiveDate,
    pub clock_in: DateTime<Utc>,
    pub clock_out: Option<DateTime<Utc>>,
    pub location_id: i64,
    pub location: String,
    pub break_seconds: i64,
    pub break_open_since: Option<DateTime<Utc>>,
    pub imported: bool,
    pub auto_closed: bool,
    pub revision: i64,
}

const COLUMNS: &str = "id, work_date, clock_in, clock_out, location_id, location, break_seconds, \
    break_open_since, imported, auto_closed, revision";

/// A session with its breaks.
pub(crate) struct Loaded {
    pub row: Row,
    pub breaks: Vec<SessionBreak>,
}

impl Loaded {
    pub fn state(&self) -> SessionState {
        SessionState {
            work_date: self.row.work_date,
            clock_in: self.row.clock_in,
            clock_out: self.row.clock_out,
            location: self.row.location.clone(),
            breaks: self.breaks.clone(),
            auto_closed: self.row.auto_closed,
        }
    }

    /// Break seconds taken, a running break until `now`.
    fn break_seconds(&self, now: DateTime<Utc>) -> i64 {
        self.row.break_seconds
            + self
                .row
                .break_open_since
                .map_or(0, |since| (now - since).num_seconds().max(0))
    }

    pub fn view(&self, employee: &Employee) -> AttendanceSession {
        let now = whole_seconds(Utc::now());
        let breaks = self.break_seconds(now);
        AttendanceSession {
            attendance_id: AttendanceId::new(self.row.id),
            employee_id: employee.employee_id,
            employee_code: employee.employee_code.clone(),
            employee_name: employee.name.clone(),
            state: self.state(),
            break_minutes: minutes(breaks),
            total_hours: self
                .row
                .clock_out
                .map(|out| hours((out - self.row.clock_in).num_seconds() - breaks)),
            imported: self.row.imported,
            revision: self.row.revision,
        }
    }

    /// The `attendance.corrected` event of this (changed) session.
    fn event(
        &self,
        employee: &Employee,
        note: CorrectionNote,
        at: DateTime<Utc>,
    ) -> AttendanceEvent {
        let clocked = Clocked {
            attendance_id: AttendanceId::new(self.row.id),
            employee,
            location_id: LocationId::new(self.row.location_id),
            location: &self.row.location,
            work_date: self.row.work_date,
            clock_in: self.row.clock_in,
            revision: self.row.revision,
        };
        let mut e = clocked.event(kind::CORRECTION, at);
        if let Some(out) = self.row.clock_out {
            let breaks = self.row.break_seconds;
            e.clock_out = Some(out);
            e.total_hours = Some(hours((out - self.row.clock_in).num_seconds() - breaks));
            e.break_minutes = Some(minutes(breaks));
            e.break_seconds = Some(breaks);
        }
        e.auto_closed = self.row.auto_closed;
        // A correction happens now, whatever the session's origin: it is announced.
        e.imported = false;
        e.correction = Some(note);
        e
    }
}

/// Reads a session of the org and its breaks (`lock`: for update).
pub(crate) async fn load(
    conn: &mut PgConnection,
    org: OrgId,
    id: i64,
    lock: bool,
) -> db::Result<Option<Loaded>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE org_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = sqlx::query_as::<_, Row>(&sql)
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let breaks = sqlx::query_as::<_, (DateTime<Utc>, Option<DateTime<Utc>>)>(
        "SELECT started_at, ended_at FROM breaks WHERE session_id = $1 ORDER BY started_at",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(start, end)| SessionBreak { start, end })
    .collect();
    Ok(Some(Loaded { row, breaks }))
}

fn not_found() -> BusError {
    BusError::not_found("Attendance session not found")
}

/// The employee of session `id` of the org (404 for another org's or an unknown session).
async fn employee_of_session(conn: &mut PgConnection, org: OrgId, id: i64) -> db::Result<i64> {
    sqlx::query_scalar("SELECT employee_id FROM sessions WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(not_found)
        .map_err(Into::into)
}

/// The reason every correction must give.
fn check_reason(reason: &str) -> db::Result<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(BusError::invalid("The reason field is required").into());
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(BusError::invalid(format!(
            "The reason field must not be greater than {MAX_REASON_LEN} characters"
        ))
        .into());
    }
    Ok(reason.to_owned())
}

/// Locks the employee's state row (creating it for a first session, under the org's period lock
/// held shared) and moves its version on.
/// Returns the employee's open session.
pub(crate) async fn lock_employee(
    conn: &mut PgConnection,
    org: OrgId,
    employee_id: i64,
) -> db::Result<Option<i64>> {
    crate::periods::share_lock(conn, org).await?;
    sqlx::query_scalar(
        "INSERT INTO employee_state (org_id, employee_id) VALUES ($1, $2) \
         ON CONFLICT (org_id, employee_id) DO UPDATE SET org_id = EXCLUDED.org_id \
         RETURNING open_session_id",
    )
    .bind(org.as_uuid())
    .bind(employee_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(Into::into)
}

/// A break as start and end.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// A session's times and breaks after a change, checked by the rules of live punches.
struct Shape {
    clock_in: DateTime<Utc>,
    clock_out: Option<DateTime<Utc>>,
    /// Closed breaks (replacing the stored ones), or None to keep them.
    breaks: Option<Vec<Span>>,
}

fn check_breaks(breaks: &[ImportBreak]) -> db::Result<Vec<Span>> {
    if breaks.len() > MAX_IMPORT_BREAKS {
        return Err(BusError::invalid(format!(
            "A session may not have more than {MAX_IMPORT_BREAKS} breaks"
        ))
        .into());
    }
    let mut out: Vec<_> = breaks
        .iter()
        .map(|b| (whole_seconds(b.start), whole_seconds(b.end)))
        .collect();
    for (j, (start, end)) in out.iter().enumerate() {
        if end <= start {
            return Err(BusError::invalid(format!("breaks.{j}: end must be after start")).into());
        }
    }
    out.sort_unstable();
    if out.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(BusError::invalid("breaks must not overlap").into());
    }
    Ok(out)
}

impl Shape {
    /// Checks order, length, the future and that breaks (given, or `kept`) lie inside.
    fn check(&self, kept: &[SessionBreak], now: DateTime<Utc>, max_hours: u32) -> db::Result<()> {
        if self.clock_in > now {
            return Err(BusError::invalid("The clock_in field must not be in the future").into());
        }
        let end = match self.clock_out {
            Some(out) => {
                if out <= self.clock_in {
                    return Err(
                        BusError::invalid("The clock_out field must be after clock_in").into(),
                    );
                }
                if out > now {
                    return Err(
                        BusError::invalid("The clock_out field must not be in the future").into(),
                    );
                }
                out
            }
            None => now,
        };
        if end - self.clock_in > Duration::hours(i64::from(max_hours)) {
            return Err(BusError::invalid(format!(
                "A session may not be longer than {max_hours} hours"
            ))
            .into());
        }
        let inside = |start: DateTime<Utc>, stop: Option<DateTime<Utc>>| {
            start >= self.clock_in && stop.unwrap_or(start) <= end
        };
        let all_inside = match &self.breaks {
            Some(breaks) => breaks.iter().all(|(s, e)| inside(*s, Some(*e))),
            None => kept.iter().all(|b| inside(b.start, b.end)),
        };
        if !all_inside {
            return Err(BusError::invalid("A break must lie inside its session").into());
        }
        Ok(())
    }
}

/// Refuses a session of `employee` over `[clock_in, clock_out)` that would overlap another.
async fn check_overlap(
    conn: &mut PgConnection,
    org: OrgId,
    employee_id: i64,
    except: Option<i64>,
    clock_in: DateTime<Utc>,
    clock_out: Option<DateTime<Utc>>,
) -> db::Result<()> {
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE org_id = $1 AND employee_id = $2 \
            AND id IS DISTINCT FROM $3 \
            AND clock_in < coalesce($5, 'infinity') AND coalesce(clock_out, 'infinity') > $4 \
         ORDER BY clock_in LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(employee_id)
    .bind(except)
    .bind(clock_in)
    .bind(clock_out)
    .fetch_optional(&mut *conn)
    .await?;
    match other {
        Some(id) => Err(BusError::conflict(format!(
            "The session would overlap the recorded session {id}"
        ))
        .into()),
        None => Ok(()),
    }
}

/// One entry of a session's audit trail.
pub(crate) struct Entry<'a> {
    pub session: i64,
    pub employee_id: i64,
    pub action: CorrectionAction,
    pub actor: &'a Actor,
    pub reason: &'a str,
    pub before: Option<&'a SessionState>,
    pub after: Option<&'a SessionState>,
}

/// Adds an audit entry; returns its time.
pub(crate) async fn audit(
    conn: &mut PgConnection,
    org: OrgId,
    e: Entry<'_>,
) -> db::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO corrections (org_id, session_id, employee_id, action, actor_kind, actor_id, \
            actor_name, reason, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING at",
    )
    .bind(org.as_uuid())
    .bind(e.session)
    .bind(e.employee_id)
    .bind(e.action.as_str())
    .bind(e.actor.kind.as_str())
    .bind(e.actor.id.as_deref())
    .bind(&e.actor.name)
    .bind(e.reason)
    .bind(e.before.map(sqlx::types::Json))
    .bind(e.after.map(sqlx::types::Json))
    .fetch_one(&mut *conn)
    .await
    .map_err(Into::into)
}

/// Runs a correction inside its transaction and idempotency key; kicks the relay when it wrote.
async fn run<'a, F>(
    state: &'a State,
    idem: Idempotency,
    work: impl FnOnce(&'a State, Transaction<'static, Postgres>) -> F,
) -> db::Result<Bytes>
where
    F: std::future::Future<Output = (Transaction<'static, Postgres>, db::Result<Bytes>)>,
{
    let mut tx = state.pool.begin().await?;
    if let Some(answer) = idem.claim(&mut tx).await? {
        return answer.map_err(Into::into);
    }
    let (tx, result) = work(state, tx).await;
    let changed = result.is_ok();
    let answer = idem.settle(state, tx, result).await;
    if changed && answer.is_ok() {
        state.kick.kick();
        metrics::counter!("clokio_corrections_total").increment(1);
    }
    answer
}

fn employee_of(staff: &clokio_runtime::directory::Staff, id: i64) -> db::Result<Arc<Employee>> {
    staff
        .by_id
        .get(&EmployeeId::new(id))
        .cloned()
        .ok_or_else(|| {
            // Employees are never deleted: this replica's list predates the employee, and the
            // announcement that drops it is on its way.
            tracing::warn!(
                employee_id = id,
                "a session of an employee not yet in the staff list"
            );
            BusError::new(
                clokio_bus::ErrorCode::Unavailable,
                "The employee directory is being updated; try again",
            )
        })
        .map_err(Into::into)
}

/// The location a correction names, by name; None keeps the session's.
fn location_named(info: &OrgInfo, name: &str) -> db::Result<(LocationId, String)> {
    info.locations
        .iter()
        .find(|l| l.name == name)
        .map(|l| (l.id, l.name.clone()))
        .ok_or_else(|| {
            BusError::invalid(format!(
                "The location {name} is not a location of the organization"
            ))
        })
        .map_err(Into::into)
}

pub async fn update(state: &State, req: SessionUpdate) -> db::Result<Bytes> {
    let reason = check_reason(&req.reason)?;
    let new_breaks = req.breaks.as_deref().map(check_breaks).transpose()?;
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        SessionUpdateOp::NAME,
        &(
            &req.id,
            &req.clock_in,
            &req.clock_out,
            &req.breaks,
            &req.location,
            &reason,
        ),
    );
    let (info, staff) = tokio::try_join!(
        state.directory.org(req.org_id),
        state.directory.staff(req.org_id)
    )?;
    let location = req
        .location
        .as_deref()
        .map(|name| location_named(&info, name))
        .transpose()?;
    let org = req.org_id;
    run(state, idem, |state, mut tx| async move {
        let result: db::Result<_> = async {
            let id = req.id.get();
            let employee_id = employee_of_session(&mut tx, org, id).await?;
            let open = lock_employee(&mut tx, org, employee_id).await?;
            let before = load(&mut tx, org, id, true).await?.ok_or_else(not_found)?;
            let employee = employee_of(&staff, employee_id)?;
            let now = whole_seconds(Utc::now());
            let shape = Shape {
                clock_in: req.clock_in.map_or(before.row.clock_in, whole_seconds),
                clock_out: req.clock_out.map(whole_seconds).or(before.row.clock_out),
                breaks: new_breaks,
            };
            if shape.clock_out.is_none()
                && shape.breaks.is_some()
                && before.row.break_open_since.is_some()
            {
                return Err(BusError::conflict(
                    "The employee is on a break; end the break or set a clock_out first",
                ).into());
            }
            let max_hours = MAX_SESSION_HOURS.max(info.org.settings.max_shift_hours);
            shape.check(&before.breaks, now, max_hours)?;
            let tz = info.org.timezone;
            let work_date = tz.date_of(shape.clock_in);
            periods::check_open(
                &mut tx,
                org,
                &[before.row.work_date, work_date],
            )
            .await?;
            check_overlap(
                &mut tx,
                org,
                employee_id,
                Some(id),
                shape.clock_in,
                shape.clock_out,
            )
            .await?;
            // The breaks as they will be: given ones replace all; a clock-out ends a running one.
            let (break_seconds, break_open_since) = match (&shape.breaks, shape.clock_out) {
                (Some(b), _) => (b.iter().map(|(s, e)| (*e - *s).num_seconds()).sum(), None),
                (None, Some(out)) => (
                    before.row.break_seconds
                        + before
                            .row
                            .break_open_since
                            .map_or(0, |since| (out - since).num_seconds().max(0)),
                    None,
                ),
                (None, None) => (before.row.break_seconds, before.row.break_open_since),
            };
            if let Some(b) = &shape.breaks {
                sqlx::query("DELETE FROM breaks WHERE session_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_breaks(&mut tx, id, b).await?;
            } else if let Some(out) = shape.clock_out {
                sqlx::query(
                    "UPDATE breaks SET ended_at = $2 WHERE session_id = $1 AND ended_at IS NULL",
                )
                .bind(id)
                .bind(out)
                .execute(&mut *tx)
                .await?;
            }
            let (location_id, location_name) = location
                .clone()
                .unwrap_or((LocationId::new(before.row.location_id), before.row.location.clone()));
            let closes = before.row.clock_out.is_none() && shape.clock_out.is_some();
            sqlx::query(
                "UPDATE sessions SET work_date = $2, clock_in = $3, clock_out = $4, \
                    location_id = $5, location = $6, \
                    out_location_id = CASE WHEN $4 IS NULL THEN NULL \
                        ELSE coalesce(out_location_id, $5) END, \
                    out_location = CASE WHEN $4 IS NULL THEN NULL ELSE coalesce(out_location, $6) END, \
                    break_seconds = $7, break_open_since = $8, \
                    auto_closed = auto_closed AND clock_out IS NOT DISTINCT FROM $4, \
                    revision = revision + 1 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(work_date)
            .bind(shape.clock_in)
            .bind(shape.clock_out)
            .bind(location_id.get())
            .bind(&location_name)
            .bind(break_seconds)
            .bind(break_open_since)
            .execute(&mut *tx)
            .await?;
            // The employee's last event is past every time the session now holds, so a late
            // offline punch cannot land inside it (a new break included).
            let latest = [shape.clock_out, shape.breaks.iter().flatten().map(|b| b.1).max()]
                .into_iter()
                .flatten()
                .fold(shape.clock_in, DateTime::max);
            sqlx::query(
                "UPDATE employee_state SET \
                    open_session_id = CASE WHEN $3 THEN NULL ELSE open_session_id END, \
                    last_event_at = greatest(last_event_at, $4) \
                 WHERE org_id = $1 AND employee_id = $2",
            )
            .bind(org.as_uuid())
            .bind(employee_id)
            .bind(closes && open == Some(id))
            .bind(latest)
            .execute(&mut *tx)
            .await?;
            let after = load(&mut tx, org, id, false).await?.ok_or_else(not_found)?;
            let (b, a) = (before.state(), after.state());
            let at = audit(
                &mut tx,
                org,
                Entry {
                    session: id,
                    employee_id,
                    action: CorrectionAction::Updated,
                    actor: &req.actor,
                    reason: &reason,
                    before: Some(&b),
                    after: Some(&a),
                },
            )
            .await?;
            let note = CorrectionNote {
                action: CorrectionAction::Updated,
                reason,
                by: req.actor,
                before: Some(b),
                after: Some(a),
            };
            emit(state, &mut tx, org, after.event(&employee, note, at), at).await?;
            Ok(to_bytes(&after.view(&employee))?)
        }
        .await;
        (tx, result)
    })
    .await
}

pub async fn delete(state: &State, req: SessionDelete) -> db::Result<Bytes> {
    let reason = check_reason(&req.reason)?;
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        SessionDeleteOp::NAME,
        &(&req.id, &reason),
    );
    let staff = state.directory.staff(req.org_id).await?;
    let org = req.org_id;
    run(state, idem, |state, mut tx| async move {
        let result: db::Result<_> = async {
            let id = req.id.get();
            let employee_id = employee_of_session(&mut tx, org, id).await?;
            lock_employee(&mut tx, org, employee_id).await?;
            let before = load(&mut tx, org, id, true).await?.ok_or_else(not_found)?;
            let employee = employee_of(&staff, employee_id)?;
            periods::check_open(&mut tx, org, &[before.row.work_date]).await?;
            sqlx::query("DELETE FROM breaks WHERE session_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE employee_state SET open_session_id = NULL \
                 WHERE org_id = $1 AND employee_id = $2 AND open_session_id = $3",
            )
            .bind(org.as_uuid())
            .bind(employee_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let b = before.state();
            let at = audit(
                &mut tx,
                org,
                Entry {
                    session: id,
                    employee_id,
                    action: CorrectionAction::Deleted,
                    actor: &req.actor,
                    reason: &reason,
                    before: Some(&b),
                    after: None,
                },
            )
            .await?;
            let note = CorrectionNote {
                action: CorrectionAction::Deleted,
                reason,
                by: req.actor,
                before: Some(b),
                after: None,
            };
            // The tombstone's revision is past every state the session had.
            let mut gone = Loaded {
                row: Row {
                    revision: before.row.revision + 1,
                    ..before.row
                },
                breaks: before.breaks,
            };
            let mut event = gone.event(&employee, note, at);
            event.deleted = true;
            emit(state, &mut tx, org, event, at).await?;
            gone.row.revision -= 1;
            Ok(to_bytes(&gone.view(&employee))?)
        }
        .await;
        (tx, result)
    })
    .await
}

pub async fn create(state: &State, req: SessionCreate) -> db::Result<Bytes> {
    let reason = check_reason(&req.reason)?;
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        SessionCreateOp::NAME,
        &(&req.record, &reason),
    );
    let (info, staff) = tokio::try_join!(
        state.directory.org(req.org_id),
        state.directory.staff(req.org_id)
    )?;
    let org = req.org_id;
    run(state, idem, |state, mut tx| async move {
        let result: db::Result<_> = async {
            let now = whole_seconds(Utc::now());
            let checked = crate::handlers::import::check(&info, &staff, 0, &req.record, now)
                .map_err(|err| {
                    // An import names the record; a single session does not need to.
                    let message = err.message.strip_prefix("records.0: ").map(str::to_owned);
                    match message {
                        Some(m) => BusError::new(err.code, m),
                        None => err,
                    }
                })?;
            let employee = checked.employee.clone();
            let employee_id = employee.employee_id.get();
            lock_employee(&mut tx, org, employee_id).await?;
            let work_date = info.org.timezone.date_of(checked.clock_in);
            periods::check_open(&mut tx, org, &[work_date]).await?;
            check_overlap(
                &mut tx,
                org,
                employee_id,
                None,
                checked.clock_in,
                Some(checked.clock_out),
            )
            .await?;
            let break_seconds: i64 = checked
                .breaks
                .iter()
                .map(|(s, e)| (*e - *s).num_seconds())
                .sum();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO sessions (org_id, employee_id, work_date, clock_in, clock_out, \
                    location_id, location, out_location_id, out_location, break_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7, $8) RETURNING id",
            )
            .bind(org.as_uuid())
            .bind(employee_id)
            .bind(work_date)
            .bind(checked.clock_in)
            .bind(checked.clock_out)
            .bind(checked.location_id.get())
            .bind(&checked.location)
            .bind(break_seconds)
            .fetch_one(&mut *tx)
            .await?;
            insert_breaks(&mut tx, id, &checked.breaks).await?;
            sqlx::query(
                "UPDATE employee_state SET last_event_at = greatest(last_event_at, $3) \
                 WHERE org_id = $1 AND employee_id = $2",
            )
            .bind(org.as_uuid())
            .bind(employee_id)
            .bind(checked.clock_out)
            .execute(&mut *tx)
            .await?;
            let after = load(&mut tx, org, id, false).await?.ok_or_else(not_found)?;
            let a = after.state();
            let at = audit(
                &mut tx,
                org,
                Entry {
                    session: id,
                    employee_id,
                    action: CorrectionAction::Created,
                    actor: &req.actor,
                    reason: &reason,
                    before: None,
                    after: Some(&a),
                },
            )
            .await?;
            let note = CorrectionNote {
                action: CorrectionAction::Created,
                reason,
                by: req.actor,
                before: None,
                after: Some(a),
            };
            emit(state, &mut tx, org, after.event(&employee, note, at), at).await?;
            Ok(to_bytes(&after.view(&employee))?)
        }
        .await;
        (tx, result)
    })
    .await
}

async fn insert_breaks(conn: &mut PgConnection, session: i64, breaks: &[Span]) -> db::Result<()> {
    if breaks.is_empty() {
        return Ok(());
    }
    let (starts, ends): (Vec<_>, Vec<_>) = breaks.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO breaks (session_id, started_at, ended_at) \
         SELECT $1, s, e FROM unnest($2::timestamptz[], $3::timestamptz[]) AS b(s, e)",
    )
    .bind(session)
    .bind(starts)
    .bind(ends)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn emit(
    state: &State,
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    event: AttendanceEvent,
    at: DateTime<Utc>,
) -> db::Result<()> {
    let mut rows = outbox::Rows::default();
    events::emit(state, &mut rows, org, kind::CORRECTED, at, event)?;
    Ok(rows.flush(tx).await?)
}

pub async fn get(state: &State, req: SessionRef) -> db::Result<Bytes> {
    let staff = state.directory.staff(req.org_id).await?;
    let mut conn = state.pool.acquire().await?;
    let employee_id = employee_of_session(&mut conn, req.org_id, req.id.get()).await?;
    let session = load(&mut conn, req.org_id, req.id.get(), false)
        .await?
        .ok_or_else(not_found)?;
    Ok(to_bytes(
        &session.view(&*employee_of(&staff, employee_id)?),
    )?)
}

#[derive(sqlx::FromRow)]
struct CorrectionRow {
    id: i64,
    session_id: i64,
    action: String,
    actor_kind: String,
    actor_id: Option<String>,
    actor_name: String,
    reason: String,
    before: Option<sqlx::types::Json<SessionState>>,
    after: Option<sqlx::types::Json<SessionState>>,
    at: DateTime<Utc>,
}

pub async fn history(state: &State, req: SessionRef) -> db::Result<Bytes> {
    let rows: Vec<CorrectionRow> = sqlx::query_as(
        "SELECT id, session_id, action, actor_kind, actor_id, actor_name, reason, before, after, at \
         FROM corrections WHERE org_id = $1 AND session_id = $2 ORDER BY id",
    )
    .bind(req.org_id.as_uuid())
    .bind(req.id.get())
    .fetch_all(&state.pool)
    .await?;
    if rows.is_empty() {
        // A session never corrected has an empty history; one that never existed is unknown.
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE org_id = $1 AND id = $2")
                .bind(req.org_id.as_uuid())
                .bind(req.id.get())
                .fetch_optional(&state.pool)
                .await?;
        if exists.is_none() {
            return Err(not_found().into());
        }
    }
    let history: Vec<Correction> = rows
        .into_iter()
        .map(|r| Correction {
            id: r.id,
            attendance_id: AttendanceId::new(r.session_id),
            action: CorrectionAction::parse(&r.action).unwrap_or(CorrectionAction::Updated),
            by: Actor {
                kind: ActorKind::parse(&r.actor_kind).unwrap_or(ActorKind::System),
                id: r.actor_id,
                name: r.actor_name,
            },
            reason: r.reason,
            at: r.at,
            before: r.before.map(|j| j.0),
            after: r.after.map(|j| j.0),
        })
        .collect();
    Ok(to_bytes(&history)?)
}
