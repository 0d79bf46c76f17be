//! Employees. The employee code is the NIP: unique per org, auto-generated as a zero-padded
//! 5-digit sequence when omitted. Passwords are stored only as Argon2id hashes; a generated one is
//! returned once in the create reply. Every change goes out as an event through the outbox.

use chrono::{DateTime, NaiveDate, Utc};
use clokio_bus::BusError;
use clokio_bus::events::{Event, kind};
use clokio_bus::ids::{EmployeeId, EventId, LocationId, OrgId};
use clokio_bus::ops::{
    CreatedEmployee, Employee, EmployeeCreate, EmployeeList, EmployeePage, EmployeePageQuery,
    EmployeeRef, EmployeeSetStatus, MAX_PER_PAGE,
};
use clokio_bus::types::{Email, EmployeeCode, EmployeeStatus, Timezone};
use clokio_runtime::outbox;
use sqlx::{Postgres, Transaction};

use super::passwords;
use crate::{State, db};

const EMPLOYEE_SELECT: &str = "SELECT e.id, e.employee_code, e.name, e.email, e.phone, e.position, \
     e.department, l.name AS location, e.location_id, e.birthdate, e.address, e.hire_date, e.status, \
     e.role, e.created_at, e.updated_at FROM employees e JOIN locations l ON l.id = e.location_id";

pub const MIN_PASSWORD: usize = 8;

#[derive(sqlx::FromRow)]
struct EmployeeRow {
    id: i64,
    employee_code: String,
    name: String,
    email: String,
    phone: Option<String>,
    position: Option<String>,
    department: Option<String>,
    location: String,
    location_id: i64,
    birthdate: Option<NaiveDate>,
    address: Option<String>,
    hire_date: NaiveDate,
    status: String,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl EmployeeRow {
    fn into_employee(self) -> db::Result<Employee> {
        let corrupt = |what: &str| {
            tracing::error!(employee_id = self.id, "stored {what} does not parse");
            BusError::internal()
        };
        Ok(Employee {
            employee_id: EmployeeId::new(self.id),
            employee_code: EmployeeCode::parse(&self.employee_code).map_err(|_| corrupt("code"))?,
            email: Email::parse(&self.email).map_err(|_| corrupt("email"))?,
            status: self.status.parse().map_err(|_| corrupt("status"))?,
            name: self.name,
            phone: self.phone,
            position: self.position,
            department: self.department,
            location: self.location,
            location_id: LocationId::new(self.location_id),
            birthdate: self.birthdate,
            address: self.address,
            hire_date: self.hire_date,
            role: self.role,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn optional(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, BusError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => super::name_field(field, v, max).map(Some),
    }
}

pub async fn create(state: &State, req: EmployeeCreate) -> db::Result<CreatedEmployee> {
    create_as(state, req, Role::Employee).await
}

/// The roles an employee can have: `admin`s also sign in to the admin console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Employee,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Employee => "employee",
            Self::Admin => "admin",
        }
    }
}

/// Creates an employee with `role`. An admin's generated password is a one-time password.
pub(crate) async fn create_as(
    state: &State,
    req: EmployeeCreate,
    role: Role,
) -> db::Result<CreatedEmployee> {
    let name = super::name_field("name", &req.name, 255)?;
    let location = super::name_field("location", &req.location, 255)?;
    let phone = optional("phone", req.phone, 50)?;
    let position = optional("position", req.position, 255)?;
    let department = optional("department", req.department, 255)?;
    let address = optional("address", req.address, 500)?;
    let (password, generated) = match req.password {
        Some(pw) => {
            passwords::check("password", &pw, MIN_PASSWORD)?;
            if role == Role::Admin {
                passwords::check("password", &pw, clokio_bus::ops::MIN_ADMIN_PASSWORD)?;
            }
            (pw, false)
        }
        None => (passwords::generate(), true),
    };
    let password_hash = passwords::hash(&password).await?;

    let mut tx = state.pool.begin().await?;
    let org: Option<(String,)> = sqlx::query_as("SELECT timezone FROM organizations WHERE id = $1")
        .bind(req.org_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    let (timezone,) = org.ok_or_else(|| BusError::not_found("Organization not found"))?;
    let tz = Timezone::parse(&timezone).unwrap_or_default();
    if req.birthdate.is_some_and(|b| b > tz.today()) {
        return Err(BusError::invalid("The birthdate field must be a date before today").into());
    }
    let hire_date = req.hire_date.unwrap_or_else(|| tz.today());
    let location_id: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM locations WHERE org_id = $1 AND name = $2")
            .bind(req.org_id.as_uuid())
            .bind(&location)
            .fetch_optional(&mut *tx)
            .await?;
    let (location_id,) =
        location_id.ok_or_else(|| BusError::invalid("The selected location is invalid"))?;
    let code_generated = req.employee_code.is_none();
    let mut code = match req.employee_code {
        Some(code) => code,
        None => next_code(&mut tx, req.org_id).await?,
    };
    // A generated code can still collide with a custom code committed since it was chosen; then
    // the insert is undone to its savepoint and the next code is tried. A chosen code that is
    // taken is the client's 422.
    let id = loop {
        let mut attempt = sqlx::Acquire::begin(&mut *tx).await?;
        let inserted: Result<(i64,), sqlx::Error> = sqlx::query_as(
            "INSERT INTO employees (org_id, employee_code, name, email, phone, position, department, \
                location_id, password_hash, birthdate, address, hire_date, role, must_change_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(req.org_id.as_uuid())
        .bind(code.as_str())
        .bind(&name)
        .bind(req.email.as_str())
        .bind(&phone)
        .bind(&position)
        .bind(&department)
        .bind(location_id)
        .bind(&password_hash)
        .bind(req.birthdate)
        .bind(&address)
        .bind(hire_date)
        .bind(role.as_str())
        .bind(generated && role == Role::Admin)
        .fetch_one(&mut *attempt)
        .await;
        match inserted {
            Ok((id,)) => {
                attempt.commit().await?;
                break id;
            }
            Err(err)
                if code_generated
                    && clokio_runtime::db::unique_violation(&err).as_deref()
                        == Some("employees_org_code_key") =>
            {
                attempt.rollback().await?;
                code = next_code(&mut tx, req.org_id).await?;
            }
            Err(err) => return Err(err.into()),
        }
    };
    let employee = fetch(&mut tx, req.org_id, EmployeeId::new(id)).await?;
    emit(state, &mut tx, &employee, kind::CREATED, req.org_id).await?;
    tx.commit().await?;
    state.kick.kick();
    state.org_changed(req.org_id).await;
    Ok(CreatedEmployee {
        employee,
        password: generated.then_some(password),
    })
}

/// The next free auto-generated code. The org row lock serializes generation within an org; codes
/// already taken by a custom code (someone chose `00007`) are skipped.
async fn next_code(tx: &mut Transaction<'_, Postgres>, org_id: OrgId) -> db::Result<EmployeeCode> {
    loop {
        let (n,): (i64,) = sqlx::query_as(
            "UPDATE organizations SET employee_seq = employee_seq + 1 WHERE id = $1 RETURNING employee_seq",
        )
        .bind(org_id.as_uuid())
        .fetch_one(&mut **tx)
        .await?;
        let code = EmployeeCode::sequence(n as u64);
        let taken: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM employees WHERE org_id = $1 AND employee_code = $2")
                .bind(org_id.as_uuid())
                .bind(code.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        if taken.is_none() {
            return Ok(code);
        }
    }
}

async fn fetch(
    tx: &mut Transaction<'_, Postgres>,
    org_id: OrgId,
    id: EmployeeId,
) -> db::Result<Employee> {
    let row: EmployeeRow = sqlx::query_as(&format!(
        "{EMPLOYEE_SELECT} WHERE e.org_id = $1 AND e.id = $2"
    ))
    .bind(org_id.as_uuid())
    .bind(id.get())
    .fetch_one(&mut **tx)
    .await?;
    row.into_employee()
}

async fn emit(
    state: &State,
    tx: &mut Transaction<'_, Postgres>,
    employee: &Employee,
    event: &str,
    org_id_of: OrgId,
) -> db::Result<()> {
    let e = Event {
        id: EventId::new_random(),
        org_id: org_id_of,
        occurred_at: Utc::now(),
        kind: format!("{}.{event}", kind::EMPLOYEE),
        data: employee,
    };
    let subject = state.subjects.event(kind::EMPLOYEE, org_id_of, event);
    Ok(outbox::enqueue(tx, &subject, &e).await?)
}

pub async fn list(state: &State, req: EmployeeList) -> db::Result<Vec<Employee>> {
    let rows: Vec<EmployeeRow> = sqlx::query_as(&format!(
        "{EMPLOYEE_SELECT} WHERE e.org_id = $1 AND ($2::text IS NULL OR e.status = $2) ORDER BY e.id"
    ))
    .bind(req.org_id.as_uuid())
    .bind(req.status.map(EmployeeStatus::as_str))
    .fetch_all(&state.pool)
    .await?;
    rows.into_iter().map(EmployeeRow::into_employee).collect()
}

/// One page of the org's employees, in id order, with the count of all that match.
pub async fn page(state: &State, q: EmployeePageQuery) -> db::Result<EmployeePage> {
    let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
    let page = q.page.max(1);
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > 100) {
        return Err(
            BusError::invalid("The search field must not be greater than 100 characters").into(),
        );
    }
    if search.is_some_and(|s| s.contains('\0')) {
        return Err(BusError::invalid("The search field must not contain NUL characters").into());
    }
    let pattern = search.map(like_pattern);
    let status = q.status.map(EmployeeStatus::as_str);
    // The org as `= ANY`, in (org, id) order: only the index `employees_org_id_idx` gives that
    // order. With `org_id = $1 ORDER BY id`, Postgres may walk the primary key from the first id,
    // filtering by org, expecting the org's rows spread evenly; a new org's rows are all at the
    // end (a first page of an org of 10,000 among 200,000 employees: 37 ms in the console's
    // benchmark, 0.1 ms this way).
    const FILTER: &str = "e.org_id = ANY(ARRAY[$1::uuid]) AND ($2::text IS NULL OR e.status = $2) \
        AND ($3::text IS NULL OR e.name ILIKE $3 OR e.email ILIKE $3 OR e.employee_code ILIKE $3 \
        OR e.department ILIKE $3)";
    let (count_sql, rows_sql) = (
        format!("SELECT count(*) FROM employees e WHERE {FILTER}"),
        format!("{EMPLOYEE_SELECT} WHERE {FILTER} ORDER BY e.org_id, e.id LIMIT $4 OFFSET $5"),
    );
    let count = sqlx::query_as::<_, (i64,)>(&count_sql)
        .bind(q.org_id.as_uuid())
        .bind(status)
        .bind(&pattern)
        .fetch_one(&state.pool);
    let rows = sqlx::query_as::<_, EmployeeRow>(&rows_sql)
        .bind(q.org_id.as_uuid())
        .bind(status)
        .bind(&pattern)
        .bind(i64::from(per_page))
        .bind(i64::from(page - 1) * i64::from(per_page))
        .fetch_all(&state.pool);
    let ((total,), rows) = futures::try_join!(count, rows)?;
    Ok(EmployeePage {
        employees: rows
            .into_iter()
            .map(EmployeeRow::into_employee)
            .collect::<Result<_, _>>()?,
        page,
        per_page,
        total: total as u64,
    })
}

/// `%text%` for ILIKE, with the pattern's own special characters escaped.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub async fn get(state: &State, req: EmployeeRef) -> db::Result<Employee> {
    let row: Option<EmployeeRow> = sqlx::query_as(&format!(
        "{EMPLOYEE_SELECT} WHERE e.org_id = $1 AND e.employee_code = $2"
    ))
    .bind(req.org_id.as_uuid())
    .bind(req.employee_code.as_str())
    .fetch_optional(&state.pool)
    .await?;
    row.ok_or_else(|| BusError::not_found("Employee not found"))?
        .into_employee()
}

pub async fn set_status(state: &State, req: EmployeeSetStatus) -> db::Result<Employee> {
    let mut tx = state.pool.begin().await?;
    let deactivating = req.status == EmployeeStatus::Inactive;
    if deactivating {
        // The org row first, as admin removal takes it: the last active admin stays, whichever
        // of the two runs first.
        sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(req.org_id.as_uuid())
            .execute(&mut *tx)
            .await?;
    }
    let current: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT id, status, role FROM employees WHERE org_id = $1 AND employee_code = $2 FOR UPDATE",
    )
    .bind(req.org_id.as_uuid())
    .bind(req.employee_code.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let (id, status, role) = current.ok_or_else(|| BusError::not_found("Employee not found"))?;
    let id = EmployeeId::new(id);
    if deactivating && status == "active" && role == Role::Admin.as_str() {
        let (others,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM employees \
             WHERE org_id = $1 AND role = 'admin' AND status = 'active' AND id <> $2",
        )
        .bind(req.org_id.as_uuid())
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await?;
        if others == 0 {
            return Err(BusError::conflict(
                "The organization's last active admin cannot be deactivated",
            )
            .into());
        }
    }
    if status == req.status.as_str() {
        // Nothing changes, so nothing is announced.
        let employee = fetch(&mut tx, req.org_id, id).await?;
        tx.commit().await?;
        return Ok(employee);
    }
    sqlx::query("UPDATE employees SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id.get())
        .bind(req.status.as_str())
        .execute(&mut *tx)
        .await?;
    let employee = fetch(&mut tx, req.org_id, id).await?;
    emit(state, &mut tx, &employee, kind::STATUS_CHANGED, req.org_id).await?;
    tx.commit().await?;
    state.kick.kick();
    state.org_changed(req.org_id).await;
    Ok(employee)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_matched_literally() {
        assert_eq!(like_pattern("ann"), "%ann%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
