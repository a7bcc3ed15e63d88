//! missionX: an OAuth2 client-credentials token endpoint (`Org-Id` header) and bearer-protected
//! `POST /clients`; `{message, code, data}` errors.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, credentials, header, object_id, text, State};

/// Token lifetime, as missionX documents (about 4 h).
const TOKEN_LIFETIME_S: u64 = 4 * 3600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/missionx/v2/auth/token", web::post().to(token))
        .route("/missionx/v2/clients", web::post().to(create));
}

fn error(message: &str, code: &str) -> Value {
    json!({"message": message, "code": code, "data": {}})
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        let body = json!({"error": "unsupported_grant_type", "message": "grant_type must be client_credentials"});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    }
    let valid = field("client_id") == Some(credentials::MISSIONX_CLIENT_ID)
        && field("client_secret") == Some(credentials::MISSIONX_CLIENT_SECRET)
        && header(&req, "org-id") == Some(credentials::MISSIONX_ORG_ID);
    if !valid {
        let body =
            json!({"error": "invalid_client", "message": "Invalid client credentials or Org-Id"});
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let token = format!("mx_{}{}", super::object_id(), super::object_id());
    state
        .missionx_tokens
        .lock()
        .expect("sandbox state")
        .insert(token.clone());
    let body =
        json!({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S});
    answer(&state, StatusCode::OK, body).await
}

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let token = header(&req, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    let known = token.is_some_and(|t| {
        state
            .missionx_tokens
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
