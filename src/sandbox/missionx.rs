//! missionX: an OAuth2 client-credentials token endpoint (`Org-Id` header) and bearer-protected
//! `POST /clients`; `{message, code, data}` errors.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, text, Behaviour};
use crate::providers::missionx::MissionxSettings;

/// The base URL's path under `/missionx`.
pub const BASE_PATH: &str = "/v2";
/// The sandbox organization's API integration. It opens nothing outside this process.
pub const CLIENT_ID: &str = "sandbox-missionx-client";
pub const CLIENT_SECRET: &str = "sandbox-missionx-secret";
pub const ORG_ID: &str = "6650c0ffee00000000000001";
/// A department of the sandbox organization (DESIGN's example).
pub const DEPARTMENT: &str = "6650c0ffee0000000000abcd";

/// Token lifetime, as missionX documents (about 4 h).
const TOKEN_LIFETIME_S: u64 = 4 * 3600;

/// What the simulated organization remembers: the tokens it issued.
#[derive(Default)]
pub struct Tenant {
    tokens: Mutex<HashSet<String>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/token", web::post().to(token))
        .route("/clients", web::post().to(create));
}

pub fn configure(m: &mut MissionxSettings, base_url: Url) {
    m.enabled = true;
    m.token_url = Url::parse(&format!("{base_url}/auth/token")).expect("valid URL");
    m.base_url = base_url;
    m.client_id = Some(CLIENT_ID.into());
    m.client_secret = Some(SecretString::from(CLIENT_SECRET));
    m.client_secret_file = None;
    m.org_id = Some(ORG_ID.into());
    m.access_token = None;
    m.access_token_file = None;
    if m.departments.is_empty() {
        m.departments = vec![DEPARTMENT.into()];
    }
}

fn error(message: &str, code: &str) -> Value {
    json!({"message": message, "code": code, "data": {}})
}

async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        let body = json!({"error": "unsupported_grant_type", "message": "grant_type must be client_credentials"});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    }
    let valid = field("client_id") == Some(CLIENT_ID)
        && field("client_secret") == Some(CLIENT_SECRET)
        && header(&req, "org-id") == Some(ORG_ID);
    if !valid {
        let body =
            json!({"error": "invalid_client", "message": "Invalid client credentials or Org-Id"});
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let token = format!("mx_{}{}", object_id(), object_id());
    tenant
        .tokens
        .lock()
        .expect("sandbox state")
        .insert(token.clone());
    let body =
        json!({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S});
    answer(&state, StatusCode::OK, body).await
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    let token = header(&req, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    let known = token.is_some_and(|t| {
        tenant
            .tokens
            .lock()
            .expect("sandbox state")
            .contains(t)
    });
    if !known {
        return answer(
            &state,
            StatusCode::UNAUTHORIZED,
            error("Unauthorized", "UNAUTHORIZED"),
        )
        .await;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return answer(
            &state,
            StatusCode::BAD_REQUEST,
            error("Invalid JSON body", "INVALID_BODY"),
        )
        .await;
    };
    if text(&body, "/title").is_none() {
        return answer(
            &state,
            StatusCode::BAD_REQUEST,
            error("\"title\" is required", "VALIDATION_ERROR"),
        )
        .await;
    }
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let client = json!({
        "_id": object_id(),
        "createdBy": object_id(),
        "createdAt": now,
        "updatedAt": now,
        "customId": body.get("customId").cloned().unwrap_or(Value::Null),
        "title": body["title"],
        "emailDomains": body.get("emailDomains").cloned().unwrap_or(json!([])),
        "departments": body.get("departments").cloned().unwrap_or(json!([])),
    });
    answer(&state, StatusCode::OK, client).await
}
