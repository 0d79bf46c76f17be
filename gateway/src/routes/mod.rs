//! The public API, one module per resource; each exposes its routes and they are merged here.

pub mod api_keys;
pub mod attendance;
pub mod corrections;
pub mod employees;
pub mod events;
pub mod leaves;
pub mod locations;
pub mod organization;
pub mod summary;
pub mod system;
pub mod webhooks;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use clokio_bus::ops::Operation;

use crate::envelope::{self, ApiError};
use crate::{App, RequestId};

pub const RETRIEVED: &str = "Data retrieved successfully";

/// Every authenticated route under `/api/v1`.
pub fn api_routes() -> Router<App> {
    Router::new()
        .merge(employees::routes())
        .merge(attendance::routes())
        .merge(corrections::routes())
        .merge(leaves::routes())
        .merge(summary::routes())
        .merge(webhooks::routes())
        .merge(locations::routes())
        .merge(api_keys::routes())
        .merge(organization::routes())
        .merge(events::routes())
}

/// Sends `req` to its service and wraps the reply's bytes in the envelope.
pub async fn forward<O: Operation>(
    app: &App,
    rid: &RequestId,
    req: &O::Request,
    status: StatusCode,
    message: &str,
) -> Result<Response, ApiError> {
    let data = app.bus.call_raw::<O>(req, Some(&rid.0)).await?;
    Ok(envelope::raw(status, message, &data))
}
