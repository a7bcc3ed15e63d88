//! Clockify: `{message, code}` errors; a client name is unique within its workspace.

use std::collections::HashSet;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, text, Behaviour};
use crate::providers::clockify::ClockifySettings;

/// The base URL's path under `/clockify`.
pub const BASE_PATH: &str = "/api";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-clockify-api-key";
/// The sandbox tenant's workspace (DESIGN's example).
pub const WORKSPACE_ID: &str = "64a687e29ae1f428e7ebe303";

/// What the simulated workspaces remember: (workspace, lower-cased name) of each client.
#[derive(Default)]
pub struct Tenant {
    names: Mutex<HashSet<(String, String)>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/workspaces/{workspace_id}/clients",
        web::post().to(create),
    );
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
    answer(&state, StatusCode::CREATED, client).await
}
