//! Admins: employees with role `admin`, who sign in to the admin console. The role and the
//! Argon2 hashes stay here; the console learns only whether a password matched. Each password
//! change and each loss of the role moves `credentials_version` on, so the console can tell a
//! session made before it from one made after. An organization always keeps one active admin
//! (neither removal nor deactivation takes the last one).

use chrono::{DateTime, Utc};
use clokio_bus::BusError;
use clokio_bus::ErrorCode;
use clokio_bus::ids::{EmployeeId, OrgId};
use clokio_bus::ops::{
    Admin, AdminCreate, AdminRef, AdminResetPassword, AdminSetPassword, AdminSignIn, CreatedAdmin,
    EmployeeCreate, MIN_ADMIN_PASSWORD, SignedIn,
};
use clokio_bus::types::{Email, EmployeeCode};
use uuid::Uuid;

use super::employees::{self, Role};
use super::passwords;
use crate::{State, db};

const ADMIN_COLUMNS: &str = "e.id, e.employee_code, e.name, e.email, e.status, \
     e.must_change_password, e.credentials_version, e.created_at";

/// What a failed sign-in says, whether the email is unknown or the password wrong.
pub const NO_MATCH: &str = "These credentials do not match our records";

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: i64,
    employee_code: String,
    name: String,
    email: String,
    status: String,
    must_change_password: bool,
    credentials_version: i64,
    created_at: DateTime<Utc>,
}

impl AdminRow {
    fn into_admin(self) -> db::Result<Admin> {
        let corrupt = |what: &str| {
            tracing::error!(employee_id = self.id, "stored {what} does not parse");
            BusError::internal()
        };
        Ok(Admin {
            employee_id: EmployeeId::new(self.id),
            employee_code: EmployeeCode::parse(&self.employee_code).map_err(|_| corrupt("code"))?,
            email: Email::parse(&self.email).map_err(|_| corrupt("email"))?,
            status: self.status.parse().map_err(|_| corrupt("status"))?,
            name: self.name,
            must_change_password: self.must_change_password,
            credentials_version: self.credentials_version,
            created_at: self.created_at,
        })
    }
}

/// Gives the role to the org's employee with this email, or creates an employee with it. A
/// generated password is a one-time password; a given one must have 12 characters or more.
pub async fn create(state: &State, req: AdminCreate) -> db::Result<CreatedAdmin> {
    let name = super::name_field("name", &req.name, 255)?;
    if let Some(pw) = &req.password {
        passwords::check("password", pw, MIN_ADMIN_PASSWORD)?;
    }
    let existing: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, role FROM employees WHERE org_id = $1 AND lower(email) = lower($2)",
    )
    .bind(req.org_id.as_uuid())
    .bind(req.email.as_str())
    .fetch_optional(&state.pool)
    .await?;
    match existing {
        Some((_, role)) if role == Role::Admin.as_str() => Err(BusError::invalid(
            "The email belongs to an admin of the organization already",
        )
        .into()),
        Some((id, _)) => promote(state, req.org_id, EmployeeId::new(id), req.password).await,
        None => {
            let location = match req.location {
                Some(location) => location,
                None => first_location(state, req.org_id).await?,
            };
            let created = employees::create_as(
                state,
                EmployeeCreate {
                    org_id: req.org_id,
                    name,
                    email: req.email,
                    location,
                    phone: None,
                    position: None,
                    department: None,
                    employee_code: None,
                    password: req.password,
                    birthdate: None,
                    address: None,
                    hire_date: None,
                },
                Role::Admin,
            )
            .await?;
            let admin = get(
                state,
                AdminRef {
                    org_id: req.org_id,
                    employee_id: created.employee.employee_id,
                },
            )
            .await?;
            Ok(CreatedAdmin {
                admin,
                promoted: false,
                password: created.password,
            })
        }
    }
}

/// The name of the org's first location, where a new admin is placed when none is named.
async fn first_location(state: &State, org_id: OrgId) -> db::Result<String> {
    let org: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT (SELECT name FROM locations WHERE org_id = o.id ORDER BY id LIMIT 1) \
         FROM organizations o WHERE o.id = $1",
    )
    .bind(org_id.as_uuid())
    .fetch_optional(&state.pool)
    .await?;
    match org {
        None => Err(BusError::not_found("Organization not found").into()),
        Some((None,)) => {
            Err(BusError::invalid("The organization has no location yet: create one first").into())
        }
        Some((Some(name),)) => Ok(name),
    }
}

async fn promote(
    state: &State,
    org_id: OrgId,
    id: EmployeeId,
    password: Option<String>,
) -> db::Result<CreatedAdmin> {
    let (password, generated) = match password {
        Some(pw) => (pw, false),
        None => (passwords::generate(), true),
    };
    let hash = passwords::hash(&password).await?;
    let row: Option<AdminRow> = sqlx::query_as(&format!(
        "UPDATE employees e SET role = 'admin', password_hash = $3, must_change_password = $4, \
            credentials_version = credentials_version + 1, updated_at = now() \
         WHERE e.org_id = $1 AND e.id = $2 AND e.role <> 'admin' RETURNING {ADMIN_COLUMNS}"
    ))
    .bind(org_id.as_uuid())
    .bind(id.get())
    .bind(&hash)
    .bind(generated)
    .fetch_optional(&state.pool)
    .await?;
    // Another request made them an admin in between.
    let row = row.ok_or_else(|| {
        BusError::invalid("The email belongs to an admin of the organization already")
    })?;
    state.org_changed(org_id).await;
    Ok(CreatedAdmin {
        admin: row.into_admin()?,
        promoted: true,
        password: generated.then_some(password),
    })
}

pub async fn list(state: &State, org_id: OrgId) -> db::Result<Vec<Admin>> {
    let rows: Vec<AdminRow> = sqlx::query_as(&format!(
        "SELECT {ADMIN_COLUMNS} FROM employees e WHERE e.org_id = $1 AND e.role = 'admin' ORDER BY e.id"
    ))
    .bind(org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    rows.into_iter().map(AdminRow::into_admin).collect()
}

pub async fn get(state: &State, r: AdminRef) -> db::Result<Admin> {
    let row: Option<AdminRow> = sqlx::query_as(&format!(
        "SELECT {ADMIN_COLUMNS} FROM employees e \
         WHERE e.org_id = $1 AND e.id = $2 AND e.role = 'admin'"
    ))
    .bind(r.org_id.as_uuid())
    .bind(r.employee_id.get())
    .fetch_optional(&state.pool)
    .await?;
    row.ok_or_else(|| BusError::not_found("Admin not found"))?
        .into_admin()
}

/// Takes the role away; the employee stays. The org row is locked, so two admins removing each
/// other at once cannot leave the organization without one.
pub async fn remove(state: &State, r: AdminRef) -> db::Result<Admin> {
    let mut tx = state.pool.begin().await?;
    let org: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(r.org_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    if org.is_none() {
        return Err(BusError::not_found("Admin not found").into());
    }
    // Only active admins can sign in: the last of them stays.
    let (admins, is_admin): (i64, bool) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'active' AND id <> $2), bool_or(id = $2) \
         FROM employees WHERE org_id = $1 AND role = 'admin'",
    )
    .bind(r.org_id.as_uuid())
    .bind(r.employee_id.get())
    .fetch_one(&mut *tx)
    .await
    .map(|(n, found): (i64, Option<bool>)| (n, found.unwrap_or(false)))?;
    if !is_admin {
        return Err(BusError::not_found("Admin not found").into());
    }
    if admins == 0 {
        return Err(BusError::conflict("The organization's last admin cannot be removed").into());
    }
    let row: AdminRow = sqlx::query_as(&format!(
        "UPDATE employees e SET role = 'employee', must_change_password = false, \
            credentials_version = credentials_version + 1, updated_at = now() \
         WHERE e.id = $1 RETURNING {ADMIN_COLUMNS}"
    ))
    .bind(r.employee_id.get())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state.org_changed(r.org_id).await;
    row.into_admin()
}

/// Every active admin with this email whose password matches, across organizations (at most 10
/// accounts are tried). Unknown email or wrong password: 401 with the same message, after the
/// same Argon2 work.
pub async fn sign_in(state: &State, r: AdminSignIn) -> db::Result<Vec<SignedIn>> {
    if r.password.chars().count() > passwords::MAX_PASSWORD {
        passwords::verify_nothing("").await?;
        return Err(BusError::new(ErrorCode::Unauthorized, NO_MATCH).into());
    }
    #[derive(sqlx::FromRow)]
    struct Candidate {
        #[sqlx(flatten)]
        admin: AdminRow,
        org_id: Uuid,
        org_name: String,
        password_hash: String,
    }
    let candidates: Vec<Candidate> = sqlx::query_as(&format!(
        "SELECT {ADMIN_COLUMNS}, e.org_id, o.name AS org_name, e.password_hash \
         FROM employees e JOIN organizations o ON o.id = e.org_id \
         WHERE lower(e.email) = lower($1) AND e.role = 'admin' AND e.status = 'active' \
         ORDER BY o.name, e.id LIMIT 10"
    ))
    .bind(r.email.as_str())
    .fetch_all(&state.pool)
    .await?;
    if candidates.is_empty() {
        passwords::verify_nothing(&r.password).await?;
        return Err(BusError::new(ErrorCode::Unauthorized, NO_MATCH).into());
    }
    let mut matched = Vec::new();
    for c in candidates {
        if passwords::verify(&c.password_hash, &r.password).await? {
            matched.push(SignedIn {
                org_id: OrgId::from_uuid(c.org_id),
                org_name: c.org_name,
                admin: c.admin.into_admin()?,
            });
        }
    }
    if matched.is_empty() {
        return Err(BusError::new(ErrorCode::Unauthorized, NO_MATCH).into());
    }
    Ok(matched)
}

/// A new password for an admin who knows the current one; it is no longer a one-time password.
pub async fn set_password(state: &State, r: AdminSetPassword) -> db::Result<Admin> {
    if r.current_password.is_empty() {
        return Err(BusError::invalid("The current_password field is required").into());
    }
    passwords::check("new_password", &r.new_password, MIN_ADMIN_PASSWORD)?;
    if r.new_password == r.current_password {
        return Err(BusError::invalid(
            "The new_password field must be different from the current password",
        )
        .into());
    }
    let stored: Option<(String, i64)> = sqlx::query_as(
        "SELECT password_hash, credentials_version FROM employees \
         WHERE org_id = $1 AND id = $2 AND role = 'admin'",
    )
    .bind(r.org_id.as_uuid())
    .bind(r.employee_id.get())
    .fetch_optional(&state.pool)
    .await?;
    let (stored, version) = stored.ok_or_else(|| BusError::not_found("Admin not found"))?;
    if !passwords::verify(&stored, &r.current_password).await? {
        return Err(
            BusError::invalid("The current_password field does not match your password").into(),
        );
    }
    let hash = passwords::hash(&r.new_password).await?;
    // Only if nothing changed since the check: a concurrent change wins, this one is refused.
    let row: Option<AdminRow> = sqlx::query_as(&format!(
        "UPDATE employees e SET password_hash = $3, must_change_password = false, \
            credentials_version = credentials_version + 1, updated_at = now() \
         WHERE e.org_id = $1 AND e.id = $2 AND e.role = 'admin' AND e.credentials_version = $4 \
         RETURNING {ADMIN_COLUMNS}"
    ))
    .bind(r.org_id.as_uuid())
    .bind(r.employee_id.get())
    .bind(&hash)
    .bind(version)
    .fetch_optional(&state.pool)
    .await?;
    row.ok_or_else(|| BusError::conflict("The password was changed meanwhile; sign in again"))?
        .into_admin()
}

/// The operator's reset: a new password for the org's admin with this email (generated: a
/// one-time password); every session made before ends.
pub async fn reset_password(state: &State, r: AdminResetPassword) -> db::Result<CreatedAdmin> {
    let (password, generated) = match r.password {
        Some(pw) => {
            passwords::check("password", &pw, MIN_ADMIN_PASSWORD)?;
            (pw, false)
        }
        None => (passwords::generate(), true),
    };
    let hash = passwords::hash(&password).await?;
    let row: Option<AdminRow> = sqlx::query_as(&format!(
        "UPDATE employees e SET password_hash = $3, must_change_password = $4, \
            credentials_version = credentials_version + 1, updated_at = now() \
         WHERE e.org_id = $1 AND lower(e.email) = lower($2) AND e.role = 'admin' \
         RETURNING {ADMIN_COLUMNS}"
    ))
    .bind(r.org_id.as_uuid())
    .bind(r.email.as_str())
    .bind(&hash)
    .bind(generated)
    .fetch_optional(&state.pool)
    .await?;
    let admin = row
        .ok_or_else(|| BusError::not_found("Admin not found"))?
        .into_admin()?;
    Ok(CreatedAdmin {
        admin,
        promoted: false,
        password: generated.then_some(password),
    })
}
