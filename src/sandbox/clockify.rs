//! Clockify: `{message, code}` errors; a client name is unique within its workspace; the
//! workspace's clients listed with a `name` filter (contained, case-insensitive), paged by
//! `page`/`page-size` with a `Last-Page` header.

use parking_lot::Mutex;
use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, page_of, query, text, Behaviour, Stored};
use crate::catalog::ProviderId;
use crate::providers::clockify::ClockifySettings;

/// The base URL's path under `/clockify`.
pub const BASE_PATH: &str = "/api";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-clockify-api-key";
/// The sandbox tenant's workspace (DESIGN's example).
pub const WORKSPACE_ID: &str = "64a687e29ae1f428e7ebe303";

/// What the simulated workspaces remember: their clients, and the (workspace, lower-cased name)
/// of each.
#[derive(Default)]
pub struct Tenant {
    names: Mutex<HashSet<(String, String)>>,
    clients: Stored<Value>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/workspaces/{workspace_id}/clients",
        web::post().to(create),
    )
    .route("/v1/workspaces/{workspace_id}/clients", web::get().to(list));
}

/// Find clients on a workspace: `name` (contained, case-insensitive), `page`, `page-size`.
async fn list(
    req: HttpRequest,
    workspace: web::Path<String>,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "x-api-key") != Some(API_KEY) {
        let body = json!({"message": "Api key does not exist", "code": 4003});
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let q = query(&req);
    let number = |k: &str, default: usize| q.get(k).map_or(Ok(default), |v| v.parse::<usize>());
    let (Ok(page @ 1..), Ok(size @ 1..)) = (number("page", 1), number("page-size", 50)) else {
        let body = json!({"message": "page and page-size must be positive integers", "code": 501});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    let name = q.get("name").map(|n| n.to_lowercase());
    let matching = tenant.clients.filtered(|c| {
        c["workspaceId"] == workspace.as_str()
            && name.as_ref().is_none_or(|n| {
                c["name"]
                    .as_str()
                    .is_some_and(|have| have.to_lowercase().contains(n))
            })
    });
    let (items, more) = page_of(&matching, page, size);
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    HttpResponse::Ok()
        .insert_header(("Last-Page", if more { "false" } else { "true" }))
        .json(items)
}

pub fn configure(s: &mut ClockifySettings, base_url: Url) {
    s.enabled = true;
    s.base_url = base_url;
    s.api_key = Some(SecretString::from(API_KEY));
    s.api_key_file = None;
    s.workspace_id.get_or_insert_with(|| WORKSPACE_ID.into());
}

async fn create(
    req: HttpRequest,
    workspace: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "x-api-key") != Some(API_KEY) {
        let body = json!({"message": "Api key does not exist", "code": 4003});
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let body = json!({"message": "Malformed JSON request", "code": 3002});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    let Some(name) = text(&body, "/name") else {
        let body = json!({"message": "name: must not be blank", "code": 501});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    let key = (workspace.clone(), name.trim().to_lowercase());
    if !state.first_use(&tenant.names, key) {
        let body =
            json!({"message": "Client with that name already exists on workspace", "code": 501});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    }
    let email = body.get("email").cloned().unwrap_or(Value::Null);
    let client = json!({
        "address": body.get("address").cloned().unwrap_or(Value::Null),
        "archived": false,
        "ccEmails": email,
        "currencyCode": "USD",
        "currencyId": "33t687e29ae1f428e7ebe505",
        "email": email,
        "id": object_id(),
        "name": name,
        "note": body.get("note").cloned().unwrap_or(Value::Null),
        "workspaceId": workspace.as_str(),
    });
    tenant.clients.push(client.clone());
    state
        .created(ProviderId::Clockify, StatusCode::CREATED, client)
        .await
}
