//! The Clokio bus contract: everything that crosses NATS between the gateway, the services and
//! operator tools. Subjects, typed request/reply pairs, event envelopes and the error type that
//! maps to an HTTP status. Nothing else crosses the wire; keep it backward compatible within `v1`.

pub mod calendar;
pub mod chunk;
pub mod client;
pub mod error;
pub mod events;
pub mod ids;
pub mod key;
pub mod ops;
pub mod payroll;
pub mod scope;
pub mod server;
pub mod stream;
pub mod subject;
pub mod trace;
pub mod types;

pub use client::Bus;
pub use error::{BusError, ErrorCode};
pub use subject::{Prefix, ServiceName, Subjects};
