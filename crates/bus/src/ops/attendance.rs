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
    pub nip: EmployeeCode,
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
    pub nip: EmployeeCode,
    /// The first clock-in of the date.
    pub clock_in: DateTime<Utc>,
    /// The last clock-out; null while a session of the date is open.
    pub clock_out: Option<DateTime<Utc>>,
    /// Net of breaks, rounded to 2 decimals; open sessions count until now.
    pub total_hours: f64,
    pub break_minutes: i64,
    pub status: DayStatus,
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
    pub nip: EmployeeCode,
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
    /// (work − breaks) in hours, rounded to 2 decimals.
    pub net_work_hours: f64,
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
    pub nip: EmployeeCode,
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
    pub nip: EmployeeCode,
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
    pub nip: EmployeeCode,
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

/// Every operation attendance-svc answers, for its endpoint registration.
pub const ATTENDANCE_OPERATIONS: &[&str] = &[
    ClockInOp::NAME,
    ClockOutOp::NAME,
    BreakStartOp::NAME,
    BreakEndOp::NAME,
    DailyOp::NAME,
    RangeOp::NAME,
    EmployeeRangeOp::NAME,
    EmployeeActivityOp::NAME,
    OrgActivityOp::NAME,
    ImportOp::NAME,
    LeaveCreateOp::NAME,
    LeaveListOp::NAME,
    LeaveDeleteOp::NAME,
];

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
