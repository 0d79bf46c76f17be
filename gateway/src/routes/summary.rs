//! `GET /api/v1/attendance/summary`: the monthly summary for payroll, as the JSON envelope or, with
//! `format=csv`, as a CSV download streamed from reporting-svc chunk by chunk (never whole in
//! memory here).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use clokio_bus::ops::{SummaryOp, SummaryQuery, SummaryRow, summary_csv_file_name};
use utoipa::IntoParams;

use super::forward;
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::request::{Month, Params, Year};
use crate::{App, RequestId};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/attendance/summary", get(summary))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// 1–12, with or without a leading zero.
    #[param(inline)]
    month: Month,
    /// Four digits, from 1970.
    #[param(inline)]
    year: Year,
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(pattern = r"^\s*(json|csv)?\s*$")]
    format: Option<String>,
}

/// Monthly attendance summary for every employee employed that month; `format=csv` downloads the
/// same numbers as `text/csv`.
#[utoipa::path(get, path = "/api/v1/attendance/summary", tag = "Reports", params(SummaryParams),
    responses(
        (status = 200, description = "The summary; with `format=csv` a CSV file with a header row of the same field names",
            content((Envelope<Vec<SummaryRow>> = "application/json"), (String = "text/csv"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn summary(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Params(q): Params<SummaryParams>,
) -> Result<Response, ApiError> {
    let (month, year) = (q.month.0, q.year.0);
    match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("json") => {
            let req = SummaryQuery {
                org_id: auth.org_id,
                year,
                month,
            };
            forward::<SummaryOp>(
                &app,
                &rid,
                &req,
                StatusCode::OK,
                "Monthly summary retrieved",
            )
            .await
        }
        Some("csv") => csv(&app, &auth, &rid, year, month).await,
        Some(_) => Err(ApiError::invalid("The format field must be json or csv")),
    }
}

async fn csv(
    app: &App,
    auth: &Auth,
    rid: &RequestId,
    year: i32,
    month: u32,
) -> Result<Response, ApiError> {
    let chunks =
        clokio_bus::stream::summary_csv(&app.bus, auth.org_id, year, month, Some(&rid.0)).await?;
    let mut res = Response::new(Body::from_stream(chunks));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        summary_csv_file_name(year, month)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
