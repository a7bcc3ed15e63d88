//! Lucca Project: RFC 7807 problems with `errors: {field: [messages]}`, a unique `code`; List
//! Clients by organization, filtered by `code` (strictly equal), paged by `page`/`limit` with a
//! `next` link.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use url::Url;

use super::{answer, header, page_of, query, text, Behaviour, Stored};
use crate::catalog::ProviderId;
use crate::providers::lucca::LuccaSettings;

/// The base URL's path under `/lucca`: the account's host alone.
pub const BASE_PATH: &str = "";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-lucca-api-key";
/// The sandbox tenant's organization (DESIGN's example).
pub const ORGANIZATION_ID: u64 = 12;

/// What the simulated account remembers: its clients (with their organization) and their
/// codes.
pub struct Tenant {
    codes: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    clients: Stored<(u64, Value)>,
}

impl Default for Tenant {
    fn default() -> Self {
        Self {
            codes: Mutex::default(),
            next_id: AtomicU64::new(1000),
            clients: Stored::default(),
        }
    }
}

/// List Clients' page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 10;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/timmi-project/api/v4/clients", web::post().to(create))
        .route("/timmi-project/api/v4/clients", web::get().to(list));
}

fn authorized(req: &HttpRequest) -> bool {
    header(req, "authorization") == Some(format!("lucca application={API_KEY}").as_str())
}

/// List Clients: `organizationId` (required), `code` (strictly equal), `page`, `limit`.
async fn list(
    req: HttpRequest,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if !authorized(&req) {
        let status = StatusCode::UNAUTHORIZED;
        return answer(&state, status, problem(status, "Unauthorized", None)).await;
    }
    let q = query(&req);
    let number = |k: &str| q.get(k).map(|v| v.parse::<usize>());
    let (organization, page, limit) = match (
        q.get("organizationId").map(|v| v.parse::<u64>()),
        number("page").unwrap_or(Ok(1)),
        number("limit").unwrap_or(Ok(DEFAULT_LIMIT)),
    ) {
        (Some(Ok(o)), Ok(p), Ok(l)) if p >= 1 && l >= 1 => (o, p, l),
        _ => {
            let mut errors = Map::new();
            errors.insert(
                "organizationId".into(),
                json!(["organizationId is required; page and limit are positive integers."]),
            );
            let status = StatusCode::BAD_REQUEST;
            let body = problem(
                status,
                "One or more validation errors occurred.",
                Some(errors),
            );
            return answer(&state, status, body).await;
        }
    };
    let code = q.get("code");
    let matching: Vec<Value> = tenant
        .clients
        .filtered(|(org, c)| *org == organization && code.is_none_or(|code| c["code"] == **code))
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let (items, more) = page_of(&matching, page, limit);
    let link = |p: usize| {
        format!(
            "/timmi-project/api/v4/clients?organizationId={organization}&page={p}&limit={limit}"
        )
    };
    let body = json!({
        "items": items,
        "next": more.then(|| link(page + 1)),
        "prev": (page > 1).then(|| link(page - 1)),
        "count": null,
    });
    answer(&state, StatusCode::OK, body).await
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

/// Lucca's validation problem, with its field errors.
fn invalid(errors: Map<String, Value>) -> Value {
    problem(
        StatusCode::BAD_REQUEST,
        "One or more validation errors occurred.",
        Some(errors),
    )
}

/// A Client resource with its required fields (`name`, `code`, `organizationId`), or the field
/// errors Lucca answers.
fn valid(body: &[u8]) -> Result<Value, Map<String, Value>> {
    let mut errors = Map::new();
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        errors.insert(
            "$".into(),
            json!(["The JSON value could not be converted to Client."]),
        );
        return Err(errors);
    };
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
    if errors.is_empty() {
        Ok(body)
    } else {
        Err(errors)
    }
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if !authorized(&req) {
        let status = StatusCode::UNAUTHORIZED;
        return answer(&state, status, problem(status, "Unauthorized", None)).await;
    }
    let body = match valid(&body) {
        Ok(body) => body,
        Err(errors) => return answer(&state, StatusCode::BAD_REQUEST, invalid(errors)).await,
    };
    let mut errors = Map::new();
    let code = text(&body, "/code").unwrap_or_default();
    let fresh = state.first_use(&tenant.codes, code.to_lowercase());
    if !fresh {
        errors.insert(
            "code".into(),
            json!([format!(
                "The code '{code}' is already used by another client: client codes must be unique."
            )]),
        );
        return answer(&state, StatusCode::BAD_REQUEST, invalid(errors)).await;
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
    let organization = body["organizationId"].as_u64().unwrap_or_default();
    tenant.clients.push((organization, client.clone()));
    state
        .created(ProviderId::Lucca, StatusCode::CREATED, client)
        .await
}
