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
    paths(
        routes::clients::create_client,
        routes::ops::healthz,
        routes::ops::readyz,
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

/// Example bodies, shared by the document and the README.
pub mod examples {
    use serde_json::{json, Value};

    /// DESIGN's example: one client in all five providers.
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
}
