//! attendance-svc's operations: clock events, attendance reads, history import and leave.
//! Timestamps are UTC instants in whole seconds (RFC 3339 with `Z`); dates are the org's local
//! calendar dates.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::ids::{AttendanceId, EmployeeId, LeaveId, LocationId, OrgId};
use crate::types::EmployeeCode;

// ---------------------------------------------------------------- clock events

/// A point on Earth, as a kiosk reports it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

/// The request of all four clock operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockRequest {
    pub org_id: OrgId,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    /// Only clock-in and clock-out use it (breaks happen where the session is).
    pub coordinates: Option<Coordinates>,
    /// When the event happened, for offline kiosks; None means now.
    pub timestamp: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClockedIn {
    pub attendance_id: AttendanceId,
    pub employee_name: String,
    pub clock_in: DateTime<Utc>,
    /// The location's name.
    pub location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClockedOut {
    pub attendance_id: AttendanceId,
    pub employee_name: String,
    pub clock_in: DateTime<Utc>,
    pub clock_out: DateTime<Utc>,
    /// Where the employee clocked out.
    pub location: String,
    /// (clock_out − clock_in − breaks) in hours, rounded to 2 decimals.
    pub total_hours: f64,
    pub break_minutes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakStarted {
    pub attendance_id: AttendanceId,
    pub employee_name: String,
    pub break_start: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakEnded {
    pub attendance_id: AttendanceId,
    pub employee_name: String,
    pub break_start: DateTime<Utc>,
    pub break_end: DateTime<Utc>,
    pub duration_minutes: i64,
}

operation!(ClockInOp, Attendance, "clock_in", ClockRequest => ClockedIn);
operation!(ClockOutOp, Attendance, "clock_out", ClockRequest => ClockedOut);
operation!(BreakStartOp, Attendance, "break_start", ClockRequest => BreakStarted);
operation!(BreakEndOp, Attendance, "break_end", ClockRequest => BreakEnded);

// ---------------------------------------------------------------- daily records

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DayStatus {
    Present,
    Late,
}

/// One employee's attendance on one date (the seed's daily record; `date` only in range and
/// per-employee reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    pub employee_id: EmployeeId,
    pub employee_name: String,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    /// The first clock-in of the date.
    pub clock_in: DateTime<Utc>,
    /// The last clock-out; null while a session of the date is open.
    pub clock_out: Option<DateTime<Utc>>,
    /// Net of breaks, rounded to 2 decimals; open sessions count until now. With the org's
    /// rounding or break rules on, what payroll counts: each session rounded, then the
    /// automatic break deducted.
    pub total_hours: f64,
    pub break_minutes: i64,
    pub status: DayStatus,
    /// Net of breaks as punched, before rounding and automatic break deduction.
    pub raw_total_hours: f64,
    /// Break minutes deducted because the org's break rules required more than was taken.
    pub auto_break_minutes: i64,
    /// A session of the date was closed by the system after `max_shift_hours`.
    pub auto_closed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DailyQuery {
    pub org_id: OrgId,
    pub date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RangeQuery {
    pub org_id: OrgId,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmployeeRangeQuery {
    pub org_id: OrgId,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    /// Default: 30 days before `end`.
    pub start: Option<NaiveDate>,
    /// Default: today in the org's zone.
    pub end: Option<NaiveDate>,
}

operation!(DailyOp, Attendance, "daily", DailyQuery => Vec<DailyRecord>);
operation!(RangeOp, Attendance, "range", RangeQuery => Vec<DailyRecord>);
operation!(EmployeeRangeOp, Attendance, "employee_range", EmployeeRangeQuery => Vec<DailyRecord>);

/// The longest range one read may span, in days (inclusive).
pub const MAX_RANGE_DAYS: i64 = 31;

// ---------------------------------------------------------------- detailed daily activity

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CurrentStatus {
    Working,
    OnBreak,
    ClockedOut,
    NotClockedIn,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkSession {
    pub attendance_id: AttendanceId,
    pub clock_in: DateTime<Utc>,
    pub clock_out: Option<DateTime<Utc>>,
    /// Clock-in to clock-out (or now, while open), breaks included.
    pub duration_minutes: i64,
    /// Where the session began.
    pub location: String,
    /// Worked minutes, breaks excluded, as punched.
    pub worked_minutes: i64,
    /// Worked minutes after the org's rounding (equal to `worked_minutes` without rounding).
    pub rounded_minutes: i64,
    /// Closed by the system after `max_shift_hours`.
    pub auto_closed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreakSession {
    pub attendance_id: AttendanceId,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub duration_minutes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// `clock-in`, `break-start`, `break-end` or `clock-out`.
    pub event: String,
    pub timestamp: DateTime<Utc>,
    pub location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivitySummary {
    pub first_clock_in: Option<DateTime<Utc>>,
    /// Null while a session of the date is open.
    pub last_clock_out: Option<DateTime<Utc>>,
    pub total_work_minutes: i64,
    pub total_break_minutes: i64,
    /// (work − breaks) in hours, rounded to 2 decimals; with the org's rounding or break
    /// rules on, after them.
    pub net_work_hours: f64,
    /// (work − breaks) as punched, before rounding and automatic break deduction.
    pub raw_net_work_hours: f64,
    /// Break minutes deducted by the org's break rules.
    pub auto_break_minutes: i64,
}

/// An employee's day in detail. The day is the org-local date the sessions began on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyActivity {
    pub employee_id: EmployeeId,
    pub employee_name: String,
    pub employee_code: EmployeeCode,
    pub date: NaiveDate,
    pub current_status: CurrentStatus,
    pub work_sessions: Vec<WorkSession>,
    pub break_sessions: Vec<BreakSession>,
    pub timeline: Vec<TimelineEntry>,
    pub summary: ActivitySummary,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivityQuery {
    pub org_id: OrgId,
    /// One employee, or every active employee when None.
    pub employee_code: Option<EmployeeCode>,
    /// None: each employee's current shift (an open session begun earlier included), else today.
    pub date: Option<NaiveDate>,
}

operation!(EmployeeActivityOp, Attendance, "employee_activity", ActivityQuery => DailyActivity);
operation!(OrgActivityOp, Attendance, "org_activity", ActivityQuery => Vec<DailyActivity>);

// ---------------------------------------------------------------- history import

/// The most records one import may carry.
pub const MAX_IMPORT_RECORDS: usize = 5000;
/// The most breaks one imported session may carry.
pub const MAX_IMPORT_BREAKS: usize = 50;
/// The most breaks one import may carry in all.
pub const MAX_IMPORT_BREAKS_TOTAL: usize = 20_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportBreak {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    pub clock_in: DateTime<Utc>,
    pub clock_out: DateTime<Utc>,
    pub breaks: Vec<ImportBreak>,
    /// A location name of the org; the employee's own location when None.
    pub location: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub org_id: OrgId,
    pub records: Vec<ImportRecord>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Imported {
    pub imported: usize,
    /// The new sessions' ids, in the order of the records.
    pub attendance_ids: Vec<AttendanceId>,
}

operation!(ImportOp, Attendance, "import", ImportRequest => Imported);

// ---------------------------------------------------------------- leave

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveType {
    Annual,
    Sick,
    Unpaid,
    Other,
}

impl LeaveType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Annual => "annual",
            Self::Sick => "sick",
            Self::Unpaid => "unpaid",
            Self::Other => "other",
        }
    }
}

impl std::str::FromStr for LeaveType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "annual" => Ok(Self::Annual),
            "sick" => Ok(Self::Sick),
            "unpaid" => Ok(Self::Unpaid),
            "other" => Ok(Self::Other),
            _ => Err("The selected type is invalid (annual, sick, unpaid or other)".to_owned()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Leave {
    pub id: LeaveId,
    pub employee_id: EmployeeId,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    pub employee_name: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    #[serde(rename = "type")]
    pub kind: LeaveType,
    pub created_at: DateTime<Utc>,
}

/// The longest single leave, in days.
pub const MAX_LEAVE_DAYS: i64 = 366;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaveCreate {
    pub org_id: OrgId,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub kind: LeaveType,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaveList {
    pub org_id: OrgId,
    pub year: i32,
    pub month: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaveDelete {
    pub org_id: OrgId,
    pub id: LeaveId,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

operation!(LeaveCreateOp, Attendance, "leave_create", LeaveCreate => Leave);
operation!(LeaveListOp, Attendance, "leave_list", LeaveList => Vec<Leave>);
operation!(LeaveDeleteOp, Attendance, "leave_delete", LeaveDelete => Leave);

// ---------------------------------------------------------------- corrections

/// Who made a change, as the audit trail shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// `api_key`, `admin` or `system` (automatic closes).
    pub kind: ActorKind,
    /// The key's or admin's id; null for the system.
    pub id: Option<String>,
    /// The key's name, the admin's name, or `Clokio`.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    ApiKey,
    Admin,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Admin => "admin",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api_key" => Some(Self::ApiKey),
            "admin" => Some(Self::Admin),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// The longest reason a correction may give.
pub const MAX_REASON_LEN: usize = 500;

/// A break of a session: `end` null while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionBreak {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// A session's correctable state: what the audit trail keeps before and after each change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionState {
    /// The org-local date of the clock-in: the date the session belongs to.
    pub work_date: NaiveDate,
    pub clock_in: DateTime<Utc>,
    pub clock_out: Option<DateTime<Utc>>,
    /// Where the session began.
    pub location: String,
    pub breaks: Vec<SessionBreak>,
    /// Closed by the system after the org's `max_shift_hours`.
    pub auto_closed: bool,
}

/// One work session, as corrections return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttendanceSession {
    pub attendance_id: AttendanceId,
    pub employee_id: EmployeeId,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    pub employee_name: String,
    #[serde(flatten)]
    pub state: SessionState,
    /// Break minutes taken (a running break until now).
    pub break_minutes: i64,
    /// (clock_out − clock_in − breaks) in hours, rounded to 2 decimals, as punched; null while open.
    pub total_hours: Option<f64>,
    /// Brought in by an import.
    pub imported: bool,
    /// Moves on with every change of the session.
    pub revision: i64,
}

/// `PATCH /attendance/sessions/{id}`: what is absent stays as it is; `breaks` replaces them all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    pub org_id: OrgId,
    pub id: AttendanceId,
    pub clock_in: Option<DateTime<Utc>>,
    pub clock_out: Option<DateTime<Utc>>,
    pub breaks: Option<Vec<ImportBreak>>,
    pub location: Option<String>,
    pub reason: String,
    pub actor: Actor,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDelete {
    pub org_id: OrgId,
    pub id: AttendanceId,
    pub reason: String,
    pub actor: Actor,
    pub idempotency_key: Option<String>,
}

/// A session that was never punched, in the shape of an import record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionCreate {
    pub org_id: OrgId,
    pub record: ImportRecord,
    pub reason: String,
    pub actor: Actor,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRef {
    pub org_id: OrgId,
    pub id: AttendanceId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionAction {
    Created,
    Updated,
    Deleted,
    AutoClosed,
}

impl CorrectionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::AutoClosed => "auto_closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            "deleted" => Some(Self::Deleted),
            "auto_closed" => Some(Self::AutoClosed),
            _ => None,
        }
    }
}

/// One entry of a session's audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Correction {
    pub id: i64,
    pub attendance_id: AttendanceId,
    pub action: CorrectionAction,
    /// Who: an API key (its name), an admin, or the system.
    pub by: Actor,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// The session before the change; null when it was created.
    pub before: Option<SessionState>,
    /// The session after the change; null when it was deleted.
    pub after: Option<SessionState>,
}

operation!(SessionUpdateOp, Attendance, "session_update", SessionUpdate => AttendanceSession);
operation!(SessionDeleteOp, Attendance, "session_delete", SessionDelete => AttendanceSession);
operation!(SessionCreateOp, Attendance, "session_create", SessionCreate => AttendanceSession);
operation!(SessionHistoryOp, Attendance, "session_history", SessionRef => Vec<Correction>);
operation!(SessionGetOp, Attendance, "session_get", SessionRef => AttendanceSession);

// ---------------------------------------------------------------- pay periods

/// A month of an organization, closed or open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Period {
    /// `YYYY-MM`.
    pub period: String,
    pub closed: bool,
    pub closed_at: Option<DateTime<Utc>>,
    /// Who closed it.
    pub closed_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeriodChange {
    pub org_id: OrgId,
    pub year: i32,
    pub month: u32,
    pub actor: Actor,
}

operation!(PeriodCloseOp, Attendance, "period_close", PeriodChange => Period);
operation!(PeriodReopenOp, Attendance, "period_reopen", PeriodChange => Period);
operation!(PeriodListOp, Attendance, "period_list", super::OrgRef => Vec<Period>);

/// `2026-02`: how the API names a month.
pub fn period_name(first_day: NaiveDate) -> String {
    first_day.format("%Y-%m").to_string()
}

/// The message of every write refused in a closed month.
pub fn period_closed_message(first_day: NaiveDate) -> String {
    format!("The period {} is closed", period_name(first_day))
}

// ---------------------------------------------------------------- events

/// Data of the `attendance.<event>` events (SPEC §4): who, where, which session, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttendanceEvent {
    /// `clock-in`, `clock-out`, `break-start` or `break-end`.
    pub event: String,
    pub attendance_id: AttendanceId,
    pub employee_id: EmployeeId,
    pub employee_code: EmployeeCode,
    pub employee_name: String,
    pub department: Option<String>,
    pub location_id: LocationId,
    pub location_name: String,
    /// When it happened (also the envelope's `occurred_at`).
    pub timestamp: DateTime<Utc>,
    /// The org-local date the session belongs to.
    pub work_date: NaiveDate,
    pub clock_in: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_out: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hours: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_minutes: Option<i64>,
    /// The session's breaks in seconds (clock-out only): net time is clock_out − clock_in − this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_seconds: Option<i64>,
    /// History brought in by an import: projections count it, webhooks do not announce it.
    pub imported: bool,
    /// The session's revision this event describes (absent in events written before revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// A clock-out the system made after the org's `max_shift_hours`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_closed: bool,
    /// The session no longer exists (a correction deleted it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// What a correction changed (`correction` events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<CorrectionNote>,
}

/// A correction as its event tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrectionNote {
    pub action: CorrectionAction,
    pub reason: String,
    pub by: Actor,
    pub before: Option<SessionState>,
    pub after: Option<SessionState>,
}

/// Data of `period.closed` and `period.reopened`: which month, and what attendance-svc held for
/// it when it closed, so a projection can tell when it has caught up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodEvent {
    /// The first day of the month.
    pub month: NaiveDate,
    pub generation: i64,
    pub closed_at: DateTime<Utc>,
    /// md5 of the month's sessions as `id:revision`, comma-separated in id order.
    pub sessions_digest: String,
    /// md5 of the ids of the leaves overlapping the month, comma-separated in id order.
    pub leaves_digest: String,
}

impl AttendanceEvent {
    /// What a generic webhook endpoint receives, and what the event stream's `data:` carries.
    pub fn generic_body(&self, occurred_at: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "type": self.event,
            "timestamp": occurred_at,
            "data": self,
        })
    }
}

/// Data of `leave.created` and `leave.deleted`.
pub type LeaveEvent = Leave;
