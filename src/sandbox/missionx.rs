//! missionX: an OAuth2 client-credentials token endpoint (`Org-Id` header) and bearer-protected
//! `POST /clients`; `{message, code, data}` errors; `GET /clients` newest first, filtered by
//! `updatedAt`, `limit` at most 100, paged by an absolute `nextLink`.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

use super::{answer, header, object_id, query, text, Behaviour, Stored};
use crate::catalog::ProviderId;
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

/// What the simulated organization remembers: the tokens it issued, its clients (with when they
/// were created).
#[derive(Default)]
pub struct Tenant {
    tokens: Mutex<HashSet<String>>,
    clients: Stored<(SystemTime, Value)>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/token", web::post().to(token))
        .route("/clients", web::post().to(create))
        .route("/clients", web::get().to(list));
}

fn authorized(req: &HttpRequest, tenant: &Tenant) -> bool {
    let token = header(req, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    token.is_some_and(|t| tenant.tokens.lock().contains(t))
}

/// List clients: newest first; `updatedAt=gte <date>` (and the other operators), `limit`
/// (default 40, 1–100); the sandbox's own `cursor` in `nextLink`.
async fn list(
    req: HttpRequest,
    state: web::Data<Behaviour>,
    tenant: web::Data<Tenant>,
) -> HttpResponse {
    if !authorized(&req, &tenant) {
        return answer(
            &state,
            StatusCode::UNAUTHORIZED,
            error("Unauthorized", "UNAUTHORIZED"),
        )
        .await;
    }
    let q = query(&req);
    let limit = q.get("limit").map_or(Ok(40), |l| l.parse::<usize>());
    let cursor = q.get("cursor").map_or(Ok(0), |c| c.parse::<usize>());
    let updated = q.get("updatedAt").map(|f| updated_filter(f));
    let (Ok(limit @ 1..=100), Ok(cursor), None | Some(Some(_))) = (limit, cursor, &updated) else {
        let body = error(
            "\"limit\" must be 1–100; \"updatedAt\" is `<op> <ISO date>`",
            "VALIDATION_ERROR",
        );
        return answer(&state, StatusCode::BAD_REQUEST, body).await;
    };
    let filter = updated.flatten();
    let mut matching: Vec<Value> = tenant
        .clients
        .filtered(|(at, _)| {
            filter
                .as_ref()
                .is_none_or(|(op, when)| op.holds(*at, *when))
        })
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    matching.reverse();
    let end = cursor.saturating_add(limit).min(matching.len());
    let value = matching.get(cursor..end).unwrap_or_default().to_vec();
    let mut body = json!({ "value": value });
    if end < matching.len() {
        let mut next = req.full_url();
        let kept: Vec<(String, String)> = q.into_iter().filter(|(k, _)| k != "cursor").collect();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("cursor", &end.to_string());
        body["nextLink"] = json!(next.to_string());
    }
    answer(&state, StatusCode::OK, body).await
}

/// A comparison of `updatedAt`.
enum Op {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Op {
    fn holds(&self, at: SystemTime, when: SystemTime) -> bool {
        match self {
            Op::Lt => at < when,
            Op::Lte => at <= when,
            Op::Gt => at > when,
            Op::Gte => at >= when,
            Op::Eq => at == when,
        }
    }
}

/// `<op> <ISO date>`, e.g. `gte 2025-02-24T00:00:00.000Z`.
fn updated_filter(text: &str) -> Option<(Op, SystemTime)> {
    let (op, date) = text.trim().split_once(' ')?;
    let op = match op {
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "eq" => Op::Eq,
        _ => return None,
    };
    Some((op, humantime::parse_rfc3339_weak(date.trim()).ok()?))
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
    tenant.tokens.lock().insert(token.clone());
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
    if !authorized(&req, &tenant) {
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
    let at = SystemTime::now();
    let now = humantime::format_rfc3339_millis(at).to_string();
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
    tenant.clients.push((at, client.clone()));
    state
        .created(ProviderId::Missionx, StatusCode::OK, client)
        .await
}
