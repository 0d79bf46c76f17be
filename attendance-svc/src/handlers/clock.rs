//! Clock-in, clock-out, break-start and break-end.
//!
//! A write reads the employee's state and open session in one statement, decides, then writes the
//! change and its outbox events in one statement that applies only if the state's `version` is
//! still the one read (every change bumps it). Two simultaneous clock-ins are thus decided one
//! after the other: the second finds the version moved, reads again and is refused (and the
//! partial unique index on open sessions refuses a second open session even if code did not).
//! Without an `Idempotency-Key` the statements run on their own; with one they run inside the
//! key's transaction. The replica remembers the state each write answers ([`KnownStates`]), so
//! the employee's next punch there needs no read: one round trip instead of two.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use clokio_bus::events::kind;
use clokio_bus::ids::{AttendanceId, LocationId, OrgId};
use clokio_bus::ops::{
    BreakEndOp, BreakEnded, BreakStartOp, BreakStarted, ClockInOp, ClockOutOp, ClockRequest,
    ClockedIn, ClockedOut, Employee, Operation,
};
use clokio_bus::server::to_bytes;
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{BusError, ErrorCode};
use std::sync::{Arc, LazyLock};

use sqlx::PgConnection;
use sqlx::postgres::PgArguments;

use crate::events::{self, Clocked};
use crate::idempotency::Idempotency;
use crate::{State, autoclose, db, geo, periods};
use clokio_bus::calendar::whole_seconds;
use clokio_bus::ops::period_closed_message;
use clokio_runtime::directory::OrgInfo;
use clokio_runtime::outbox;

pub(crate) mod batch;

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
            // No connection is held while the punch waits for its batch (see [`batch`]).
            let result = apply(state, None, action, &req, &info, &employee).await;
            return Ok::<_, db::Error>((result.is_ok(), result));
        }
        let mut tx = state.pool.begin().await?;
        if let Some(answer) = idem.claim(&mut tx).await? {
            return Ok((false, answer.map_err(Into::into)));
        }
        let result = apply(state, Some(&mut tx), action, &req, &info, &employee).await;
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
#[derive(Clone, sqlx::FromRow)]
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
#[derive(Clone, sqlx::FromRow)]
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
    static READ: LazyLock<String> = LazyLock::new(|| state_select(2, "$3", 4, "true"));
    let read = || {
        sqlx::query_as(&READ)
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

/// The employee's state as [`Written`] reads it, with `wrote` false: of employee `$employee` of
/// org `$1`, as the statement's snapshot has it, when `only_if` (SQL) holds. The closed months
/// are those from `$closed_from`; a new session id is drawn when `draw` (SQL) holds and no session
/// is open.
fn state_select(employee: usize, draw: &str, closed_from: usize, only_if: &str) -> String {
    format!(
        "SELECT false AS wrote, e.version, e.open_session_id, e.last_event_at, \
            CASE WHEN {draw} AND e.open_session_id IS NULL THEN nextval('sessions_id_seq') END \
            AS new_session_id, \
            {closed} AS closed_months, \
            s.work_date, s.clock_in, s.location_id, s.location, s.break_seconds, \
            s.break_open_since, s.revision \
         FROM employee_state e LEFT JOIN sessions s ON s.id = e.open_session_id \
         WHERE e.org_id = $1 AND e.employee_id = ${employee} AND {only_if}",
        closed = closed_months(closed_from)
    )
}

/// The org's closed months from `$closed_from`, as an array.
fn closed_months(closed_from: usize) -> String {
    format!("ARRAY(SELECT month FROM closed_periods WHERE org_id = $1 AND month >= ${closed_from})")
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
/// version its decision was made on (`st`, which also takes the row's lock; a trigger bumps the
/// version on every update of the row); its other changes and its events (`outbox_rows`, bound
/// after the statement's own parameters) happen only if that did. Each answers one row
/// ([`Written`]): the employee's state after the write, from what the write itself returned, or,
/// when the version had moved on, the state as it stands, read by the same statement so that the
/// punch is decided again without another round trip.
const WROTE: &str = "EXISTS (SELECT 1 FROM st)";
const ST_RETURNING: &str = "RETURNING version, open_session_id, last_event_at";
/// The open session's columns, as `sessions` returns them.
const SESSION_COLUMNS: &str =
    "work_date, clock_in, location_id, location, break_seconds, break_open_since, revision";
/// The open session's columns from `s`, the write's own change of it.
const SESSION_OF_S: &str = "s.work_date, s.clock_in, s.location_id, s.location, s.break_seconds, \
    s.break_open_since, s.revision";
/// The session columns of an employee with no open session, after a clock-out.
const NO_SESSION: &str = "NULL::date AS work_date, NULL::timestamptz AS clock_in, \
    NULL::bigint AS location_id, NULL::text AS location, NULL::bigint AS break_seconds, \
    NULL::timestamptz AS break_open_since, NULL::bigint AS revision";

/// A write's answer (see above) for employee `$employee`, with the closed months from
/// `$closed_from`: `session` is the open session's columns after the write, `new_session_id` the
/// id the employee's next clock-in takes, `draw` whether the state read draws one instead (a
/// clock-in decided again needs it).
fn answer(
    employee: usize,
    closed_from: usize,
    new_session_id: &str,
    session: &str,
    draw: &str,
) -> String {
    let from = if session == NO_SESSION { "st" } else { "st, s" };
    format!(
        "SELECT true AS wrote, st.version, st.open_session_id, st.last_event_at, \
            {new_session_id} AS new_session_id, {closed} AS closed_months, {session} \
         FROM {from} \
         UNION ALL {read}",
        closed = closed_months(closed_from),
        read = state_select(employee, draw, closed_from, "NOT EXISTS (SELECT 1 FROM st)"),
    )
}

static CLOCK_IN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET open_session_id = $7, last_event_at = $4 \
            WHERE org_id = $1 AND employee_id = $2 AND version = $8 AND open_session_id IS NULL \
            {ST_RETURNING}), \
         s AS ( \
            INSERT INTO sessions (id, org_id, employee_id, work_date, clock_in, location_id, location, \
                prefix) \
            SELECT $7, $1, $2, $3, $4, $5, $6, $9 FROM st RETURNING {SESSION_COLUMNS}), \
         {} {}",
        outbox::rows_cte_if(11, WROTE),
        answer(2, 10, "NULL::bigint", SESSION_OF_S, "true")
    )
});
static CLOCK_OUT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET open_session_id = NULL, last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $7 AND version = $8 AND open_session_id = $2 \
            {ST_RETURNING}), \
         s AS ( \
            UPDATE sessions SET clock_out = $3, out_location_id = $4, out_location = $5, \
                break_seconds = $6, break_open_since = NULL, revision = revision + 1 \
            WHERE id = $2 AND {WROTE}), \
         b AS (UPDATE breaks SET ended_at = $3 WHERE session_id = $2 AND ended_at IS NULL AND {WROTE}), \
         {} {}",
        outbox::rows_cte_if(10, WROTE),
        // The employee's next clock-in takes this id, when this replica decides it.
        answer(7, 9, "nextval('sessions_id_seq')", NO_SESSION, "false")
    )
});
static BREAK_START: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $4 AND version = $5 AND open_session_id = $2 \
            {ST_RETURNING}), \
         b AS (INSERT INTO breaks (session_id, started_at) SELECT $2, $3 FROM st), \
         s AS (UPDATE sessions SET break_open_since = $3, revision = revision + 1 \
               WHERE id = $2 AND {WROTE} RETURNING {SESSION_COLUMNS}), \
         {} {}",
        outbox::rows_cte_if(7, WROTE),
        answer(4, 6, "NULL::bigint", SESSION_OF_S, "false")
    )
});
static BREAK_END: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH st AS ( \
            UPDATE employee_state SET last_event_at = $3 \
            WHERE org_id = $1 AND employee_id = $4 AND version = $6 AND open_session_id = $2 \
            {ST_RETURNING}), \
         b AS (UPDATE breaks SET ended_at = $3 WHERE session_id = $2 AND ended_at IS NULL AND {WROTE}), \
         s AS (UPDATE sessions SET break_open_since = NULL, break_seconds = break_seconds + $5, \
               revision = revision + 1 WHERE id = $2 AND {WROTE} RETURNING {SESSION_COLUMNS}), \
         {} {}",
        outbox::rows_cte_if(8, WROTE),
        answer(4, 7, "NULL::bigint", SESSION_OF_S, "false")
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

/// What a punch is decided on.
enum Basis {
    /// Nothing yet: the state is read first.
    Read,
    /// The state as this request's own last statement found it.
    Fresh(Current),
    /// What an earlier punch read or wrote on this replica. Only a write is decided on it (the
    /// write checks its version): anything else (a refusal, a forgotten clock-out to close) is
    /// decided again on a fresh read.
    Remembered(Arc<Known>),
}

/// What came of one attempt.
enum Step {
    Done(Bytes),
    /// Decide again, on this.
    Again(Basis),
}

/// An employee's state as this replica last read or wrote it.
struct Known {
    state: Current,
    /// The month its closed months were read from.
    closed_from: chrono::NaiveDate,
}

/// The employee states this replica last read or wrote, so that a punch following another on the
/// same replica is one statement: its write is conditional on the remembered version, and when
/// that has moved on (another replica, a correction, a close), the same statement answers the
/// state as it stands. Nothing is decided on a remembered state but a write.
#[derive(Clone)]
pub(crate) struct KnownStates(moka::sync::Cache<(OrgId, i64), Arc<Known>>);

impl Default for KnownStates {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(24 * 60 * 60))
                .build(),
        )
    }
}

impl KnownStates {
    /// The employee's remembered state, taken: a punch of the same employee arriving meanwhile
    /// reads afresh, so no two punches decide on one memory (and a clock-in's session id is drawn
    /// for one of them only).
    fn take(&self, key: (OrgId, i64)) -> Option<Arc<Known>> {
        self.0.remove(&key)
    }

    /// Remembers `state`, or forgets the employee when it is not known.
    fn set(&self, key: (OrgId, i64), state: Option<Current>, closed_from: chrono::NaiveDate) {
        match state {
            Some(state) => self.0.insert(key, Arc::new(Known { state, closed_from })),
            None => self.0.invalidate(&key),
        }
    }
}

/// Decides and writes; decides again when another write of the employee got in between. With
/// `conn`, the punch runs in an idempotency key's transaction, whose work is undone if the punch
/// is refused; such a punch neither uses nor leaves a remembered state (it commits later, or not
/// at all). Without, its reads take connections from the pool and its write joins a batch.
async fn apply(
    state: &State,
    mut conn: Option<&mut PgConnection>,
    action: Action,
    req: &ClockRequest,
    info: &OrgInfo,
    employee: &Employee,
) -> db::Result<Bytes> {
    let keyed = conn.is_some();
    let key = (req.org_id, employee.employee_id.get());
    // A kiosk's own timestamp may reach back into months the remembered state did not read.
    let mut basis = match state.known.take(key) {
        Some(known) if !keyed && req.timestamp.is_none() => Basis::Remembered(known),
        _ => Basis::Read,
    };
    for _ in 0..MAX_TRIES {
        let remembered = matches!(basis, Basis::Remembered(_));
        let step = attempt(
            state,
            conn.as_deref_mut(),
            action,
            req,
            info,
            employee,
            basis,
        )
        .await;
        match step {
            Ok(Step::Done(reply)) => {
                if remembered {
                    metrics::counter!("clokio_clock_remembered_total", "outcome" => "written")
                        .increment(1);
                }
                return Ok(reply);
            }
            Ok(Step::Again(next)) => {
                if remembered {
                    metrics::counter!("clokio_clock_remembered_total", "outcome" => "stale")
                        .increment(1);
                } else {
                    metrics::counter!("clokio_clock_write_retries_total").increment(1);
                }
                basis = next;
            }
            Err(err) => {
                state.known.set(key, None, chrono::NaiveDate::MIN);
                return Err(err);
            }
        }
    }
    tracing::warn!("clock write kept losing to other writes of the employee");
    Err(BusError::new(
        ErrorCode::Unavailable,
        "The employee's attendance is being changed by other requests; try again",
    )
    .into())
}

/// One decision and its conditional write.
async fn attempt(
    state: &State,
    mut conn: Option<&mut PgConnection>,
    action: Action,
    req: &ClockRequest,
    info: &OrgInfo,
    employee: &Employee,
    basis: Basis,
) -> db::Result<Step> {
    let keyed = conn.is_some();
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
    let (current, remembered) = match basis {
        Basis::Remembered(known) if known.closed_from <= closed_from => (known.state.clone(), true),
        Basis::Fresh(current) => (current, false),
        _ => {
            let clock_in = action == Action::ClockIn;
            let read = match conn.as_deref_mut() {
                Some(conn) => current(conn, employee, req.org_id, clock_in, closed_from).await?,
                None => {
                    let mut conn = state.pool.acquire().await?;
                    current(&mut conn, employee, req.org_id, clock_in, closed_from).await?
                }
            };
            (read, false)
        }
    };
    // A decision other than a write, made on a remembered state, is made again on a fresh read.
    let refuse = |err: BusError| {
        if remembered {
            Ok(Step::Again(Basis::Read))
        } else {
            Err(err.into())
        }
    };
    let Current {
        version,
        open_session_id: open,
        last_event_at: last,
        new_session_id,
        closed_months,
        session: open_row,
    } = current;
    if let Some(at) = requested {
        let month = periods::month_of(tz.date_of(at));
        if closed_months.contains(&month) {
            return refuse(BusError::conflict(period_closed_message(month)));
        }
        within_offline_window(info, at, now)?;
    }
    let open = match open.map(|id| OpenSession::of(id, open_row)).transpose() {
        Ok(open) => open,
        Err(_) if remembered => return Ok(Step::Again(Basis::Read)),
        Err(err) => return Err(err),
    };
    if let Some(s) = &open {
        // A forgotten clock-out: the session is closed at its limit first, then this punch is
        // decided on what follows. (A punch dated before the limit, from an offline kiosk, is
        // still the session's own.)
        let limit = s.clock_in + Duration::hours(i64::from(settings.max_shift_hours));
        let due = requested.unwrap_or(now);
        if limit <= due {
            if remembered {
                return Ok(Step::Again(Basis::Read));
            }
            // The close stands whatever becomes of this punch: a keyed punch's transaction is
            // rolled back to before its work when the punch is refused, so the close is committed
            // on a connection of its own.
            let mut own = state.pool.acquire().await?;
            let closed = autoclose::close(state, &mut own, info, employee, s.id, due).await?;
            if !closed {
                // Another replica's sweep holds it and is closing it: give that a moment.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            return Ok(Step::Again(Basis::Read));
        }
    }
    let session = match (action, open) {
        (Action::ClockIn, Some(_)) => {
            return refuse(BusError::conflict("Employee is already clocked in"));
        }
        (Action::ClockIn, None) => None,
        (Action::ClockOut | Action::BreakStart, None) => {
            return refuse(BusError::conflict("Employee is not clocked in"));
        }
        (Action::BreakEnd, None) => {
            return refuse(BusError::conflict("Employee is not on a break"));
        }
        (_, Some(s)) => Some(s),
    };
    if let Some(s) = &session {
        match (action, s.break_open_since) {
            (Action::BreakStart, Some(_)) => {
                return refuse(BusError::conflict("Employee is already on a break"));
            }
            (Action::BreakEnd, None) => {
                return refuse(BusError::conflict("Employee is not on a break"));
            }
            _ => {}
        }
    }
    // Events of one employee stay in order: a kiosk's late report may not come before what is
    // already recorded, and our own clock never records before it either.
    let at = match (requested, last) {
        (Some(at), Some(last)) if at < last => {
            return refuse(BusError::invalid(format!(
                "The timestamp must not be earlier than the employee's last attendance event ({})",
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        (Some(at), _) => at,
        (None, Some(last)) => now.max(last),
        (None, None) => now,
    };
    let month = periods::month_of(tz.date_of(at));
    if closed_months.contains(&month) {
        return refuse(BusError::conflict(period_closed_message(month)));
    }
    let org = req.org_id;
    let mut rows = outbox::Rows::default();
    let (change, reply) = match (action, session) {
        (Action::ClockIn, _) => {
            let Some(id) = new_session_id else {
                return refuse(BusError::internal());
            };
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
            let reply = to_bytes(&ClockedIn {
                attendance_id,
                employee_name: employee.name.clone(),
                clock_in: at,
                location: location.clone(),
            });
            let change = Change::ClockIn {
                session: id,
                work_date,
                location_id: location_id.get(),
                location,
            };
            (change, reply)
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
            let reply = to_bytes(&ClockedOut {
                attendance_id,
                employee_name: employee.name.clone(),
                clock_in: s.clock_in,
                clock_out: at,
                location: location.clone(),
                total_hours: clokio_bus::calendar::hours(total_seconds),
                break_minutes: clokio_bus::calendar::minutes(break_seconds),
            });
            let change = Change::ClockOut {
                session: s.id,
                location_id: location_id.get(),
                location,
                break_seconds,
            };
            (change, reply)
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
            let reply = to_bytes(&BreakStarted {
                attendance_id,
                employee_name: employee.name.clone(),
                break_start: at,
            });
            (Change::BreakStart { session: s.id }, reply)
        }
        (Action::BreakEnd, Some(s)) => {
            let Some(since) = s.break_open_since else {
                return refuse(BusError::internal());
            };
            let seconds = (at - since).num_seconds();
            let attendance_id = AttendanceId::new(s.id);
            s.clocked(attendance_id, employee)
                .emit(state, &mut rows, org, kind::BREAK_END, at)?;
            let reply = to_bytes(&BreakEnded {
                attendance_id,
                employee_name: employee.name.clone(),
                break_start: since,
                break_end: at,
                duration_minutes: clokio_bus::calendar::minutes(seconds),
            });
            (
                Change::BreakEnd {
                    session: s.id,
                    seconds,
                },
                reply,
            )
        }
        (_, None) => return Err(BusError::internal().into()),
    };
    let write = Write {
        org,
        employee_id: employee.employee_id.get(),
        version,
        closed_from,
        at,
        change,
        rows,
        trace: clokio_bus::trace::context_of(&tracing::Span::current()),
    };
    let key = (org, employee.employee_id.get());
    match write_one(state, conn, write).await? {
        Wrote::Yes(after) => {
            // A keyed punch commits with its key, later: until then the state stays unknown here.
            state.known.set(key, after.filter(|_| !keyed), closed_from);
            Ok(Step::Done(reply?))
        }
        Wrote::No(Some(now)) => Ok(Step::Again(Basis::Fresh(now))),
        Wrote::No(None) => Ok(Step::Again(Basis::Read)),
    }
}

/// A decided clock write: the employee's state moves on from `version`, with `change` at `at`,
/// and `rows` are its events, made in the trace context `trace`.
pub(crate) struct Write {
    org: OrgId,
    employee_id: i64,
    version: i64,
    /// The month from which the answer lists the org's closed months.
    closed_from: chrono::NaiveDate,
    at: DateTime<Utc>,
    change: Change,
    rows: outbox::Rows,
    trace: clokio_bus::trace::TraceHeaders,
}

/// What a clock write changes besides the employee's state.
pub(crate) enum Change {
    /// Opens session `session`, drawn when the state was read.
    ClockIn {
        session: i64,
        work_date: chrono::NaiveDate,
        location_id: i64,
        location: String,
    },
    /// Closes the open session `session`, with its breaks' total.
    ClockOut {
        session: i64,
        location_id: i64,
        location: String,
        break_seconds: i64,
    },
    BreakStart {
        session: i64,
    },
    /// Ends the open break of `session`, `seconds` long.
    BreakEnd {
        session: i64,
        seconds: i64,
    },
}

impl Write {
    /// The employee, as the replica's remembered states and a batch know them.
    fn key(&self) -> (OrgId, i64) {
        (self.org, self.employee_id)
    }

    /// What the write leaves behind.
    fn trace(&self) -> Trace {
        match self.change {
            Change::ClockIn { session, .. } => Trace::Session(session),
            Change::ClockOut { session, .. } => Trace::ClockOut(session, self.at),
            Change::BreakStart { session } => Trace::BreakStart(session, self.at),
            Change::BreakEnd { session, .. } => Trace::BreakEnd(session, self.at),
        }
    }

    /// The write as a statement of its own; `prefix`: the deployment's subject prefix, which a
    /// new session records.
    fn statement(&self, prefix: &str) -> sqlx::query::Query<'static, sqlx::Postgres, PgArguments> {
        let org = self.org.as_uuid();
        let query = match &self.change {
            Change::ClockIn {
                session,
                work_date,
                location_id,
                location,
            } => sqlx::query(&CLOCK_IN)
                .bind(org)
                .bind(self.employee_id)
                .bind(*work_date)
                .bind(self.at)
                .bind(*location_id)
                .bind(location.clone())
                .bind(*session)
                .bind(self.version)
                .bind(prefix.to_owned())
                .bind(self.closed_from),
            Change::ClockOut {
                session,
                location_id,
                location,
                break_seconds,
            } => sqlx::query(&CLOCK_OUT)
                .bind(org)
                .bind(*session)
                .bind(self.at)
                .bind(*location_id)
                .bind(location.clone())
                .bind(*break_seconds)
                .bind(self.employee_id)
                .bind(self.version)
                .bind(self.closed_from),
            Change::BreakStart { session } => sqlx::query(&BREAK_START)
                .bind(org)
                .bind(*session)
                .bind(self.at)
                .bind(self.employee_id)
                .bind(self.version)
                .bind(self.closed_from),
            Change::BreakEnd { session, seconds } => sqlx::query(&BREAK_END)
                .bind(org)
                .bind(*session)
                .bind(self.at)
                .bind(self.employee_id)
                .bind(*seconds)
                .bind(self.version)
                .bind(self.closed_from),
        };
        self.rows.clone().bind_with(query, self.trace.clone())
    }
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

/// Whether employee `$4` of org `$3` is as a clock write left it: at version `$5`, its last event
/// at `$2`, its open session `$6`.
const STATE_AS_LEFT: &str = "EXISTS (SELECT 1 FROM employee_state WHERE org_id = $3 \
    AND employee_id = $4 AND version = $5 AND last_event_at = $2 \
    AND open_session_id IS NOT DISTINCT FROM $6)";

impl Trace {
    /// Whether the write left its trace: `Some(true)` when it did, `Some(false)` when it did not,
    /// `None` when the trace is there but may be another write's. A session id is drawn for one
    /// clock-in only, so its session is its own. A break's start or end, or a clock-out, at the
    /// same second may be an earlier one of the session (a decision on a remembered state can
    /// name a session that has moved on): it is this write's only if the employee's state is as
    /// this write left it, at `version` (the one it moved the state to), with its instant and
    /// open session.
    async fn found(
        self,
        pool: &sqlx::PgPool,
        org: OrgId,
        employee_id: i64,
        version: i64,
    ) -> Result<Option<bool>, sqlx::Error> {
        let (left, session, at, open) = match self {
            Self::Session(id) => ("sessions WHERE id = $1", id, None, None),
            Self::ClockOut(id, at) => (
                "sessions WHERE id = $1 AND clock_out = $2",
                id,
                Some(at),
                None,
            ),
            Self::BreakStart(id, at) => (
                "breaks WHERE session_id = $1 AND started_at = $2",
                id,
                Some(at),
                Some(id),
            ),
            Self::BreakEnd(id, at) => (
                "breaks WHERE session_id = $1 AND ended_at = $2",
                id,
                Some(at),
                Some(id),
            ),
        };
        let ours = match self {
            Self::Session(_) => "true",
            _ => STATE_AS_LEFT,
        };
        let (found, ours): (bool, bool) =
            sqlx::query_as(&format!("SELECT EXISTS (SELECT 1 FROM {left}), {ours}"))
                .bind(session)
                .bind(at)
                .bind(org.as_uuid())
                .bind(employee_id)
                .bind(version)
                .bind(open)
                .fetch_one(pool)
                .await?;
        Ok(match (found, ours) {
            (false, _) => Some(false),
            (true, true) => Some(true),
            (true, false) => None,
        })
    }
}

/// Runs a conditional write: in the key's transaction `conn` when there is one, else in a batch
/// with other employees' writes ([`batch`]), or alone when the batch's statement failed.
async fn write_one(
    state: &State,
    conn: Option<&mut PgConnection>,
    write: Write,
) -> db::Result<Wrote> {
    if let Some(conn) = conn {
        return alone(state, conn, true, write).await;
    }
    match state.batches.write(write).await? {
        batch::Outcome::Answered(row) => answered(row.as_ref()),
        batch::Outcome::Lost(write, err) => lost(state, &write, err).await,
        batch::Outcome::Failed(write) => {
            let mut conn = state.pool.acquire().await?;
            alone(state, &mut conn, false, write).await
        }
    }
}

/// Runs a conditional write as a statement of its own.
///
/// Without a key the write is its own transaction, so a connection lost while it ran leaves its
/// outcome unknown: the write may have committed. The employee's state then shows whether it did
/// (a clock-in answered 503 although it was recorded would make the kiosk's retry a 409, and its
/// event would announce a punch the client was told had failed). In a key's transaction nothing
/// commits until [`Idempotency::settle`], which finds out the same way.
async fn alone(
    state: &State,
    conn: &mut PgConnection,
    keyed: bool,
    write: Write,
) -> db::Result<Wrote> {
    match write
        .statement(&state.subjects.prefix().to_string())
        .fetch_optional(conn)
        .await
    {
        Ok(row) => answered(row.as_ref()),
        Err(err) if !keyed && clokio_runtime::db::is_connection_lost(&err) => {
            lost(state, &write, err).await
        }
        Err(err) => Err(err.into()),
    }
}

/// What a write's answer row says (see [`answer`]).
fn answered(row: Option<&sqlx::postgres::PgRow>) -> db::Result<Wrote> {
    use sqlx::{FromRow, Row};
    let Some(row) = row else {
        return Ok(Wrote::No(None));
    };
    let wrote: bool = row.try_get("wrote")?;
    let state = Current::from_row(row)
        .inspect_err(|err| tracing::error!(%err, "a clock write's answer does not decode"))
        .ok();
    Ok(if wrote {
        Wrote::Yes(state)
    } else {
        Wrote::No(state)
    })
}

/// Finds out whether `write`, whose connection was lost, committed.
async fn lost(state: &State, write: &Write, err: sqlx::Error) -> db::Result<Wrote> {
    tracing::warn!(%err, "connection lost during a clock write; finding out whether it committed");
    let trace = write.trace();
    let found = || trace.found(&state.pool, write.org, write.employee_id, write.version + 1);
    match clokio_runtime::db::settle(state.settle_wait, found).await {
        Some(Some(true)) => Ok(Wrote::Yes(None)),
        Some(Some(false)) => Err(err.into()),
        Some(None) | None => Err(clokio_runtime::db::outcome_unknown().into()),
    }
}

/// What a clock write came to, with the employee's state as it answered it (none when it could
/// not tell, or when the employee has no state row yet).
enum Wrote {
    Yes(Option<Current>),
    /// The version had moved on: nothing was written.
    No(Option<Current>),
}
