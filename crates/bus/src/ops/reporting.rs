//! reporting-svc's operations: the monthly summary for payroll, as JSON and as a streamed CSV.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Empty, Operation};
use crate::ids::{EmployeeId, OrgId};
use crate::types::EmployeeCode;

/// One employee's month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryRow {
    pub employee_id: EmployeeId,
    pub employee_name: String,
    /// `nip` on the wire (the product document's name for it).
    #[serde(rename = "nip")]
    pub employee_code: EmployeeCode,
    pub department: Option<String>,
    /// Dates with at least one session.
    pub days_present: u32,
    /// Work days whose first clock-in was after schedule start + grace.
    pub late_count: u32,
    /// Net of breaks, closed sessions; rounded to 2 decimals. With the org's rounding or break
    /// rules on, what payroll counts: sessions rounded, automatic breaks deducted.
    pub total_hours: f64,
    /// Beyond `hours_per_day` on work days, all hours on other days; rounded to 2 decimals.
    pub overtime_hours: f64,
    /// Work days covered by a leave.
    pub leave_days: u32,
    /// Past work days on or after the hire date with neither a session nor a leave.
    pub absence_count: u32,
    /// `total_hours` as punched: before the org's rounding and automatic break deduction.
    pub raw_total_hours: f64,
    /// Break minutes deducted by the org's break rules over the month.
    pub auto_break_minutes: i64,
    /// Sessions the system closed after `max_shift_hours` (forgotten clock-outs).
    pub auto_closed_count: u32,
    /// When the month was closed for payroll; null while it is open. A closed month's summary
    /// no longer changes.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The CSV header: the JSON field names, in order.
pub const SUMMARY_CSV_HEADER: &str = "employee_id,employee_name,nip,department,days_present,late_count,total_hours,overtime_hours,leave_days,absence_count,raw_total_hours,auto_break_minutes,auto_closed_count,closed_at\n";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryQuery {
    pub org_id: OrgId,
    pub year: i32,
    /// 1–12.
    pub month: u32,
}

/// The CSV export: the same rows, streamed to `inbox` (see [`crate::stream`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryCsvRequest {
    pub org_id: OrgId,
    pub year: i32,
    pub month: u32,
    pub inbox: String,
}

/// The file name a CSV export of `year`-`month` downloads as (`clokio-summary-2026-02.csv`).
pub fn summary_csv_file_name(year: i32, month: u32) -> String {
    format!("clokio-summary-{year:04}-{month:02}.csv")
}

operation!(SummaryOp, Reporting, "summary", SummaryQuery => Vec<SummaryRow>);
operation!(SummaryCsvOp, Reporting, "summary_csv", SummaryCsvRequest => Empty);
