//! Clock writes of different employees, many to a statement.
//!
//! A punch without an `Idempotency-Key` hands its decided write ([`Write`]) to the replica's
//! batcher and waits for its answer. The batcher takes every write waiting, at most one per
//! employee, and runs them as one statement per kind of write: each write applies only from the
//! version it was decided on, exactly as its statement of its own would, and the statement answers
//! one row per write (the `n`th for the `n`th write), the state after it or the state as it stands
//! when the version had moved on. One statement and one commit for many punches is what lets the
//! clock path keep up with Postgres: a punch's own statement costs more to start and commit than
//! to run.
//!
//! One batch runs at a time, so a batch never waits on a lock another batch of the replica holds,
//! and the punches arriving meanwhile make the next one: under no load a write runs at once and
//! alone, under load the batches grow. If the statement fails, each write is run again on its own
//! (a constraint, a deadlock with another replica: each punch then gets its own answer); if the
//! connection was lost, each write finds out from what it leaves behind whether it committed
//! (the whole statement did, or none of it).

use std::collections::{HashSet, VecDeque};
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgRow;
use tokio::sync::{mpsc, oneshot};

use super::{Change, NO_SESSION, SESSION_OF_S, Write};
use crate::db;
use clokio_bus::BusError;
use clokio_runtime::outbox;

/// The most writes one statement takes.
const MAX_WRITES: usize = 128;

/// What came of a write handed to the batcher.
pub(crate) enum Outcome {
    /// The statement ran: the write's answer row, none when the employee has no state row.
    Answered(Option<PgRow>),
    /// The connection was lost while the statement ran: the write may have committed.
    Lost(Write, sqlx::Error),
    /// The statement failed: nothing of it was written. The write is to be run on its own.
    Failed(Write),
}

struct Job {
    write: Write,
    done: oneshot::Sender<Outcome>,
}

/// The replica's batcher of clock writes (see the module's documentation).
#[derive(Clone)]
pub(crate) struct Batches {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Batches {
    /// Starts the batcher; it stops when the last handle is dropped. `prefix`: the deployment's
    /// subject prefix, which a new session records.
    pub(crate) fn start(pool: PgPool, prefix: String, lock_wait: Duration) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, prefix, lock_wait, rx));
        Self { jobs }
    }

    /// Runs `write` in the next batch.
    pub(crate) async fn write(&self, write: Write) -> db::Result<Outcome> {
        let (done, answer) = oneshot::channel();
        metrics::gauge!("clokio_clock_writes_waiting").increment(1.0);
        self.jobs.send(Job { write, done }).map_err(|_| {
            metrics::gauge!("clokio_clock_writes_waiting").decrement(1.0);
            tracing::error!("the clock write batcher has stopped");
            BusError::unavailable()
        })?;
        answer.await.map_err(|_| {
            tracing::error!("the clock write batcher dropped a write");
            BusError::unavailable().into()
        })
    }
}

async fn run(
    pool: PgPool,
    prefix: String,
    lock_wait: Duration,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    // Writes held back because their employee was in the batch already, oldest first.
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut own = Own {
        pool,
        lock_wait,
        conn: None,
    };
    loop {
        if waiting.is_empty() {
            match jobs.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        let mut batch = Vec::new();
        let mut employees = HashSet::new();
        let mut held = VecDeque::new();
        while batch.len() < MAX_WRITES {
            let Some(job) = waiting.pop_front().or_else(|| jobs.try_recv().ok()) else {
                break;
            };
            if employees.insert(job.write.key()) {
                batch.push(job);
            } else {
                held.push_back(job);
            }
        }
        // An employee's writes keep their order: those held back go before those not looked at.
        held.append(&mut waiting);
        waiting = held;
        metrics::gauge!("clokio_clock_writes_waiting").decrement(batch.len() as f64);
        run_batch(&mut own, &prefix, batch).await;
    }
}

/// Runs one statement per kind of write in `batch`, and answers each write.
async fn run_batch(own: &mut Own, prefix: &str, batch: Vec<Job>) {
    let mut kinds: [Vec<Job>; 4] = Default::default();
    for job in batch {
        let kind = match job.write.change {
            Change::ClockIn { .. } => 0,
            Change::ClockOut { .. } => 1,
            Change::BreakStart { .. } => 2,
            Change::BreakEnd { .. } => 3,
        };
        kinds[kind].push(job);
    }
    for jobs in kinds.into_iter().filter(|jobs| !jobs.is_empty()) {
        metrics::histogram!("clokio_clock_batch_writes").record(jobs.len() as f64);
        let (writes, dones): (Vec<Write>, Vec<_>) =
            jobs.into_iter().map(|job| (job.write, job.done)).unzip();
        let mut answers = run_statement(own, prefix, writes).await.into_iter();
        for done in dones {
            // A punch whose caller went away drops its receiver; nothing to do for it.
            let _ = done.send(answers.next().unwrap_or(Outcome::Answered(None)));
        }
    }
}

/// Runs `writes`, all of one kind, as one statement: one outcome per write, in order. A write
/// alone runs its own statement, which costs less than the batch's for one.
async fn run_statement(own: &mut Own, prefix: &str, writes: Vec<Write>) -> Vec<Outcome> {
    let conn = match own.conn().await {
        Ok(conn) => conn,
        Err(err) => return failed(writes, err),
    };
    if writes.len() == 1 {
        let result = writes[0].statement(prefix).fetch_optional(&mut *conn).await;
        return match result {
            Ok(answer) => vec![Outcome::Answered(answer)],
            Err(err) => own.failed(writes, err),
        };
    }
    let count = writes.len();
    let mut args = Args::default();
    let mut rows = outbox::Owned::default();
    for (n, write) in writes.iter().enumerate() {
        args.push(write);
        rows.push(n as i64 + 1, &write.rows, &write.trace);
    }
    let kept = writes;
    let statement = match kept[0].change {
        Change::ClockIn { .. } => &*CLOCK_IN,
        Change::ClockOut { .. } => &*CLOCK_OUT,
        Change::BreakStart { .. } => &*BREAK_START,
        Change::BreakEnd { .. } => &*BREAK_END,
    };
    let query = args.bind(sqlx::query(statement), &kept[0].change, prefix);
    let result = rows.bind(query).fetch_all(&mut *conn).await;
    match result {
        Ok(answers) => {
            let mut by_write: Vec<Option<PgRow>> = (0..count).map(|_| None).collect();
            for row in answers {
                match sqlx::Row::try_get::<i64, _>(&row, "n") {
                    Ok(n) if (1..=count as i64).contains(&n) => {
                        by_write[n as usize - 1] = Some(row)
                    }
                    other => tracing::error!(?other, "a clock batch answered an unknown write"),
                }
            }
            by_write.into_iter().map(Outcome::Answered).collect()
        }
        Err(err) => own.failed(kept, err),
    }
}

/// The batcher's own connection: its statements wait at most `lock_wait` for a row lock (a
/// period's close or an import holding an org's states), then their writes run alone on the pool,
/// where only those of the locked employees wait, not every punch of the replica behind them.
struct Own {
    pool: PgPool,
    lock_wait: Duration,
    conn: Option<sqlx::PgConnection>,
}

impl Own {
    async fn conn(&mut self) -> Result<&mut sqlx::PgConnection, sqlx::Error> {
        if self.conn.is_none() {
            // Taken out of the pool, so its settings never reach another statement. A generic
            // plan: a custom one is planned again for every batch (the arrays are its constants),
            // which cost about 40 % of a 17-write clock-in's time; the generic plans look the
            // states up by both arrays in the index, whatever the batch.
            let mut conn = self.pool.acquire().await?.detach();
            let set = format!("SET lock_timeout = {}", self.lock_wait.as_millis());
            sqlx::query(&set).execute(&mut conn).await?;
            sqlx::query("SET plan_cache_mode = force_generic_plan")
                .execute(&mut conn)
                .await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// [`failed`], dropping the connection when it was lost.
    fn failed(&mut self, writes: Vec<Write>, err: sqlx::Error) -> Vec<Outcome> {
        if clokio_runtime::db::is_connection_lost(&err) {
            self.conn = None;
        }
        failed(writes, err)
    }
}

/// The outcomes of `writes` whose statement failed with `err`.
fn failed(writes: Vec<Write>, err: sqlx::Error) -> Vec<Outcome> {
    match err {
        err if clokio_runtime::db::is_connection_lost(&err) => {
            let kind = match &err {
                sqlx::Error::Io(io) => io.kind(),
                _ => std::io::ErrorKind::ConnectionAborted,
            };
            let message = err.to_string();
            writes
                .into_iter()
                .map(|write| {
                    let err = std::io::Error::new(kind, message.clone());
                    Outcome::Lost(write, sqlx::Error::Io(err))
                })
                .collect()
        }
        err if err.as_database_error().and_then(|e| e.code()).as_deref() == Some("55P03") => {
            metrics::counter!("clokio_clock_batch_lock_waits_total").increment(1);
            tracing::info!(
                writes = writes.len(),
                "a clock batch waited too long for a lock; its writes run on their own"
            );
            writes.into_iter().map(Outcome::Failed).collect()
        }
        err => {
            tracing::warn!(%err, writes = writes.len(), "a clock batch failed; its writes run on their own");
            writes.into_iter().map(Outcome::Failed).collect()
        }
    }
}

/// The batch's parameters, one array element per write.
#[derive(Default)]
struct Args {
    orgs: Vec<sqlx::types::Uuid>,
    employees: Vec<i64>,
    versions: Vec<i64>,
    closed_from: Vec<chrono::NaiveDate>,
    at: Vec<chrono::DateTime<chrono::Utc>>,
    sessions: Vec<i64>,
    work_dates: Vec<chrono::NaiveDate>,
    location_ids: Vec<i64>,
    locations: Vec<String>,
    /// A clock-out's breaks in all, or a break's length.
    seconds: Vec<i64>,
}

impl Args {
    fn push(&mut self, write: &Write) {
        self.orgs.push(write.org.as_uuid());
        self.employees.push(write.employee_id);
        self.versions.push(write.version);
        self.closed_from.push(write.closed_from);
        self.at.push(write.at);
        match &write.change {
            Change::ClockIn {
                session,
                work_date,
                location_id,
                location,
            } => {
                self.sessions.push(*session);
                self.work_dates.push(*work_date);
                self.location_ids.push(*location_id);
                self.locations.push(location.clone());
            }
            Change::ClockOut {
                session,
                location_id,
                location,
                break_seconds,
            } => {
                self.sessions.push(*session);
                self.location_ids.push(*location_id);
                self.locations.push(location.clone());
                self.seconds.push(*break_seconds);
            }
            Change::BreakStart { session } => self.sessions.push(*session),
            Change::BreakEnd { session, seconds } => {
                self.sessions.push(*session);
                self.seconds.push(*seconds);
            }
        }
    }

    /// Binds the parameters of the statement for writes like `like`.
    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        like: &Change,
        prefix: &str,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let query = query
            .bind(self.orgs)
            .bind(self.employees)
            .bind(self.versions)
            .bind(self.closed_from)
            .bind(self.at)
            .bind(self.sessions);
        match like {
            Change::ClockIn { .. } => query
                .bind(self.work_dates)
                .bind(self.location_ids)
                .bind(self.locations)
                .bind(prefix.to_owned()),
            Change::ClockOut { .. } => query
                .bind(self.location_ids)
                .bind(self.locations)
                .bind(self.seconds),
            Change::BreakStart { .. } => query,
            Change::BreakEnd { .. } => query.bind(self.seconds),
        }
    }
}

/// The writes, `i`: one row per write, numbered `n` from 1 in the order bound. Every statement
/// takes the org, employee, version, closed-months start, instant and session (`$1` to `$6`);
/// `more` are the kind's own columns from `$7`, as `(type, name)`.
fn input(more: &[(&str, &str)]) -> String {
    let (mut types, mut names) = (String::new(), String::new());
    for (k, (ty, name)) in more.iter().enumerate() {
        types.push_str(&format!(", ${}::{ty}[]", k + 7));
        names.push_str(&format!(", {name}"));
    }
    format!(
        "i AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::date[], \
            $5::timestamptz[], $6::bigint[]{types}) \
            WITH ORDINALITY AS i(org_id, employee_id, version, closed_from, at, session_id{names}, n))"
    )
}

/// The update of the employees' states, `st`, from the versions decided on, where `only_if`
/// (SQL on `e`, the state, and `i`) holds. It returns each write's number, what its answer needs
/// of it and the `more` columns of `i`. The states are looked up by the arrays of orgs and
/// employees, so the plan is index lookups whatever the planner thinks of `i` (it once hashed a
/// sequential scan of the whole table).
fn states(set: &str, only_if: &str, more: &str) -> String {
    format!(
        "st AS (UPDATE employee_state e SET {set} FROM i \
            WHERE e.org_id = ANY($1::uuid[]) AND e.employee_id = ANY($2::bigint[]) \
            AND e.org_id = i.org_id AND e.employee_id = i.employee_id AND e.version = i.version \
            AND {only_if} \
            RETURNING i.n, i.org_id, i.closed_from, e.version, e.open_session_id, \
                e.last_event_at{more})"
    )
}

/// The org's closed months from `closed_from`, both columns of `of`.
fn closed(of: &str) -> String {
    format!(
        "ARRAY(SELECT month FROM closed_periods c \
            WHERE c.org_id = {of}.org_id AND c.month >= {of}.closed_from) AS closed_months"
    )
}

/// The answers, as [`super::answer`] gives them for one write: for each write that applied, the
/// state it left, from `applied` (a statement's `RETURNING` with [`states`]' columns: no join of
/// two CTEs, which the planner would loop over), with `new_session_id` and `session`, the open
/// session's columns; for each that did not, the state as the statement found it (a clock-in's
/// new session id drawn when `draw`).
fn answers(applied: &str, new_session_id: &str, session: &str, draw: &str) -> String {
    format!(
        "SELECT {applied}.n, true AS wrote, {applied}.version, {applied}.open_session_id, \
            {applied}.last_event_at, {new_session_id} AS new_session_id, {}, {session} \
         FROM {applied} \
         UNION ALL \
         SELECT i.n, false AS wrote, e.version, e.open_session_id, e.last_event_at, \
            CASE WHEN {draw} AND e.open_session_id IS NULL THEN nextval('sessions_id_seq') END \
            AS new_session_id, {}, \
            o.work_date, o.clock_in, o.location_id, o.location, o.break_seconds, \
            o.break_open_since, o.revision \
         FROM i JOIN employee_state e ON e.org_id = i.org_id AND e.employee_id = i.employee_id \
            LEFT JOIN sessions o ON o.id = e.open_session_id \
         WHERE e.org_id = ANY($1::uuid[]) AND e.employee_id = ANY($2::bigint[]) \
            AND i.n NOT IN (SELECT n FROM st)",
        closed(applied),
        closed("i")
    )
}

/// Rows of `i` whose write applied.
const APPLIED: &str = "FROM st JOIN i ON i.n = st.n";

/// What the answer of a break's write needs, returned by its update of the session `x`.
const BREAK_RETURNING: &str = "RETURNING st.n, st.org_id, st.closed_from, st.version, \
    st.open_session_id, st.last_event_at, x.work_date, x.clock_in, x.location_id, x.location, \
    x.break_seconds, x.break_open_since, x.revision";

static CLOCK_IN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, {}, \
         s AS (INSERT INTO sessions (id, org_id, employee_id, work_date, clock_in, location_id, \
                location, prefix, break_seconds, revision) \
            SELECT i.session_id, i.org_id, i.employee_id, i.work_date, i.at, i.location_id, \
                i.location, $10, 0, 1 {APPLIED}), \
         {} {}",
        input(&[
            ("date", "work_date"),
            ("bigint", "location_id"),
            ("text", "location")
        ]),
        states(
            "open_session_id = i.session_id, last_event_at = i.at",
            "e.open_session_id IS NULL",
            ", i.work_date, i.at, i.location_id, i.location"
        ),
        outbox::owned_rows_cte(11, "SELECT n FROM st"),
        // The new session, as it was inserted: no breaks yet, first revision.
        answers(
            "st",
            "NULL::bigint",
            "st.work_date, st.at AS clock_in, st.location_id, st.location, \
             0::bigint AS break_seconds, NULL::timestamptz AS break_open_since, \
             1::bigint AS revision",
            "true"
        )
    )
});

static CLOCK_OUT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, {}, \
         s AS (UPDATE sessions x SET clock_out = i.at, out_location_id = i.location_id, \
                out_location = i.location, break_seconds = i.break_seconds, \
                break_open_since = NULL, revision = x.revision + 1 \
            {APPLIED} WHERE x.id = i.session_id), \
         b AS (UPDATE breaks k SET ended_at = i.at {APPLIED} \
            WHERE k.session_id = i.session_id AND k.ended_at IS NULL), \
         {} {}",
        input(&[
            ("bigint", "location_id"),
            ("text", "location"),
            ("bigint", "break_seconds")
        ]),
        states(
            "open_session_id = NULL, last_event_at = i.at",
            "e.open_session_id = i.session_id",
            ""
        ),
        outbox::owned_rows_cte(10, "SELECT n FROM st"),
        // The employee's next clock-in takes this id, when this replica decides it.
        answers("st", "nextval('sessions_id_seq')", NO_SESSION, "false")
    )
});

static BREAK_START: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, {}, \
         b AS (INSERT INTO breaks (session_id, started_at) SELECT i.session_id, i.at {APPLIED}), \
         s AS (UPDATE sessions x SET break_open_since = i.at, revision = x.revision + 1 \
            {APPLIED} WHERE x.id = i.session_id {BREAK_RETURNING}), \
         {} {}",
        input(&[]),
        states(
            "last_event_at = i.at",
            "e.open_session_id = i.session_id",
            ""
        ),
        outbox::owned_rows_cte(7, "SELECT n FROM st"),
        answers("s", "NULL::bigint", SESSION_OF_S, "false")
    )
});

static BREAK_END: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, {}, \
         b AS (UPDATE breaks k SET ended_at = i.at {APPLIED} \
            WHERE k.session_id = i.session_id AND k.ended_at IS NULL), \
         s AS (UPDATE sessions x SET break_open_since = NULL, \
                break_seconds = x.break_seconds + i.seconds, revision = x.revision + 1 \
            {APPLIED} WHERE x.id = i.session_id {BREAK_RETURNING}), \
         {} {}",
        input(&[("bigint", "seconds")]),
        states(
            "last_event_at = i.at",
            "e.open_session_id = i.session_id",
            ""
        ),
        outbox::owned_rows_cte(8, "SELECT n FROM st"),
        answers("s", "NULL::bigint", SESSION_OF_S, "false")
    )
});
