//! What attendance-svc and reporting-svc need of employee-svc's data (the org's settings and
//! locations, its employees), asked over NATS and cached per org. employee-svc announces every change of an org
//! on its invalidation subject before it answers the write; requests reach this service over the
//! same NATS connection after that announcement, and the cache applies announcements before each
//! read (see `clokio_runtime::cache`), so a deactivated employee cannot clock in a moment later.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{OrgCache, Weigh};
use clokio_bus::ids::{EmployeeId, OrgId};
use clokio_bus::ops::{
    Employee, EmployeeGetOp, EmployeeList, EmployeeListOp, EmployeeRef, LocationListOp, OrgGetOp,
    OrgRef, Organization,
};
use clokio_bus::types::EmployeeCode;
use clokio_bus::{Bus, BusError, ErrorCode, ServiceName};

/// An organization's settings and its locations.
#[derive(Debug)]
pub struct OrgInfo {
    pub org: Organization,
    pub locations: Vec<clokio_bus::ops::Location>,
}

/// Every employee of an organization, by code and by id.
#[derive(Debug, Default)]
pub struct Staff {
    pub all: Vec<Arc<Employee>>,
    pub by_code: HashMap<EmployeeCode, Arc<Employee>>,
    pub by_id: HashMap<EmployeeId, Arc<Employee>>,
}

impl Staff {
    /// A directory of one employee.
    pub fn of_one(employee: Arc<Employee>) -> Self {
        Self {
            by_code: HashMap::from([(employee.employee_code.clone(), employee.clone())]),
            by_id: HashMap::from([(employee.employee_id, employee.clone())]),
            all: vec![employee],
        }
    }

    fn new(list: Vec<Employee>) -> Self {
        let all: Vec<Arc<Employee>> = list.into_iter().map(Arc::new).collect();
        let by_code = all
            .iter()
            .map(|e| (e.employee_code.clone(), e.clone()))
            .collect();
        let by_id = all.iter().map(|e| (e.employee_id, e.clone())).collect();
        Self {
            all,
            by_code,
            by_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Org,
    Staff,
    Employee(EmployeeCode),
}

#[derive(Clone)]
enum Entry {
    Org(Arc<OrgInfo>),
    Staff(Arc<Staff>),
    Employee(Arc<Employee>),
}

impl Weigh for Entry {
    fn weight(&self) -> u32 {
        match self {
            Self::Org(info) => 512 + 128 * info.locations.len() as u32,
            Self::Staff(staff) => 64 + 512 * staff.all.len() as u32,
            Self::Employee(_) => 512,
        }
    }
}

pub struct Directory {
    bus: Bus,
    cache: OrgCache<Key, Entry>,
}

impl Directory {
    pub async fn new(
        nats: async_nats::Client,
        bus: Bus,
    ) -> Result<Self, async_nats::SubscribeError> {
        let subject = bus.subjects().cache_invalidations(ServiceName::Employee);
        let cache = OrgCache::new("directory", nats, subject, None).await?;
        Ok(Self { bus, cache })
    }

    /// Applies announcements every 100 ms so they never pile up.
    pub async fn run_sync(&self) {
        self.cache.run_sync().await;
    }

    pub async fn org(&self, org_id: OrgId) -> Result<Arc<OrgInfo>, BusError> {
        let entry = self
            .cache
            .get_or_load(org_id, Key::Org, None, || async {
                let req = OrgRef { org_id };
                let (org, locations) = tokio::join!(
                    self.bus.call::<OrgGetOp>(&req),
                    self.bus.call::<LocationListOp>(&req)
                );
                Ok::<_, BusError>(Entry::Org(Arc::new(OrgInfo {
                    org: org.map_err(upstream)?,
                    locations: locations.map_err(upstream)?,
                })))
            })
            .await?;
        match entry {
            Entry::Org(info) => Ok(info),
            _ => Err(BusError::internal()),
        }
    }

    /// One employee by code; 404 `Employee not found` when the org has no such employee.
    pub async fn employee(
        &self,
        org_id: OrgId,
        code: &EmployeeCode,
    ) -> Result<Arc<Employee>, BusError> {
        let entry = self
            .cache
            .get_or_load(org_id, Key::Employee(code.clone()), None, || async {
                let req = EmployeeRef {
                    org_id,
                    employee_code: code.clone(),
                };
                match self.bus.call::<EmployeeGetOp>(&req).await {
                    Ok(e) => Ok(Entry::Employee(Arc::new(e))),
                    Err(err) if err.code == ErrorCode::NotFound => {
                        Err(BusError::not_found("Employee not found"))
                    }
                    Err(err) => Err(upstream(err)),
                }
            })
            .await?;
        match entry {
            Entry::Employee(e) => Ok(e),
            _ => Err(BusError::internal()),
        }
    }

    /// Every employee of the org, active or not.
    pub async fn staff(&self, org_id: OrgId) -> Result<Arc<Staff>, BusError> {
        let entry = self
            .cache
            .get_or_load(org_id, Key::Staff, None, || async {
                let req = EmployeeList {
                    org_id,
                    status: None,
                };
                let list = self
                    .bus
                    .call::<EmployeeListOp>(&req)
                    .await
                    .map_err(upstream)?;
                Ok::<_, BusError>(Entry::Staff(Arc::new(Staff::new(list))))
            })
            .await?;
        match entry {
            Entry::Staff(s) => Ok(s),
            _ => Err(BusError::internal()),
        }
    }
}

/// employee-svc's answer, as this service passes it on: its own outages stay 503/504; an org it
/// does not know (deleted under a live key) is a 404.
fn upstream(err: BusError) -> BusError {
    match err.code {
        ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::NotFound => err,
        _ => {
            tracing::error!(%err, "employee-svc refused a directory read");
            BusError::internal()
        }
    }
}
