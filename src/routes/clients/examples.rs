//! The examples of `POST /clients` in the OpenAPI document (and of the tests, which check that
//! they hold): the canonical client here, each provider's part from its adapter.

use serde_json::{json, Map, Value};

use crate::providers;

/// The canonical client of DESIGN's example.
fn nova() -> Value {
    json!({
        "name": "Nova Consulting Ltd",
        "code": "NOVA",
        "external_id": "crm-4711",
        "email": "billing@nova.example",
        "address": "Ground Floor, ABC Bldg., Palo Alto, CA 94020",
        "note": "Signed 2026-11-20",
        "language": "en",
        "email_domains": ["nova.example"],
        "contact": { "first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example" }
    })
}

/// One client in every provider.
pub fn all_targets_body() -> Value {
    let targets: Map<String, Value> = providers::examples()
        .into_iter()
        .map(|(id, e)| (id.as_str().to_owned(), e.options))
        .collect();
    json!({ "client": nova(), "targets": targets })
}

/// The same client, adopted where it already exists.
pub fn adopt_body() -> Value {
    let mut body = all_targets_body();
    body["if_exists"] = json!("adopt");
    body
}

/// One provider (the first that offers an example of it), its options from the gateway's
/// configured defaults.
pub fn single_target_body() -> Value {
    providers::examples()
        .into_iter()
        .find_map(|(id, e)| {
            e.single
                .map(|client| json!({ "client": client, "targets": { id.as_str(): {} } }))
        })
        .expect("a provider offers a one-provider example")
}

/// An answer with the results each provider shows in one example (`pick`).
fn answer(
    outcome: &str,
    dry_run: bool,
    pick: fn(crate::adapter::Examples) -> Option<Value>,
) -> Value {
    let results: Map<String, Value> = providers::examples()
        .into_iter()
        .filter_map(|(id, e)| pick(e).map(|r| (id.as_str().to_owned(), r)))
        .collect();
    json!({
        "operation_id": "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f",
        "outcome": outcome,
        "dry_run": dry_run,
        "results": results
    })
}

/// Every target created.
pub fn all_created_answer() -> Value {
    answer("succeeded", false, |e| Some(e.created))
}

/// `if_exists: adopt`, the client already everywhere: each provider's record, nothing created.
pub fn adopted_answer() -> Value {
    answer("succeeded", false, |e| {
        let mut r = e.created;
        let fields = r.as_object_mut().expect("an example result is an object");
        fields.insert("status".into(), json!("existing"));
        fields.insert("attempts".into(), json!(0));
        fields.remove("provider_status");
        fields.remove("credentials");
        Some(r)
    })
}

/// Some created, one refused, one that never answered.
pub fn partial_answer() -> Value {
    answer("partial", false, |e| e.partial)
}

/// `?dry_run=true`: what would be sent, secrets redacted.
pub fn dry_run_answer() -> Value {
    answer("planned", true, |e| e.planned)
}

/// A 422: every field at fault, nothing sent.
pub fn validation_problem() -> Value {
    json!({
        "type": "urn:clients-gateway:problem:validation",
        "title": "The request is invalid",
        "status": 422,
        "detail": "the request has 2 invalid field(s)",
        "request_id": "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e90",
        "errors": [
            { "pointer": "/client/name", "detail": "must not be empty or blank (omit the field instead)" },
            { "pointer": "/targets/chatdash/member/login_id", "detail": "is required: the ChatDash member needs a login id" }
        ]
    })
}
