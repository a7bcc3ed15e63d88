//! Lucca Project: RFC 7807 problems with `errors: {field: [messages]}`, a unique `code`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use url::Url;

use super::{answer, header, text, Behaviour};
use crate::providers::lucca::LuccaSettings;

/// The base URL's path under `/lucca`: the account's host alone.
pub const BASE_PATH: &str = "";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-lucca-api-key";
/// The sandbox tenant's organization (DESIGN's example).
pub const ORGANIZATION_ID: u64 = 12;

/// What the simulated account remembers.
pub struct Tenant {
    codes: Mutex<HashSet<String>>,
    next_id: AtomicU64,
}

impl Default for Tenant {
    fn default() -> Self {
        Self {
            codes: Mutex::default(),
            next_id: AtomicU64::new(1000),
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/timmi-project/api/v4/clients", web::post().to(create));
}

pub fn configure(s: &mut LuccaSettings, base_url: Url) {
    s.enabled = true;
    s.base_url = base_url;
    s.api_key = Some(SecretString::from(API_KEY));
    s.api_key_file = None;
    s.organization_id = s.organization_id.or(Some(ORGANIZATION_ID));
}

fn trace_id() -> String {
    let mut rng = rand::rng();
    format!(
        "00-{:032x}-{:016x}-00",
        rng.random::<u128>(),
        rng.random::<u64>()
    )
}

fn problem(status: StatusCode, title: &str, errors: Option<Map<String, Value>>) -> Value {
    let mut body = json!({
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": title,
        "status": status.as_u16(),
        "traceId": trace_id(),
    });
    if let Some(errors) = errors {
        body["errors"] = Value::Object(errors);
    }
    body
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    let expected = format!("lucca application={API_KEY}");
    if header(&req, "authorization") != Some(expected.as_str()) {
        let status = StatusCode::UNAUTHORIZED;
        return answer(&state, status, problem(status, "Unauthorized", None)).await;
    }
    let bad = |errors: Map<String, Value>| {
        let status = StatusCode::BAD_REQUEST;
        problem(
            status,
            "One or more validation errors occurred.",
            Some(errors),
        )
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let mut errors = Map::new();
        errors.insert(
            "$".into(),
            json!(["The JSON value could not be converted to Client."]),
        );
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    };
    let mut errors = Map::new();
    for (field, present) in [
        ("name", text(&body, "/name").is_some()),
        ("code", text(&body, "/code").is_some()),
        (
            "organizationId",
            body.get("organizationId").is_some_and(Value::is_u64),
        ),
    ] {
        if !present {
            errors.insert(
                field.into(),
                json!([format!(
                    "A value for the '{field}' parameter or property was not provided."
                )]),
            );
        }
    }
    if !errors.is_empty() {
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    }
    let code = text(&body, "/code").unwrap_or_default();
    let fresh = state.first_use(&tenant.codes, code.to_lowercase());
    if !fresh {
        errors.insert(
            "code".into(),
            json!([format!(
                "The code '{code}' is already used by another client: client codes must be unique."
            )]),
        );
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    }
    let id = tenant.next_id.fetch_add(1, Ordering::Relaxed);
    let owner = body.get("ownerId").and_then(Value::as_u64).map(|id| {
        json!({"id": id, "firstName": "Sandbox", "lastName": "Owner", "dtContractEnd": null,
               "picture": {"href": format!("https://example.ilucca.net/api/v3/users/{id}/picture")},
               "establishmentId": 1})
    });
    let client = json!({
        "id": id,
        "name": body["name"],
        "code": code,
        "externalCode": body.get("externalCode").cloned().unwrap_or(Value::Null),
        "owner": owner,
    });
    answer(&state, StatusCode::CREATED, client).await
}
