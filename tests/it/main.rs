//! System tests: gateway + services in-process under a random subject prefix, driven over HTTP,
//! against the real Postgres, Redis and NATS.

mod api_keys;
mod attendance;
mod attendance_import;
mod attendance_outbox;
mod attendance_reads;
mod auth;
mod bus;
mod clients;
mod console;
mod console_browser;
mod console_pages;
mod employees;
mod envelope;
mod faults;
mod fuzz;
mod isolation;
mod limits;
mod locations;
mod lost_answers;
mod ops;
mod organization;
mod outage;
mod paging;
mod payroll;
mod rate_limit;
mod scopes;
mod stream;
mod summary;
mod telemetry;
mod webhooks;
