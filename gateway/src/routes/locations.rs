//! `/api/v1/locations`: work locations with a geofence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use clokio_bus::ops::{Location, LocationCreate, LocationCreateOp, LocationListOp, OrgRef};
use utoipa::ToSchema;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::request::{Body, Latitude, Longitude, Number, Text};
use crate::{App, RequestId};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/locations", get(list).post(create))
}

/// List the organization's work locations.
#[utoipa::path(get, path = "/api/v1/locations", tag = "Locations",
    responses((status = 200, body = Envelope<Vec<Location>>), (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
) -> Result<Response, ApiError> {
    forward::<LocationListOp>(
        &app,
        &rid,
        &OrgRef {
            org_id: auth.org_id,
        },
        StatusCode::OK,
        RETRIEVED,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct LocationCreateBody {
    /// Unique within the organization.
    #[schema(inline)]
    name: Text<255>,
    #[schema(inline)]
    latitude: Latitude,
    #[schema(inline)]
    longitude: Longitude,
    /// Geofence radius in meters.
    #[schema(value_type = f64, exclusive_minimum = 0.0, maximum = 100000.0)]
    radius_meters: Number,
}

/// Create a work location.
#[utoipa::path(post, path = "/api/v1/locations", tag = "Locations", request_body = LocationCreateBody,
    responses((status = 201, body = Envelope<Location>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Body(body): Body<LocationCreateBody>,
) -> Result<Response, ApiError> {
    let req = LocationCreate {
        org_id: auth.org_id,
        name: body.name.0,
        latitude: body.latitude.0,
        longitude: body.longitude.0,
        radius_meters: body.radius_meters.0,
    };
    forward::<LocationCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Location created successfully",
    )
    .await
}
