//! Clockify: `{message, code}` errors; a client name is unique within its workspace.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, credentials, header, object_id, text, State};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/clockify/api/v1/workspaces/{workspace_id}/clients",
        web::post().to(create),
    );
}

async fn create(
    req: HttpRequest,
    workspace: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if header(&req, "x-api-key") != Some(credentials::CLOCKIFY_API_KEY) {
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
    if !state.first_use(&state.clockify_names, key) {
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
