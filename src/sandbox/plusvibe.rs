//! PlusVibe: every field of the documented request is required; the answer carries a generated
//! password.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, credentials, header, object_id, text, State};
use crate::providers::chatdash::generate_password;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/plusvibe/api/v1/client", web::post().to(create));
}

const PERMISSIONS: [&str; 2] = ["FULL_ACCESS", "UNIBOX_FULL_ACCESS"];

fn invalid(message: String) -> Value {
    json!({"status": "error", "message": message})
}

/// The first rule of the documented schema that `body` breaks.
fn violation(body: &Value) -> Option<String> {
    for field in [
        "workspace_id",
        "client_email",
        "client_first_name",
        "client_last_name",
        "client_business_name",
    ] {
        if text(body, &format!("/{field}")).is_none() {
            return Some(format!("\"{field}\" is required"));
        }
    }
    let Some(workspaces) = body.get("workspaces").and_then(Value::as_array) else {
        return Some("\"workspaces\" is required".into());
    };
    for (i, w) in workspaces.iter().enumerate() {
        if text(w, "/id").is_none() {
            return Some(format!("\"workspaces[{i}].id\" is required"));
        }
        let permissions = w.get("permissions").and_then(Value::as_array);
        let one_known = permissions.is_some_and(|p| {
            p.len() == 1 && p[0].as_str().is_some_and(|p| PERMISSIONS.contains(&p))
        });
        if !one_known {
            return Some(format!(
                "\"workspaces[{i}].permissions\" must contain exactly one of FULL_ACCESS, UNIBOX_FULL_ACCESS"
            ));
        }
        if !w.get("hide_labels").is_some_and(Value::is_array) {
            return Some(format!("\"workspaces[{i}].hide_labels\" is required"));
        }
    }
    None
}

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    if header(&req, "x-api-key") != Some(credentials::PLUSVIBE_API_KEY) {
        let body = invalid("\"api_key\" is invalid".into());
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return answer(
            &state,
            StatusCode::BAD_REQUEST,
            invalid("invalid JSON".into()),
        )
        .await;
    };
    if let Some(message) = violation(&body) {
        return answer(&state, StatusCode::BAD_REQUEST, invalid(message)).await;
    }
    use secrecy::ExposeSecret;
    let created = json!({
        "client_id": object_id(),
        "email": body["client_email"],
        "password": generate_password().expose_secret(),
    });
    answer(&state, StatusCode::OK, created).await
}
