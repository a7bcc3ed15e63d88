//! PlusVibe: every field of the documented request is required; the answer carries a generated
//! password; `GET /client/?workspace_id=` lists every client with access to the workspace (no
//! filter, no paging).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, query, text, Behaviour, Stored};
use crate::catalog::ProviderId;
use crate::providers::plusvibe::PlusvibeSettings;
use crate::secret::generate_password;

/// The base URL's path under `/plusvibe`.
pub const BASE_PATH: &str = "/api/v1";
/// The sandbox tenant's API key. It opens nothing outside this process.
pub const API_KEY: &str = "sandbox-plusvibe-api-key";
/// The sandbox tenant's workspace (DESIGN's example).
pub const WORKSPACE_ID: &str = "65f99a0dd96fae8ab61130c0";

/// What the simulated workspaces remember: their clients, as listed.
#[derive(Default)]
pub struct Tenant {
    clients: Stored<Value>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/client", web::post().to(create))
        .route("/client/", web::get().to(list));
}

/// List clients: those with access to `workspace_id` (required).
async fn list(
    req: HttpRequest,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if header(&req, "x-api-key") != Some(API_KEY) {
        let body = invalid("\"api_key\" is invalid".into());
        return answer(&state, StatusCode::UNAUTHORIZED, body).await;
    }
    let Some(workspace) = query(&req).remove("workspace_id").filter(|w| !w.is_empty()) else {
        let body = invalid("\"workspace_id\" is required".into());
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    let clients = tenant.clients.filtered(|c| {
        c["client_permissions"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["workspace_id"] == workspace.as_str()))
    });
    answer(&state, StatusCode::OK, json!({ "clients": clients })).await
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

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
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
    let id = object_id();
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let permissions: Vec<Value> = body["workspaces"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    json!({"org_id": "sandbox-org", "workspace_id": w["id"], "permissions": w["permissions"],
                           "hide_labels": w["hide_labels"], "workspace_name": "Sandbox workspace"})
                })
                .collect()
        })
        .unwrap_or_default();
    tenant.clients.push(json!({
        "client_id": id,
        "first_name": body["client_first_name"],
        "last_name": body["client_last_name"],
        "client_email": body["client_email"],
        "client_business_name": body["client_business_name"],
        "status": "ACTIVE",
        "client_permissions": permissions,
        "created_at": now,
        "modified_at": now,
    }));
    let created = json!({
        "client_id": id,
        "email": body["client_email"],
        "password": generate_password().expose_secret(),
    });
    state
        .created(ProviderId::Plusvibe, StatusCode::OK, created)
        .await
}
