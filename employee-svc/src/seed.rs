//! Employees written straight into employee-svc's table, for tests and benchmarks that need
//! thousands of them: through the API each would cost a password hash. They have no password
//! (nobody signs in as them), are active, and work at the organization's first location.

use clokio_bus::ids::OrgId;

/// Who to seed: codes `{code_prefix}{i:05}` for `i` in `first..first + n`, named `{name} {i}`.
pub struct Seed<'a> {
    pub org: OrgId,
    pub code_prefix: &'a str,
    pub first: i32,
    pub n: i32,
    pub name: &'a str,
    pub department: Option<&'a str>,
    pub hire_date: chrono::NaiveDate,
}

impl Seed<'_> {
    /// Inserts them, then refreshes the table's statistics: rows written behind the service's
    /// back would otherwise be planned on stale ones until autovacuum comes round (a fresh
    /// 10,000-row org made the console's Employees page 4× slower on its first request).
    pub async fn insert(&self, db: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO employee.employees \
               (org_id, employee_code, name, email, department, location_id, password_hash, \
                hire_date) \
             SELECT $1, $2 || lpad(i::text, 5, '0'), $3 || ' ' || i, \
               lower($2) || i || '@example.com', $4, \
               (SELECT min(id) FROM employee.locations WHERE org_id = $1), '!', $5 \
             FROM generate_series($6::int, $6::int + $7::int - 1) AS i",
        )
        .bind(self.org.as_uuid())
        .bind(self.code_prefix)
        .bind(self.name)
        .bind(self.department)
        .bind(self.hire_date)
        .bind(self.first)
        .bind(self.n)
        .execute(&mut *db)
        .await?;
        sqlx::query("ANALYZE employee.employees")
            .execute(&mut *db)
            .await?;
        Ok(())
    }
}
