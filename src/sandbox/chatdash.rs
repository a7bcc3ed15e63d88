//! ChatDash: `{"error": ...}` errors; a member login id is unique across the agency; the
//! agency's clients listed by `GET /clients` (no filter, no paging), each client's members by
//! `GET /clients/{id}/members`.

use parking_lot::Mutex;
use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, text, Behaviour, Stored};
use crate::catalog::ProviderId;
use crate::providers::chatdash::ChatdashSettings;

/// The base URL's path under `/chatdash`.
pub const BASE_PATH: &str = "/v1/public";
/// The sandbox agency's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-chatdash-agency-key";

/// What the simulated agency remembers: its clients, their members, and the members' lower-cased
/// login ids.
#[derive(Default)]
pub struct Tenant {
    logins: Mutex<HashSet<String>>,
    clients: Stored<Value>,
    members: Stored<Value>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/clients", web::post().to(create))
        .route("/clients", web::get().to(list))
        .route("/clients/{client_id}/members", web::get().to(members));
}

/// Fetch Clients: every client of the agency.
async fn list(
    req: HttpRequest,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "authorization") != Some(API_KEY) {
        return answer(
            &state,
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid API key"}),
        )
        .await;
    }
    let clients = tenant.clients.filtered(|_| true);
    answer(&state, StatusCode::OK, Value::Array(clients)).await
}

/// Fetch Client Members.
async fn members(
    req: HttpRequest,
    client_id: web::Path<String>,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "authorization") != Some(API_KEY) {
        return answer(
            &state,
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid API key"}),
        )
        .await;
    }
    let known = !tenant
        .clients
        .filtered(|c| c["_id"] == client_id.as_str())
        .is_empty();
    if !known {
        return answer(
            &state,
            StatusCode::NOT_FOUND,
            json!({"error": "Client not found"}),
        )
        .await;
    }
    let members = tenant
        .members
        .filtered(|m| m["clientId"] == client_id.as_str());
    answer(&state, StatusCode::OK, Value::Array(members)).await
}

pub fn configure(s: &mut ChatdashSettings, base_url: Url) {
    s.enabled = true;
    s.base_url = base_url;
    s.api_key = Some(SecretString::from(API_KEY));
    s.api_key_file = None;
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "authorization") != Some(API_KEY) {
        let body = json!({"error": "Invalid API key"});
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let body = json!({"error": "Invalid JSON body"});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    for (pointer, what) in [
        ("/client/name", "client.name"),
        ("/client/language", "client.language"),
        ("/member/name", "member.name"),
        ("/member/loginId", "member.loginId"),
        ("/member/password", "member.password"),
    ] {
        if text(&body, pointer).is_none() {
            let body = json!({"error": format!("{what} is required")});
            return answer(&state, StatusCode::BAD_REQUEST, body).await;
        }
    }
    let login = text(&body, "/member/loginId")
        .unwrap_or_default()
        .to_lowercase();
    if !state.first_use(&tenant.logins, login) {
        let body = json!({"error": "Login ID already in use"});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    }
    let id = object_id();
    tenant.clients.push(json!({
        "_id": id,
        "name": body["client"]["name"],
        "language": body["client"]["language"],
        "isSaasClient": false,
    }));
    tenant.members.push(json!({
        "_id": object_id(),
        "clientId": id,
        "isAdmin": true,
        "name": body["member"]["name"],
        "loginId": body["member"]["loginId"],
        "email": body["member"].get("email").cloned().unwrap_or(Value::Null),
    }));
    let created = json!({"message": "Client created successfully"});
    state
        .created(ProviderId::Chatdash, StatusCode::OK, created)
        .await
}
