//! The gateway's own OpenAPI 3.1 document, generated from the real handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clients-gateway",
        description = "One `POST /clients` creates a client (a customer company) in any chosen set of Lucca Project, Clockify, PlusVibe, ChatDash and missionX, and answers one 207 Multi-Status body with a result per provider.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "This gateway")),
    paths(
        routes::clients::create_client,
        routes::ops::healthz,
        routes::ops::readyz,
        crate::metrics::render,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "clients", description = "Create a client in several SaaS tools at once"),
        (name = "operations", description = "Probes for the platform"),
    )
)]
pub struct ApiDoc;

/// The document as committed in `openapi/openapi.json` (pretty JSON, trailing newline free).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A JWT with the scope `clients:write` (configurable)."))
                    .build(),
            ),
        );
    }
}

/// Example bodies of the document (and of the tests, which check that they hold).
pub mod examples {
    use serde_json::{json, Value};

    /// One client in all five providers.
    pub fn all_targets_body() -> Value {
        json!({
            "client": {
                "name": "Nova Consulting Ltd",
                "code": "NOVA",
                "external_id": "crm-4711",
                "email": "billing@nova.example",
                "address": "Ground Floor, ABC Bldg., Palo Alto, CA 94020",
                "note": "Signed 2026-11-20",
                "language": "en",
                "email_domains": ["nova.example"],
                "contact": { "first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example" }
            },
            "targets": {
                "lucca": { "organization_id": 12, "owner_id": 7 },
                "clockify": { "workspace_id": "64a687e29ae1f428e7ebe303" },
                "plusvibe": {
                    "workspace_id": "65f99a0dd96fae8ab61130c0",
                    "workspaces": [{ "id": "65f99a0dd96fae8ab61130c0", "permission": "FULL_ACCESS", "hide_labels": [] }]
                },
                "chatdash": { "member": { "login_id": "nova", "name": "Nova Smith", "email": "nova.smith@nova.example", "password": null } },
                "missionx": { "departments": ["6650c0ffee0000000000abcd"] }
            }
        })
    }

    /// One provider, its options from the gateway's configured defaults.
    pub fn single_target_body() -> Value {
        json!({
            "client": { "name": "Acme Logistics", "email": "billing@acme.example", "note": "Pilot project" },
            "targets": { "clockify": {} }
        })
    }

    /// Every target created.
    pub fn all_created_answer() -> Value {
        json!({
            "operation_id": "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f",
            "outcome": "succeeded",
            "dry_run": false,
            "results": {
                "lucca": { "status": "created", "provider_status": 201, "provider_client_id": "123", "attempts": 1, "duration_ms": 84, "replayed": false,
                           "response": { "id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null } },
                "clockify": { "status": "created", "provider_status": 201, "provider_client_id": "44a687e29ae1f428e7ebe305", "attempts": 1, "duration_ms": 71, "replayed": false,
                              "response": { "id": "44a687e29ae1f428e7ebe305", "name": "Nova Consulting Ltd", "workspaceId": "64a687e29ae1f428e7ebe303", "archived": false } },
                "plusvibe": { "status": "created", "provider_status": 200, "provider_client_id": "70218d5e05561a3877dcb77f", "attempts": 1, "duration_ms": 95, "replayed": false,
                              "credentials": { "login": "nova.smith@nova.example", "password": "Xp9#Ld2!ak" },
                              "response": { "client_id": "70218d5e05561a3877dcb77f", "email": "nova.smith@nova.example", "password": "[redacted]" } },
                "chatdash": { "status": "created", "provider_status": 200, "attempts": 1, "duration_ms": 61, "replayed": false,
                              "credentials": { "login": "nova", "password": "q7!Rm2#vTz9@Lk4pWx8e" },
                              "response": { "message": "Client created successfully" } },
                "missionx": { "status": "created", "provider_status": 200, "provider_client_id": "6650c0ffee00000000000042", "attempts": 1, "duration_ms": 102, "replayed": false,
                              "response": { "_id": "6650c0ffee00000000000042", "title": "Nova Consulting Ltd", "customId": "crm-4711", "emailDomains": ["nova.example"], "departments": ["6650c0ffee0000000000abcd"] } }
            }
        })
    }

    /// Some created, one refused, one that never answered.
    pub fn partial_answer() -> Value {
        json!({
            "operation_id": "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f",
            "outcome": "partial",
            "dry_run": false,
            "results": {
                "lucca": { "status": "created", "provider_status": 201, "provider_client_id": "123", "attempts": 1, "duration_ms": 84, "replayed": false,
                           "response": { "id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null } },
                "chatdash": { "status": "failed", "provider_status": 400, "attempts": 1, "duration_ms": 61, "replayed": false,
                              "error": { "kind": "conflict", "message": "Login ID already in use", "retryable": false, "provider_status": 400,
                                         "provider_error": { "error": "Login ID already in use" } } },
                "missionx": { "status": "unknown", "attempts": 1, "duration_ms": 5000, "replayed": false,
                              "error": { "kind": "timeout", "message": "no answer within 5000 ms; the client may have been created", "retryable": true } }
            }
        })
    }

    /// `?dry_run=true`: what would be sent, secrets redacted.
    pub fn dry_run_answer() -> Value {
        json!({
            "operation_id": "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f",
            "outcome": "planned",
            "dry_run": true,
            "results": {
                "lucca": { "status": "planned", "attempts": 0, "duration_ms": 0, "replayed": false,
                           "request": { "method": "POST", "url": "https://acme.ilucca.net/timmi-project/api/v4/clients",
                                        "headers": { "accept": "application/json", "authorization": "lucca application=[redacted]", "content-type": "application/json" },
                                        "body": { "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "ownerId": 7, "organizationId": 12 } } },
                "chatdash": { "status": "planned", "attempts": 0, "duration_ms": 0, "replayed": false,
                              "request": { "method": "POST", "url": "https://api.chat-dash.com/v1/public/clients",
                                           "headers": { "accept": "application/json", "authorization": "[redacted]", "content-type": "application/json" },
                                           "body": { "client": { "name": "Nova Consulting Ltd", "language": "en" },
                                                     "member": { "name": "Nova Smith", "loginId": "nova", "email": "nova.smith@nova.example", "password": "[redacted]" } } } }
            }
        })
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
}
