//! PlusVibe: every field of the documented request is required; the answer carries a generated
//! password.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, text, Behaviour};
use crate::providers::plusvibe::PlusvibeSettings;
use crate::secret::generate_password;

/// The base URL's path under `/plusvibe`.
pub const BASE_PATH: &str = "/api/v1";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-plusvibe-api-key";
/// The sandbox tenant's workspace (DESIGN's example).
pub const WORKSPACE_ID: &str = "65f99a0dd96fae8ab61130c0";

/// What the simulated workspace remembers.
#[derive(Default)]
pub struct Tenant;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/client", web::post().to(create));
}

pub fn configure(s: &mut PlusvibeSettings, base_url: Url) {
    s.enabled = true;
    s.base_url = base_url;
    s.api_key = Some(SecretString::from(API_KEY));
    s.api_key_file = None;
    s.workspace_id.get_or_insert_with(|| WORKSPACE_ID.into());
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

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<Behaviour>) -> HttpResponse {
    if header(&req, "x-api-key") != Some(API_KEY) {
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
    let created = json!({
        "client_id": object_id(),
        "email": body["client_email"],
        "password": generate_password().expose_secret(),
    });
    answer(&state, StatusCode::OK, created).await
}
