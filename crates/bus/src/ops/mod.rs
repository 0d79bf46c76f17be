//! Request/reply pairs. Each operation names its service and subject token; the reply type is
//! exactly the `data` the public API shows, so the gateway can splice it without re-encoding.

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, EmployeeId, LocationId, OrgId};
use crate::key::KeyHash;
use crate::payroll::{BreakRule, Rounding};
use crate::scope::Scopes;
use crate::subject::ServiceName;
use crate::types::{Email, EmployeeCode, EmployeeStatus, LocalTime, Plan, Timezone, Weekday};

/// One bus operation: where it goes and what it carries.
pub trait Operation {
    const SERVICE: ServiceName;
    const NAME: &'static str;
    type Request: Serialize + DeserializeOwned + Send + Sync;
    type Reply: Serialize + DeserializeOwned + Send;
}

macro_rules! operation {
    ($(#[$doc:meta])* $name:ident, $service:ident, $subject:literal, $req:ty => $reply:ty) => {
        $(#[$doc])*
        pub struct $name;
        impl Operation for $name {
            const SERVICE: $crate::subject::ServiceName = $crate::subject::ServiceName::$service;
            const NAME: &'static str = $subject;
            type Request = $req;
            type Reply = $reply;
        }
    };
}

pub mod attendance;
pub mod reporting;
pub mod webhook;
pub use attendance::*;
pub use reporting::*;
pub use webhook::*;

// ---------------------------------------------------------------- organizations

/// An organization's work rules, all in its own time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrgSettings {
    pub work_days: Vec<Weekday>,
    pub schedule: Schedule,
    pub holidays: Vec<NaiveDate>,
    pub offline_backdate_hours: u32,
    /// A session open longer than this is closed at clock-in + this many hours (1-72).
    #[serde(default = "default_max_shift_hours")]
    pub max_shift_hours: u32,
    /// Rounding of each session's worked time in totals; null: none.
    #[serde(default)]
    pub rounding: Option<Rounding>,
    /// Automatic break deduction; empty: none.
    #[serde(default)]
    pub break_rules: Vec<BreakRule>,
}

/// A session open longer than this many hours is closed, unless the org says otherwise.
pub const DEFAULT_MAX_SHIFT_HOURS: u32 = 16;

fn default_max_shift_hours() -> u32 {
    DEFAULT_MAX_SHIFT_HOURS
}

impl OrgSettings {
    /// The payroll rules these settings hold.
    pub fn pay_rules(&self) -> crate::payroll::Rules<'_> {
        crate::payroll::Rules {
            rounding: self.rounding,
            break_rules: &self.break_rules,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schedule {
    pub start: LocalTime,
    pub hours_per_day: f64,
    pub late_grace_minutes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub plan: Plan,
    /// Requests per minute set by the operator (Enterprise); null means the plan's default.
    pub rate_limit_per_minute: Option<u32>,
    pub timezone: Timezone,
    pub settings: OrgSettings,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrgCreate {
    pub name: String,
    pub plan: Plan,
    pub rate_limit_per_minute: Option<u32>,
    pub timezone: Timezone,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrgRef {
    pub org_id: OrgId,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

/// A partial update of the org-editable settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgPatch {
    pub timezone: Option<Timezone>,
    pub work_days: Option<Vec<Weekday>>,
    pub schedule_start: Option<LocalTime>,
    pub hours_per_day: Option<f64>,
    pub late_grace_minutes: Option<u32>,
    pub holidays: Option<Vec<NaiveDate>>,
    pub offline_backdate_hours: Option<u32>,
    #[serde(default)]
    pub max_shift_hours: Option<u32>,
    #[serde(default)]
    pub rounding: Option<Rounding>,
    /// Turns rounding off (`rounding: null` in the API).
    #[serde(default)]
    pub rounding_off: bool,
    #[serde(default)]
    pub break_rules: Option<Vec<BreakRule>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrgUpdate {
    pub org_id: OrgId,
    pub patch: OrgPatch,
}

operation!(
    /// Operator: create an organization.
    OrgCreateOp, Employee, "org_create", OrgCreate => Organization
);
operation!(
    /// Operator: list every organization.
    OrgListOp, Employee, "org_list", Empty => Vec<Organization>
);
operation!(OrgGetOp, Employee, "org_get", OrgRef => Organization);
operation!(OrgUpdateOp, Employee, "org_update", OrgUpdate => Organization);

// ---------------------------------------------------------------- API keys

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub name: String,
    /// `clk_…` + the last 4 characters.
    pub hint: String,
    /// What the key may do (see the scopes table in the API docs).
    #[schema(value_type = Vec<String>, example = json!(["attendance:write"]))]
    pub scopes: Scopes,
    /// After this instant the key is refused (401); null: it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Recorded at most once a minute per key.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The create reply: the only time the whole key is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// The secret, `clk_` + 32 characters. Shown once; store it now.
    pub key: String,
    pub hint: String,
    #[schema(value_type = Vec<String>, example = json!(["attendance:write"]))]
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyCreate {
    pub org_id: OrgId,
    pub name: String,
    /// Absent (an older caller): every scope, as keys always had.
    #[serde(default)]
    pub scopes: Scopes,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRevoke {
    pub org_id: OrgId,
    pub key_id: ApiKeyId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyVerify {
    pub key_hash: KeyHash,
}

/// What the gateway needs to serve a key: its tenant and its limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthInfo {
    pub key_id: ApiKeyId,
    pub org_id: OrgId,
    pub plan: Plan,
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    pub scopes: Scopes,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's name: who made a change, in audit trails.
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyUse {
    pub key_id: ApiKeyId,
    pub at: DateTime<Utc>,
}

/// A batch of `last_used_at` updates, sent by each gateway replica every few seconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyTouch {
    pub uses: Vec<KeyUse>,
}

operation!(KeyCreateOp, Employee, "key_create", KeyCreate => CreatedApiKey);
operation!(KeyListOp, Employee, "key_list", OrgRef => Vec<ApiKeyInfo>);
operation!(KeyRevokeOp, Employee, "key_revoke", KeyRevoke => ApiKeyInfo);
operation!(
    /// Look up a live key by its hash; 404 when unknown or revoked.
    KeyVerifyOp, Employee, "key_verify", KeyVerify => AuthInfo
);
operation!(KeyTouchOp, Employee, "key_touch", KeyTouch => Empty);

// ---------------------------------------------------------------- locations

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub id: LocationId,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_meters: f64,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocationCreate {
    pub org_id: OrgId,
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_meters: f64,
}

operation!(LocationCreateOp, Employee, "location_create", LocationCreate => Location);
operation!(LocationListOp, Employee, "location_list", OrgRef => Vec<Location>);

// ---------------------------------------------------------------- employees

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Employee {
    pub employee_id: EmployeeId,
    /// The NIP.
    pub employee_code: EmployeeCode,
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
    pub position: Option<String>,
    pub department: Option<String>,
    /// The name of the employee's location.
    pub location: String,
    pub location_id: LocationId,
    pub birthdate: Option<NaiveDate>,
    pub address: Option<String>,
    pub hire_date: NaiveDate,
    pub status: EmployeeStatus,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The create reply: the employee plus, when the password was generated, that password (once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedEmployee {
    #[serde(flatten)]
    pub employee: Employee,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct EmployeeCreate {
    pub org_id: OrgId,
    pub name: String,
    pub email: Email,
    /// A location name of the org.
    pub location: String,
    pub phone: Option<String>,
    pub position: Option<String>,
    pub department: Option<String>,
    pub employee_code: Option<EmployeeCode>,
    pub password: Option<String>,
    pub birthdate: Option<NaiveDate>,
    pub address: Option<String>,
    pub hire_date: Option<NaiveDate>,
}

impl std::fmt::Debug for EmployeeCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmployeeCreate")
            .field("org_id", &self.org_id)
            .field("employee_code", &self.employee_code)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmployeeList {
    pub org_id: OrgId,
    pub status: Option<EmployeeStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmployeeRef {
    pub org_id: OrgId,
    pub employee_code: EmployeeCode,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmployeeSetStatus {
    pub org_id: OrgId,
    pub employee_code: EmployeeCode,
    pub status: EmployeeStatus,
}

operation!(EmployeeCreateOp, Employee, "employee_create", EmployeeCreate => CreatedEmployee);
operation!(EmployeeListOp, Employee, "employee_list", EmployeeList => Vec<Employee>);
operation!(EmployeeGetOp, Employee, "employee_get", EmployeeRef => Employee);
operation!(EmployeeSetStatusOp, Employee, "employee_set_status", EmployeeSetStatus => Employee);

/// A page of an organization's employees, for lists that must stay fast at tens of thousands
/// (the console's Employees page): filtered by status and a search text, in id order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmployeePageQuery {
    pub org_id: OrgId,
    pub status: Option<EmployeeStatus>,
    /// Matched case-insensitively anywhere in the name, email, code or department.
    pub search: Option<String>,
    /// From 1.
    pub page: u32,
    /// 1–[`MAX_PER_PAGE`].
    pub per_page: u32,
}

/// The most items one page may carry.
pub const MAX_PER_PAGE: u32 = 500;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmployeePage {
    pub employees: Vec<Employee>,
    pub page: u32,
    pub per_page: u32,
    /// How many employees match, on every page.
    pub total: u64,
}

operation!(EmployeePageOp, Employee, "employee_page", EmployeePageQuery => EmployeePage);

// ---------------------------------------------------------------- admins

/// An organization's admin: an employee with role `admin`, who signs in to the admin console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admin {
    pub employee_id: EmployeeId,
    pub employee_code: EmployeeCode,
    pub name: String,
    pub email: Email,
    pub status: EmployeeStatus,
    /// The password is a one-time password: it must be changed at the next sign-in.
    pub must_change_password: bool,
    /// Moves on with every password change and with the loss of the role, so a session made
    /// under an older value is over.
    pub credentials_version: i64,
    pub created_at: DateTime<Utc>,
}

/// Make an admin: the employee with this email is given the role, else a new employee is
/// created with it (at `location`, or the organization's first location).
#[derive(Clone, Serialize, Deserialize)]
pub struct AdminCreate {
    pub org_id: OrgId,
    pub email: Email,
    pub name: String,
    /// At least 12 characters; generated (a one-time password, returned once) when None.
    pub password: Option<String>,
    pub location: Option<String>,
}

impl std::fmt::Debug for AdminCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCreate")
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// The create reply: the admin and, when it was generated, the one-time password (once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedAdmin {
    #[serde(flatten)]
    pub admin: Admin,
    /// True when an existing employee was given the role.
    pub promoted: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminRef {
    pub org_id: OrgId,
    pub employee_id: EmployeeId,
}

/// A sign-in attempt: every active admin with this email, in any organization, whose password
/// matches. The check costs the same whether or not such an admin exists.
#[derive(Clone, Serialize, Deserialize)]
pub struct AdminSignIn {
    pub email: Email,
    pub password: String,
}

impl std::fmt::Debug for AdminSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSignIn").finish_non_exhaustive()
    }
}

/// One organization the signed-in person is an admin of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub org_id: OrgId,
    pub org_name: String,
    #[serde(flatten)]
    pub admin: Admin,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct AdminSetPassword {
    pub org_id: OrgId,
    pub employee_id: EmployeeId,
    pub current_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for AdminSetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSetPassword")
            .field("org_id", &self.org_id)
            .field("employee_id", &self.employee_id)
            .finish_non_exhaustive()
    }
}

/// The operator's way back in for an admin who lost their password: a new password (generated and
/// one-time when None) for the admin with this email.
#[derive(Clone, Serialize, Deserialize)]
pub struct AdminResetPassword {
    pub org_id: OrgId,
    pub email: Email,
    pub password: Option<String>,
}

impl std::fmt::Debug for AdminResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminResetPassword")
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// The shortest admin password.
pub const MIN_ADMIN_PASSWORD: usize = 12;

operation!(AdminCreateOp, Employee, "admin_create", AdminCreate => CreatedAdmin);
operation!(AdminListOp, Employee, "admin_list", OrgRef => Vec<Admin>);
operation!(
    /// One admin; 404 when the employee is not (or no longer) an admin of the org.
    AdminGetOp, Employee, "admin_get", AdminRef => Admin
);
operation!(
    /// Takes the admin role away (the employee stays); 409 for the organization's last admin.
    AdminRemoveOp, Employee, "admin_remove", AdminRef => Admin
);
operation!(
    /// 401 `These credentials do not match our records` when nothing matches.
    AdminSignInOp, Employee, "admin_sign_in", AdminSignIn => Vec<SignedIn>
);
operation!(AdminSetPasswordOp, Employee, "admin_set_password", AdminSetPassword => Admin);
operation!(
    /// Operator: a new password for an admin; their sessions end.
    AdminResetPasswordOp, Employee, "admin_reset_password", AdminResetPassword => CreatedAdmin
);
