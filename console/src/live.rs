//! The live board's feed: one core NATS subscription per console replica on the attendance
//! events of every organization; for an organization with a board open, each event's employee
//! row is read again from attendance-svc (the same reading the page made) and rendered once, and
//! the HTML goes to every open board of that organization. One worker per organization takes
//! the events in order and reads each employee once per batch, so a later state is never
//! overwritten by an earlier one. Nothing polls: with no board open, an event costs a lookup.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use clokio_bus::Bus;
use clokio_bus::events::Event;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{AttendanceEvent, OrgGetOp, OrgRef};
use clokio_bus::types::EmployeeCode;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};

/// One employee's row, rendered.
#[derive(Debug, serde::Serialize)]
pub struct RowUpdate {
    pub code: String,
    pub html: String,
}

/// How many updates a slow board may fall behind before it is told to reload.
const BACKLOG: usize = 256;

/// How long the events seen are remembered, for boards that open after their page was read.
const RECENT_FOR_MS: i64 = 60_000;
/// The most events remembered.
const RECENT_MAX: usize = 8192;

struct Board {
    rows: broadcast::Sender<Arc<RowUpdate>>,
    queue: mpsc::UnboundedSender<EmployeeCode>,
}

pub struct LiveHub {
    bus: Bus,
    boards: Mutex<HashMap<OrgId, Board>>,
    /// The events of the last minute (received at, org, employee), oldest first.
    recent: Mutex<std::collections::VecDeque<(i64, OrgId, EmployeeCode)>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LiveHub {
    /// Subscribes to the attendance events of this prefix and starts relaying them.
    pub async fn start(bus: Bus) -> Result<Arc<Self>, async_nats::SubscribeError> {
        let subject = format!("{}.events.attendance.*.*", bus.subjects().prefix());
        let mut sub = bus.client().subscribe(subject).await?;
        let hub = Arc::new(Self {
            bus,
            boards: Mutex::default(),
            recent: Mutex::default(),
            task: Mutex::default(),
        });
        let weak = Arc::downgrade(&hub);
        let task = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(hub) = weak.upgrade() else { return };
                hub.event(&msg.subject, &msg.payload);
            }
        });
        *hub.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(hub)
    }

    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    fn event(&self, subject: &str, payload: &[u8]) {
        let Some(org) = clokio_bus::subject::event_org(subject) else {
            return;
        };
        let code = match serde_json::from_slice::<Event<AttendanceEvent>>(payload) {
            Ok(event) if !event.data.imported => event.data.employee_code,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(%err, "undecodable attendance event");
                return;
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            while recent
                .front()
                .is_some_and(|(at, _, _)| *at < now - RECENT_FOR_MS)
                || recent.len() >= RECENT_MAX
            {
                recent.pop_front();
            }
            recent.push_back((now, org, code.clone()));
        }
        let boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(board) = boards.get(&org) {
            let _ = board.queue.send(code);
        }
    }

    /// A board of `org` opens: it receives every row update from now on, and the rows of the
    /// employees whose events arrived since `since_ms` (when its page was read) again.
    pub fn subscribe(self: &Arc<Self>, org: OrgId, since_ms: Option<i64>) -> Subscription {
        let missed: Vec<EmployeeCode> = match since_ms {
            Some(since) => self
                .recent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(at, o, _)| *o == org && *at >= since)
                .map(|(_, _, code)| code.clone())
                .collect(),
            None => Vec::new(),
        };
        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        let board = boards.entry(org).or_insert_with(|| {
            let (rows, _) = broadcast::channel(BACKLOG);
            let (queue, codes) = mpsc::unbounded_channel();
            tokio::spawn(worker(self.bus.clone(), org, codes, rows.clone()));
            Board { rows, queue }
        });
        metrics::gauge!("clokio_console_live_boards").increment(1.0);
        let rows = board.rows.subscribe();
        for code in missed {
            let _ = board.queue.send(code);
        }
        Subscription {
            rows: Some(rows),
            hub: self.clone(),
            org,
        }
    }
}

/// An open board; the organization's worker stops with its last board.
pub struct Subscription {
    rows: Option<broadcast::Receiver<Arc<RowUpdate>>>,
    hub: Arc<LiveHub>,
    org: OrgId,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Arc<RowUpdate>, broadcast::error::RecvError> {
        match self.rows.as_mut() {
            Some(rows) => rows.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rows.take());
        metrics::gauge!("clokio_console_live_boards").decrement(1.0);
        let mut boards = self.hub.boards.lock().unwrap_or_else(|e| e.into_inner());
        if boards
            .get(&self.org)
            .is_some_and(|b| b.rows.receiver_count() == 0)
        {
            // Dropping the queue's sender ends the worker.
            boards.remove(&self.org);
        }
    }
}

async fn worker(
    bus: Bus,
    org: OrgId,
    mut codes: mpsc::UnboundedReceiver<EmployeeCode>,
    rows: broadcast::Sender<Arc<RowUpdate>>,
) {
    while let Some(first) = codes.recv().await {
        let mut batch = BTreeSet::from([first]);
        while let Ok(code) = codes.try_recv() {
            batch.insert(code);
        }
        let tz = match bus.call::<OrgGetOp>(&OrgRef { org_id: org }).await {
            Ok(o) => o.timezone,
            Err(err) => {
                tracing::warn!(%org, %err, "live board: organization not read");
                continue;
            }
        };
        let reads = batch.into_iter().map(|code| {
            let bus = bus.clone();
            async move {
                let html = crate::pages::attendance::live_row(&bus, org, tz, &code).await;
                (code, html)
            }
        });
        for (code, html) in futures::future::join_all(reads).await {
            match html {
                Ok(html) => {
                    let _ = rows.send(Arc::new(RowUpdate {
                        code: code.to_string(),
                        html,
                    }));
                }
                Err(err) => tracing::warn!(%org, %code, %err, "live board: row not read"),
            }
        }
    }
}
