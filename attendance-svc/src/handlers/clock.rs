//! Clock-in, clock-out, break-start and break-end.
//!
//! A write reads the employee's state and open session in one statement, decides, then writes the
//! change and its outbox events in one statement that applies only if the state's `version` is
//! still the one read (every change bumps it). Two simultaneous clock-ins are thus decided one
//! after the other: the second finds the version moved, reads again and is refused (and the
//! partial unique index on open sessions refuses a second open session even if code did not).
//! Without an `Idempotency-Key` the two statements run on their own, two round trips in all; with
//! one they run inside the key's transaction.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use clokio_bus::events::kind;
use clokio_bus::ids::{AttendanceId, LocationId};
use clokio_bus::ops::{
    BreakEndOp, BreakEnded, BreakStartOp, BreakStarted, ClockInOp, ClockOutOp, ClockRequest,
    ClockedIn, ClockedOut, Employee, Operation,
};
use clokio_bus::server::to_bytes;
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{BusError, ErrorCode};
use std::sync::LazyLock;

use sqlx::PgConnection;
use sqlx::postgres::PgArguments;

use crate::events::{self, Clocked};
use crate::idempotency::Idempotency;
use crate::{State, autoclose, db, geo, periods};
use clokio_bus::calendar::whole_seconds;
use clokio_bus::ops::period_closed_message;
use clokio_runtime::directory::OrgInfo;
use clokio_runtime::outbox;

/// How far ahead of our clock an offline kiosk's timestamp may be.
const MAX_FUTURE: Duration = Duration::minutes(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ClockIn,
    ClockOut,
    BreakStart,
    BreakEnd,
}

impl Action {
    fn operation(self) -> &'static str {
        match self {
            Self::ClockIn => ClockInOp::NAME,
            Self::ClockOut => ClockOutOp::NAME,
            Self::BreakStart => BreakStartOp::NAME,
            Self::BreakEnd => BreakEndOp::NAME,
        }
    }
}

pub async fn handle(state: &State, action: Action, req: ClockRequest) -> db::Result<Bytes> {
    let same = (&req.employee_code, &req.coordinates, &req.timestamp);
    let idem = Idempotency::new(
        req.org_id,
        req.idempotency_key.as_deref(),
        action.operation(),
        &same,
    );
    // employee-svc's data first: no connection or key lock is held while NATS answers. A refusal
    // that depends on it (unknown employee) is therefore not stored with the key.
    let (info, employee) = tokio::try_join!(
        state.directory.org(req.org_id),
        state.directory.employee(req.org_id, &req.employee_code)
    )?;
    let transaction = async {
        if !idem.is_keyed() {
            let mut conn = state.pool.acquire().await?;
            let result = apply(state, &mut conn, false, action, &req, &info, &employee).await;
            return Ok::<_, db::Error>((result.is_ok(), result));
        }
        let mut tx = state.pool.begin().await?;
        if let Some(answer) = idem.claim(&mut tx).await? {
            return Ok((false, answer.map_err(Into::into)));
        }
        let result = apply(state, &mut tx, true, action, &req, &info, &employee).await;
        let changed = result.is_ok();
        Ok((changed, idem.settle(state, tx, result).await))
    };
    let (changed, answer) =
        tracing::Instrument::instrument(transaction, clokio_runtime::db::span(action.operation()))
            .await?;
    if changed && answer.is_ok() {
        state.kick.kick();
        metrics::counter!("clokio_clock_events_total", "action" => action.operation()).increment(1);
    }
    answer
}

/// Where an event happens: the nearest geofence containing the reported position, else the
/// employee's own location.
fn place(
    info: &OrgInfo,
    employee: &Employee,
    req: &ClockRequest,
) -> db::Result<(LocationId, String)> {
    match req.coordinates {
        Some(point) => {
            geo::validate(point).map_err(BusError::invalid)?;
            let location = geo::locate(&info.locations, point).ok_or_else(|| {
                BusError::invalid("Location is outside of any allowed work location")
            })?;
            Ok((location.id, location.name.clone()))
        }
        None => Ok((employee.location_id, employee.location.clone())),
    }
}

/// A kiosk's own timestamp, in whole seconds, checked against our clock.
fn not_in_the_future(at: DateTime<Utc>, now: DateTime<Utc>) -> db::Result<DateTime<Utc>> {
    let at = whole_seconds(at);
    if at > now + MAX_FUTURE {
        return Err(BusError::invalid(
            "The timestamp field must not be more than 2 minutes in the future",
        )
        .into());
    }
    Ok(at)
}

/// A kiosk's own timestamp, checked against the org's offline window.
fn within_offline_window(
    info: &OrgInfo,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> db::Result<DateTime<Utc>> {
    let hours = info.org.settings.offline_backdate_hours;
    if at < now - Duration::hours(i64::from(hours)) {
        return Err(BusError::invalid(format!(
            "The timestamp field must not be more than {hours} hours in the past"
        ))
        .into());
    }
    Ok(at)
}

/// The employee's state and open session, read in one statement (one snapshot).
#[derive(sqlx::FromRow)]
struct Current {
    /// What the write is conditional on: bumped by every change of the employee's attendance.
    version: i64,
    open_session_id: Option<i64>,
    last_event_at: Option<DateTime<Utc>>,
    /// The id a clock-in's session gets, drawn in the same statement when asked for and no
    /// session is open: the clock-in event carries it, and is written with the session.
    new_session_id: Option<i64>,
    /// The org's closed months from the earliest a punch may still be dated in.
    closed_months: Vec<chrono::NaiveDate>,
    #[sqlx(flatten)]
    session: OpenSessionRow,
}

/// The open session's columns (all null when there is none).
#[derive(sqlx::FromRow)]
struct OpenSessionRow {
    work_date: Option<chrono::NaiveDate>,
    clock_in: Option<DateTime<Utc>>,
    location_id: Option<i64>,
    location: Option<String>,
    break_seconds: Option<i64>,
    break_open_since: Option<DateTime<Utc>>,
    revision: Option<i64>,
}

async fn current(
    conn: &mut PgConnection,
    employee: &Employee,
    org: clokio_bus::ids::OrgId,
    clock_in: bool,
    closed_from: chrono::NaiveDate,
) -> db::Result<Current> {
    let read = || {
        sqlx::query_as(
            "SELECT st.version, st.open_session_id, st.last_event_at, \
                CASE WHEN $3 AND st.open_session_id IS NULL THEN nextval('sessions_id_seq') END \
                AS new_session_id, \
                ARRAY(SELECT month FROM closed_periods WHERE org_id = $1 AND month >= $4) \
                AS closed_months, \
                s.work_date, s.clock_in, s.location_id, s.location, s.break_seconds, \
                s.break_open_since, s.revision \
             FROM employee_state st LEFT JOIN sessions s ON s.id = st.open_session_id \
             WHERE st.org_id = $1 AND st.employee_id = $2",
        )
        .bind(org.as_uuid())
        .bind(employee.employee_id.get())
        .bind(clock_in)
        .bind(closed_from)
    };
    if let Some(found) = read().fetch_optional(&mut *conn).await? {
        return Ok(found);
    }
    // The employee's first event: their state row starts now (under the org's period lock, so a
    // close under way either locks it or is seen by the punch).
    sqlx::query(&INSERT_STATE)
        .bind(org.as_uuid())
        .bind(employee.employee_id.get())
        .execute(&mut *conn)
        .await?;
    Ok(read().fetch_one(&mut *conn).await?)
}

static INSERT_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH p AS ({}) INSERT INTO employee_state (org_id, employee_id) SELECT $1, $2 FROM p \
         ON CONFLICT (org_id, employee_id) DO NOTHING",
        periods::SHARE_LOCK
    )
});

/// How often a write reads again after another write of the same employee got in between.
const MAX_TRIES: usize = 8;

/// The statements of the four writes. Each first moves the employee's state on, only from the
/// version read (`st`, which also takes the row's lock; a trigger bumps the version on every
/// update of the row); its other changes and its events
/// (`outbox_rows`, bound after the statement's own parameters) happen only if that did. The
/// statement returns a row when it wrote.
const WROTE: &str = "EXISTS (SELECT 1 FROM st)";
static CLOCK_IN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET open_session_id = $7, last_event_at = $4 \
            WHERE org_id = $1 AND employee_id = $2 AND version = $8 AND open_session_id IS NULL \
            RETURNING 1), \
         s AS ( \
            INSERT INTO sessions (id, org_id, employee_id, work_date, clock_in, location_id, location, \
                prefix) \
            SELECT $7, $1, $2, $3, $4, $5, $6, $9 FROM st), \
         {} \
         SELECT 1 FROM st",
        outbox::rows_cte_if(10, WROTE)
    )
});
static CLOCK_OUT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET open_session_id = NULL, last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $7 AND version = $8 AND open_session_id = $2 \
            RETURNING 1), \
         s AS ( \
            UPDATE sessions SET clock_out = $3, out_location_id = $4, out_location = $5, \
                break_seconds = $6, break_open_since = NULL, revision = revision + 1 \
            WHERE id = $2 AND {WROTE}), \
         b AS (UPDATE breaks SET ended_at = $3 WHERE session_id = $2 AND ended_at IS NULL AND {WROTE}), \
         {} \
         SELECT 1 FROM st",
        outbox::rows_cte_if(9, WROTE)
    )
});
static BREAK_START: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $4 AND version = $5 AND open_session_id = $2 \
            RETURNING 1), \
         b AS (INSERT INTO breaks (session_id, started_at) SELECT $2, $3 FROM st), \
         s AS (UPDATE sessions SET break_open_since = $3, revision = revision + 1 \
               WHERE id = $2 AND {WROTE}), \
         {} \
         SELECT 1 FROM st",
        outbox::rows_cte_if(6, WROTE)
    )
});
static BREAK_END: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $4 AND version = $6 AND open_session_id = $2 \
            RETURNING 1), \
         b AS (UPDATE breaks SET ended_at = $3 WHERE session_id = $2 AND ended_at IS NULL AND {WROTE}), \
         s AS (UPDATE sessions SET break_open_since = NULL, break_seconds = break_seconds + $5, \
               revision = revision + 1 WHERE id = $2 AND {WROTE}), \
         {} \
         SELECT 1 FROM st",
        outbox::rows_cte_if(7, WROTE)
    )
});

struct OpenSession {
    id: i64,
    work_date: chrono::NaiveDate,
    clock_in: DateTime<Utc>,
    location_id: i64,
    location: String,
    break_seconds: i64,
    break_open_since: Option<DateTime<Utc>>,
    revision: i64,
}

impl OpenSession {
    /// The open session `id` from the state read's columns.
    fn of(id: i64, row: OpenSessionRow) -> db::Result<Self> {
        match row {
            OpenSessionRow {
                work_date: Some(work_date),
                clock_in: Some(clock_in),
                location_id: Some(location_id),
                location: Some(location),
                break_seconds: Some(break_seconds),
                break_open_since,
                revision: Some(revision),
            } => Ok(Self {
                id,
                work_date,
                clock_in,
                location_id,
                location,
                break_seconds,
                break_open_since,
                revision,
            }),
            _ => {
                tracing::error!(id, "the open session of an employee's state is missing");
                Err(BusError::internal().into())
            }
        }
    }

    fn clocked<'a>(&'a self, attendance_id: AttendanceId, employee: &'a Employee) -> Clocked<'a> {
        Clocked {
            attendance_id,
            employee,
            location_id: LocationId::new(self.location_id),
            location: &self.location,
            work_date: self.work_date,
            clock_in: self.clock_in,
            revision: self.revision + 1,
        }
    }
}

/// Decides and writes; reads again when another write of the employee got in between. `keyed`:
/// `conn` is in an idempotency key's transaction, whose work is undone if the punch is refused.
async fn apply(
    state: &State,
    conn: &mut PgConnection,
    keyed: bool,
    action: Action,
    req: &ClockRequest,
    info: &OrgInfo,
    employee: &Employee,
) -> db::Result<Bytes> {
    for _ in 0..MAX_TRIES {
        if let Some(reply) = attempt(state, conn, keyed, action, req, info, employee).await? {
            return Ok(reply);
        }
        metrics::counter!("clokio_clock_write_retries_total").increment(1);
    }
    tracing::warn!("clock write kept losing to other writes of the employee");
    Err(BusError::new(
        ErrorCode::Unavailable,
        "The employee's attendance is being changed by other requests; try again",
    )
    .into())
}

/// One decision on the employee's current state and its conditional write: `None` when the
/// state moved on since it was read (nothing was written).
async fn attempt(
    state: &State,
    conn: &mut PgConnection,
    keyed: bool,
    action: Action,
    req: &ClockRequest,
    info: &OrgInfo,
    employee: &Employee,
) -> db::Result<Option<Bytes>> {
    let now = whole_seconds(Utc::now());
    // The window of an offline kiosk is checked after the closed periods: a punch dated in a
    // closed month is refused as such, however old it is.
    let requested = req
        .timestamp
        .map(|at| not_in_the_future(at, now))
        .transpose()?;
    if action == Action::ClockIn && employee.status == EmployeeStatus::Inactive {
        return Err(BusError::new(ErrorCode::Forbidden, "Employee is inactive").into());
    }
    // Breaks carry no position: they happen where the session is.
    let (location_id, location) = place(info, employee, req)?;
    let tz = info.org.timezone;
    let settings = &info.org.settings;
    // The closed months a punch may fall in: from the start of the offline window (or the
    // punch, if older), and a day more for time zones.
    let window = now - Duration::hours(i64::from(settings.offline_backdate_hours));
    let closed_from = periods::month_of(
        tz.date_of(requested.map_or(window, |at| at.min(window)) - Duration::days(1)),
    );
    let Current {
        version,
        open_session_id: open,
        last_event_at: last,
        new_session_id,
        closed_months,
        session: open_row,
    } = current(
        conn,
        employee,
        req.org_id,
        action == Action::ClockIn,
        closed_from,
    )
    .await?;
    if let Some(at) = requested {
        let month = periods::month_of(tz.date_of(at));
        if closed_months.contains(&month) {
            return Err(BusError::conflict(period_closed_message(month)).into());
        }
        within_offline_window(info, at, now)?;
    }
    let open = open.map(|id| OpenSession::of(id, open_row)).transpose()?;
    if let Some(s) = &open {
        // A forgotten clock-out: the session is closed at its limit first, then this punch is
        // decided on what follows. (A punch dated before the limit, from an offline kiosk, is
        // still the session's own.)
        let limit = s.clock_in + Duration::hours(i64::from(settings.max_shift_hours));
        let due = requested.unwrap_or(now);
        if limit <= due {
            // The close stands whatever becomes of this punch: a keyed punch's transaction is
            // rolled back to before its work when the punch is refused, so the close is committed
            // on a connection of its own.
            let closed = if keyed {
                let mut own = state.pool.acquire().await?;
                autoclose::close(state, &mut own, info, employee, s.id, due).await?
            } else {
                autoclose::close(state, conn, info, employee, s.id, due).await?
            };
            if !closed {
                // Another replica's sweep holds it and is closing it: give that a moment.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            return Ok(None);
        }
    }
    let session = match (action, open) {
        (Action::ClockIn, Some(_)) => {
            return Err(BusError::conflict("Employee is already clocked in").into());
        }
        (Action::ClockIn, None) => None,
        (Action::ClockOut | Action::BreakStart, None) => {
            return Err(BusError::conflict("Employee is not clocked in").into());
        }
        (Action::BreakEnd, None) => {
            return Err(BusError::conflict("Employee is not on a break").into());
        }
        (_, Some(s)) => Some(s),
    };
    if let Some(s) = &session {
        match (action, s.break_open_since) {
            (Action::BreakStart, Some(_)) => {
                return Err(BusError::conflict("Employee is already on a break").into());
            }
            (Action::BreakEnd, None) => {
                return Err(BusError::conflict("Employee is not on a break").into());
            }
            _ => {}
        }
    }
    // Events of one employee stay in order: a kiosk's late report may not come before what is
    // already recorded, and our own clock never records before it either.
    let at = match (requested, last) {
        (Some(at), Some(last)) if at < last => {
            return Err(BusError::invalid(format!(
                "The timestamp must not be earlier than the employee's last attendance event ({})",
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .into());
        }
        (Some(at), _) => at,
        (None, Some(last)) => now.max(last),
        (None, None) => now,
    };
    let month = periods::month_of(tz.date_of(at));
    if closed_months.contains(&month) {
        return Err(BusError::conflict(period_closed_message(month)).into());
    }
    let org = req.org_id;
    let mut rows = outbox::Rows::default();
    let reply = match (action, session) {
        (Action::ClockIn, _) => {
            let id = new_session_id.ok_or_else(BusError::internal)?;
            let work_date = tz.date_of(at);
            let attendance_id = AttendanceId::new(id);
            let clocked = Clocked {
                attendance_id,
                employee,
                location_id,
                location: &location,
                work_date,
                clock_in: at,
                revision: 1,
            };
            clocked.emit(state, &mut rows, org, kind::CLOCK_IN, at)?;
            let query = sqlx::query(&CLOCK_IN)
                .bind(org.as_uuid())
                .bind(employee.employee_id.get())
                .bind(work_date)
                .bind(at)
                .bind(location_id.get())
                .bind(&location)
                .bind(id)
                .bind(version)
                .bind(state.subjects.prefix().to_string());
            if !wrote(state, conn, keyed, rows.bind(query), Trace::Session(id)).await? {
                return Ok(None);
            }
            to_bytes(&ClockedIn {
                attendance_id,
                employee_name: employee.name.clone(),
                clock_in: at,
                location,
            })
        }
        (Action::ClockOut, Some(s)) => {
            let open_break = s.break_open_since.map(|since| (at - since).num_seconds());
            let break_seconds = s.break_seconds + open_break.unwrap_or(0);
            let attendance_id = AttendanceId::new(s.id);
            let total_seconds = (at - s.clock_in).num_seconds() - break_seconds;
            let clocked = s.clocked(attendance_id, employee);
            if open_break.is_some() {
                clocked.emit(state, &mut rows, org, kind::BREAK_END, at)?;
            }
            let mut event = clocked.event(kind::CLOCK_OUT, at);
            event.location_id = location_id;
            event.location_name = location.clone();
            event.clock_out = Some(at);
            event.total_hours = Some(clokio_bus::calendar::hours(total_seconds));
            event.break_minutes = Some(clokio_bus::calendar::minutes(break_seconds));
            event.break_seconds = Some(break_seconds);
            events::emit(state, &mut rows, org, kind::CLOCK_OUT, at, event)?;
            let query = sqlx::query(&CLOCK_OUT)
                .bind(org.as_uuid())
                .bind(s.id)
                .bind(at)
                .bind(location_id.get())
                .bind(&location)
                .bind(break_seconds)
                .bind(employee.employee_id.get())
                .bind(version);
            if !wrote(
                state,
                conn,
                keyed,
                rows.bind(query),
                Trace::ClockOut(s.id, at),
            )
            .await?
            {
                return Ok(None);
            }
            to_bytes(&ClockedOut {
                attendance_id,
                employee_name: employee.name.clone(),
                clock_in: s.clock_in,
                clock_out: at,
                location,
                total_hours: clokio_bus::calendar::hours(total_seconds),
                break_minutes: clokio_bus::calendar::minutes(break_seconds),
            })
        }
        (Action::BreakStart, Some(s)) => {
            let attendance_id = AttendanceId::new(s.id);
            s.clocked(attendance_id, employee).emit(
                state,
                &mut rows,
                org,
                kind::BREAK_START,
                at,
            )?;
            let query = sqlx::query(&BREAK_START)
                .bind(org.as_uuid())
                .bind(s.id)
                .bind(at)
                .bind(employee.employee_id.get())
                .bind(version);
            if !wrote(
                state,
                conn,
                keyed,
                rows.bind(query),
                Trace::BreakStart(s.id, at),
            )
            .await?
            {
                return Ok(None);
            }
            to_bytes(&BreakStarted {
                attendance_id,
                employee_name: employee.name.clone(),
                break_start: at,
            })
        }
        (Action::BreakEnd, Some(s)) => {
            let since = s.break_open_since.ok_or_else(BusError::internal)?;
            let seconds = (at - since).num_seconds();
            let attendance_id = AttendanceId::new(s.id);
            s.clocked(attendance_id, employee)
                .emit(state, &mut rows, org, kind::BREAK_END, at)?;
            let query = sqlx::query(&BREAK_END)
                .bind(org.as_uuid())
                .bind(s.id)
                .bind(at)
                .bind(employee.employee_id.get())
                .bind(seconds)
                .bind(version);
            if !wrote(
                state,
                conn,
                keyed,
                rows.bind(query),
                Trace::BreakEnd(s.id, at),
            )
            .await?
            {
                return Ok(None);
            }
            to_bytes(&BreakEnded {
                attendance_id,
                employee_name: employee.name.clone(),
                break_start: since,
                break_end: at,
                duration_minutes: clokio_bus::calendar::minutes(seconds),
            })
        }
        (_, None) => Err(BusError::internal()),
    };
    Ok(reply.map(Some)?)
}

/// What a clock write leaves behind, to tell after a lost connection whether it committed.
#[derive(Clone, Copy)]
enum Trace {
    /// The session a clock-in creates (its id is taken before the write).
    Session(i64),
    ClockOut(i64, DateTime<Utc>),
    BreakStart(i64, DateTime<Utc>),
    BreakEnd(i64, DateTime<Utc>),
}

impl Trace {
    async fn found(self, pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
        let (sql, session, at) = match self {
            Self::Session(id) => (
                "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)",
                id,
                None,
            ),
            Self::ClockOut(id, at) => (
                "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND clock_out = $2)",
                id,
                Some(at),
            ),
            Self::BreakStart(id, at) => (
                "SELECT EXISTS (SELECT 1 FROM breaks WHERE session_id = $1 AND started_at = $2)",
                id,
                Some(at),
            ),
            Self::BreakEnd(id, at) => (
                "SELECT EXISTS (SELECT 1 FROM breaks WHERE session_id = $1 AND ended_at = $2)",
                id,
                Some(at),
            ),
        };
        let (found,): (bool,) = sqlx::query_as(sql)
            .bind(session)
            .bind(at)
            .fetch_one(pool)
            .await?;
        Ok(found)
    }
}

/// Runs a conditional write: true when it wrote.
///
/// Without a key the write is its own transaction, so a connection lost while it ran leaves its
/// outcome unknown: the write may have committed. The employee's state then shows whether it did
/// (a clock-in answered 503 although it was recorded would make the kiosk's retry a 409, and its
/// event would announce a punch the client was told had failed). In a key's transaction nothing
/// commits until [`Idempotency::settle`], which finds out the same way.
async fn wrote(
    state: &State,
    conn: &mut PgConnection,
    keyed: bool,
    query: sqlx::query::Query<'_, sqlx::Postgres, PgArguments>,
    trace: Trace,
) -> db::Result<bool> {
    match query.fetch_optional(conn).await {
        Ok(row) => Ok(row.is_some()),
        Err(err) if !keyed && clokio_runtime::db::is_connection_lost(&err) => {
            tracing::warn!(%err, "connection lost during a clock write; finding out whether it committed");
            match clokio_runtime::db::settle(state.settle_wait, || trace.found(&state.pool)).await {
                Some(true) => Ok(true),
                Some(false) => Err(err.into()),
                None => Err(clokio_runtime::db::outcome_unknown().into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}
