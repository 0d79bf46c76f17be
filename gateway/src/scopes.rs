//! The scope each public operation needs: one table, read by the authentication middleware (from
//! the route's matched path, no I/O) and by the OpenAPI document's security requirements.

use axum::http::Method;
use clokio_bus::scope::Scope;

/// The scope `method` on the route `path` (as matched, with `{placeholders}`) needs; `None` for a
/// route this table does not know, which then needs every scope.
pub fn required(method: &Method, path: &str) -> Option<Scope> {
    use Scope::*;
    let read = *method == Method::GET || *method == Method::HEAD;
    let scope = match path {
        "/api/v1/employees" | "/api/v1/employees/{employee_code}/status" if read => EmployeesRead,
        "/api/v1/employees" | "/api/v1/employees/{employee_code}/status" => EmployeesWrite,
        // Where people work and the organization's time zone: what any reader of records needs.
        "/api/v1/locations" | "/api/v1/organization" if read => EmployeesRead,
        "/api/v1/locations" | "/api/v1/organization" => SettingsManage,
        "/api/v1/api-keys" | "/api/v1/api-keys/{id}" => KeysManage,
        "/api/v1/attendance/clock-in"
        | "/api/v1/attendance/clock-out"
        | "/api/v1/attendance/break-start"
        | "/api/v1/attendance/break-end"
        | "/api/v1/attendance/import" => AttendanceWrite,
        "/api/v1/attendance/sessions/{id}" if read => AttendanceRead,
        "/api/v1/attendance/sessions" | "/api/v1/attendance/sessions/{id}" => AttendanceWrite,
        "/api/v1/attendance/sessions/{id}/history" => AttendanceRead,
        "/api/v1/periods" if read => ReportsRead,
        "/api/v1/periods/{period}/close" | "/api/v1/periods/{period}/reopen" => SettingsManage,
        "/api/v1/attendance/summary" => ReportsRead,
        "/api/v1/attendance/daily"
        | "/api/v1/attendance/range"
        | "/api/v1/attendance/employee/{nip}"
        | "/api/v1/attendance/employee/{employee_code}/today"
        | "/api/v1/attendance/today/detailed" => AttendanceRead,
        "/api/v1/leaves" | "/api/v1/leaves/{id}" if read => AttendanceRead,
        "/api/v1/leaves" | "/api/v1/leaves/{id}" => LeaveWrite,
        "/api/v1/events/stream" => EventsRead,
        p if p.starts_with("/api/v1/webhooks") => WebhooksManage,
        _ => return None,
    };
    Some(scope)
}

/// The refusal's message.
pub fn refusal(scope: Scope) -> String {
    format!("This API key does not have the {scope} scope")
}
