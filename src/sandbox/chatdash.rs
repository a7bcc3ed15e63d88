//! ChatDash: `{"error": ...}` errors; a member login id is unique across the agency.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, credentials, header, text, State};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/chatdash/v1/public/clients", web::post().to(create));
}

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    if header(&req, "authorization") != Some(credentials::CHATDASH_API_KEY) {
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
    if !state.first_use(&state.chatdash_logins, login) {
        let body = json!({"error": "Login ID already in use"});
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    }
    answer(
        &state,
        StatusCode::OK,
        json!({"message": "Client created successfully"}),
    )
    .await
}
