//! The OpenAPI 3.1 document, generated from the handlers' annotations and the bus types.

use std::sync::OnceLock;

use axum::http::Method;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref};

use clokio_bus::scope::{Preset, Scopes};

use crate::scopes;
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::{
    api_keys, attendance, corrections, employees, events, leaves, locations, organization, summary,
    webhooks,
};

/// The success envelope around `data`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Envelope<T> {
    /// Always `success`.
    #[schema(example = "success")]
    status: String,
    #[schema(example = "Data retrieved successfully")]
    message: String,
    data: T,
}

/// The error envelope; `data` is null.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorEnvelope {
    /// Always `error`.
    #[schema(example = "error")]
    status: String,
    #[schema(example = "Invalid API key")]
    message: String,
    #[schema(value_type = Option<Object>)]
    data: Option<()>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Clokio Public API", version = "1.0.0",
        description = "Attendance and time-clock API. Every response is the envelope `{status, message, data}`. \
            Authenticate with the `X-API-Key` header; limits are per key and reported in `X-RateLimit-*` headers."),
    paths(
        employees::list, employees::create, employees::set_status,
        locations::list, locations::create,
        api_keys::list, api_keys::create, api_keys::revoke,
        organization::show, organization::update,
        attendance::clock_in, attendance::clock_out, attendance::break_start, attendance::break_end,
        attendance::daily, attendance::range, attendance::employee, attendance::employee_today,
        attendance::today_detailed, attendance::import,
        corrections::show, corrections::update, corrections::remove, corrections::create, corrections::history,
        corrections::periods, corrections::close, corrections::reopen,
        leaves::create, leaves::list, leaves::remove,
        summary::summary,
        webhooks::create, webhooks::list, webhooks::show, webhooks::update, webhooks::remove,
        webhooks::test, webhooks::rotate, webhooks::deliveries, webhooks::delivery, webhooks::retry,
        events::stream,
    ),
    modifiers(&ApiKeyAuth),
)]
struct ApiDoc;

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (`clk_…`). Each operation needs the one scope its security \
                 requirement names; a key without it gets 403 `This API key does not have the \
                 <scope> scope`. An expired or revoked key gets 401 `Invalid API key`.",
            ))),
        );
        // The scopes and presets, for the docs page's introduction.
        let presets: Vec<String> = Preset::ALL
            .iter()
            .map(|p| format!("- `{}`: {}", p.as_str(), p.scopes().names().join(", ")))
            .collect();
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str(&format!(
            "\n\n## Scopes\n\nEach operation needs one scope, named in its security \
             requirement: {}. A key is created with a list of `scopes` or a `preset` (every \
             scope when neither is given):\n\n{}\n\nA call outside the key's scopes is 403 \
             `This API key does not have the <scope> scope`; an expired key is 401 `Invalid API \
             key`.",
            Scopes::FULL
                .names()
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            presets.join("\n")
        ));
        // Each authenticated operation names the one scope it needs, from the gateway's table,
        // and documents the 403 a key without it gets.
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let Some(scope) = scopes::required(&method, path) else {
                    continue;
                };
                operation.security =
                    Some(vec![SecurityRequirement::new("api_key", [scope.as_str()])]);
                operation
                    .responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(scopes::refusal(scope))
                            .content(
                                "application/json",
                                Content::new(Some(Ref::from_schema_name("ErrorEnvelope"))),
                            )
                            .into()
                    });
            }
        }
        unique_operation_ids(&mut openapi.paths);
    }
}

/// utoipa names an operation after its handler, and handlers of different resources share names
/// (`list`, `create`, …); OpenAPI requires the ids to be unique, and client generators that
/// key their types by id (openapi-typescript) mix the operations up otherwise. An id used more
/// than once becomes `<id>_<tag>`: `list_employees`, `create_api_keys`.
fn unique_operation_ids(paths: &mut utoipa::openapi::Paths) {
    let mut operations: Vec<&mut utoipa::openapi::path::Operation> = paths
        .paths
        .values_mut()
        .flat_map(|item| {
            [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
        })
        .flatten()
        .collect();
    let mut uses = std::collections::HashMap::<String, usize>::new();
    for op in &operations {
        *uses
            .entry(op.operation_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    for op in &mut operations {
        let id = op.operation_id.clone().unwrap_or_default();
        if uses[&id] > 1 {
            let tag = op
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .map(|t| t.to_lowercase().replace(' ', "_"))
                .unwrap_or_default();
            op.operation_id = Some(format!("{id}_{tag}"));
        }
    }
}

/// The document as JSON, built once.
pub fn document_json() -> Option<String> {
    static DOC: OnceLock<Option<String>> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().ok()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_1_with_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::document_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/api/v1/employees",
            "/api/v1/employees/{employee_code}/status",
            "/api/v1/locations",
            "/api/v1/api-keys",
            "/api/v1/api-keys/{id}",
            "/api/v1/organization",
            "/api/v1/attendance/clock-in",
            "/api/v1/attendance/clock-out",
            "/api/v1/attendance/break-start",
            "/api/v1/attendance/break-end",
            "/api/v1/attendance/daily",
            "/api/v1/attendance/range",
            "/api/v1/attendance/employee/{nip}",
            "/api/v1/attendance/employee/{employee_code}/today",
            "/api/v1/attendance/today/detailed",
            "/api/v1/attendance/import",
            "/api/v1/leaves",
            "/api/v1/leaves/{id}",
            "/api/v1/attendance/summary",
            "/api/v1/webhooks",
            "/api/v1/webhooks/{id}",
            "/api/v1/webhooks/{id}/test",
            "/api/v1/webhooks/{id}/rotate-secret",
            "/api/v1/webhooks/{id}/deliveries",
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            "/api/v1/events/stream",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["name"],
            "X-API-Key"
        );
        // Every authenticated operation names exactly one scope, and documents its 403.
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(security) = op.get("security") else {
                    continue;
                };
                operations += 1;
                let method: Method = method.to_uppercase().parse().unwrap();
                let scope = scopes::required(&method, path)
                    .unwrap_or_else(|| panic!("{method} {path} has no scope"));
                assert_eq!(
                    security,
                    &serde_json::json!([{"api_key": [scope.as_str()]}]),
                    "{method} {path}"
                );
                assert!(op["responses"]["403"].is_object(), "{method} {path}");
            }
        }
        assert!(operations >= 34, "{operations}");
        // Operation ids are unique.
        let mut ids = std::collections::HashSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
            }
        }
        assert!(ids.contains("list_employees") && ids.contains("create_api_keys"));
        // Request bodies show every field they read, nested ones included.
        let settings = &doc["components"]["schemas"]["SettingsPatchBody"]["properties"];
        for field in [
            "work_days",
            "schedule",
            "holidays",
            "rounding",
            "break_rules",
        ] {
            assert!(
                settings[field].is_object(),
                "settings.{field} is not documented"
            );
        }
        assert!(
            doc["components"]["schemas"]["OrgPatchBody"]["properties"]["settings"].is_object(),
            "the organization's settings are not documented"
        );
        // Every reference names a schema the document has.
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{}", found.len());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} is not in the document"
            );
        }
    }
}
