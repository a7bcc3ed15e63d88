//! Lucca Project: RFC 7807 problems with `errors: {field: [messages]}`, a unique `code`.

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::{answer, credentials, header, text, State};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/lucca/timmi-project/api/v4/clients",
        web::post().to(create),
    );
}

fn trace_id() -> String {
    let mut rng = rand::rng();
    format!(
        "00-{:032x}-{:016x}-00",
        rng.random::<u128>(),
        rng.random::<u64>()
    )
}

fn problem(status: StatusCode, title: &str, errors: Option<Map<String, Value>>) -> Value {
    let mut body = json!({
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": title,
        "status": status.as_u16(),
        "traceId": trace_id(),
    });
    if let Some(errors) = errors {
        body["errors"] = Value::Object(errors);
    }
    body
}

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let expected = format!("lucca application={}", credentials::LUCCA_API_KEY);
    if header(&req, "authorization") != Some(expected.as_str()) {
        let status = StatusCode::UNAUTHORIZED;
        return answer(&state, status, problem(status, "Unauthorized", None)).await;
    }
    let bad = |errors: Map<String, Value>| {
        let status = StatusCode::BAD_REQUEST;
        problem(
            status,
            "One or more validation errors occurred.",
            Some(errors),
        )
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let mut errors = Map::new();
        errors.insert(
            "$".into(),
            json!(["The JSON value could not be converted to Client."]),
        );
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    };
    let mut errors = Map::new();
    for (field, present) in [
        ("name", text(&body, "/name").is_some()),
        ("code", text(&body, "/code").is_some()),
        (
            "organizationId",
            body.get("organizationId").is_some_and(Value::is_u64),
        ),
    ] {
        if !present {
            errors.insert(
                field.into(),
                json!([format!(
                    "A value for the '{field}' parameter or property was not provided."
                )]),
            );
        }
    }
    if !errors.is_empty() {
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    }
    let code = text(&body, "/code").unwrap_or_default();
    let fresh = state.first_use(&state.lucca_codes, code.to_lowercase());
    if !fresh {
        errors.insert(
            "code".into(),
            json!([format!(
                "The code '{code}' is already used by another client: client codes must be unique."
            )]),
        );
        return answer(&state, StatusCode::BAD_REQUEST, bad(errors)).await;
    }
    let id = state.lucca_next_id.fetch_add(1, Ordering::Relaxed);
    let owner = body.get("ownerId").and_then(Value::as_u64).map(|id| {
        json!({"id": id, "firstName": "Sandbox", "lastName": "Owner", "dtContractEnd": null,
               "picture": {"href": format!("https://example.ilucca.net/api/v3/users/{id}/picture")},
               "establishmentId": 1})
    });
    let client = json!({
        "id": id,
        "name": body["name"],
        "code": code,
        "externalCode": body.get("externalCode").cloned().unwrap_or(Value::Null),
        "owner": owner,
    });
    answer(&state, StatusCode::CREATED, client).await
}
