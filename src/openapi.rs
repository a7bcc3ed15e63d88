//! The gateway's own OpenAPI 3.1 document, generated from the real handlers and types.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::catalog::ProviderId;
use crate::{providers, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clients-gateway",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "This gateway")),
    paths(
        routes::clients::create_client,
        routes::operations::get_operation,
        routes::operations::cancel_operation,
        routes::operations::resend_notification,
        routes::ops::healthz,
        routes::ops::readyz,
        crate::metrics::render,
    ),
    modifiers(&BearerAuth, &Providers),
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

/// What the document says about the providers, from the catalog and the adapters: the list in
/// the description, and where each field of the canonical client goes.
struct Providers;

impl Modify for Providers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.description = Some(format!(
            "One `POST /clients` creates a client (a customer company) in any chosen set of {}, \
             and answers one 207 Multi-Status body with a result per provider.",
            in_words(ProviderId::ALL.iter().map(|p| p.display_name()))
        ));
        // What the selected providers require of the whole body.
        if let Some(RefOr::T(Schema::Object(request))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("CreateClientRequest"))
        {
            let rules = providers::request_rules();
            if !rules.is_empty() {
                let mut extensions = utoipa::openapi::extensions::Extensions::default();
                extensions.insert("allOf".into(), serde_json::Value::Array(rules));
                request
                    .extensions
                    .get_or_insert_with(Default::default)
                    .merge(extensions);
            }
        }
        // The options each provider may have configured instead of given.
        for item in openapi.paths.paths.values_mut() {
            if let Some(post) = item.post.as_mut() {
                if let Some(d) = post.description.as_mut() {
                    *d = d.replace("CONFIGURED_DEFAULTS", &configured_in_words());
                }
            }
        }
        let client = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("ClientInput"));
        if let Some(RefOr::T(Schema::Object(client))) = client {
            let fields: Vec<String> = client.properties.keys().cloned().collect();
            let table = mapping_table(&fields);
            let description = client.description.get_or_insert_with(String::new);
            description.push_str("\n\nWhere each field goes, per provider:\n\n");
            description.push_str(&table);
        }
    }
}

/// The options a configuration may give, by provider: "Lucca `organization_id`, Clockify and
/// PlusVibe `workspace_id`" (providers with the same options named together).
fn configured_in_words() -> String {
    let mut groups: Vec<(&[&str], Vec<&str>)> = Vec::new();
    for (id, options) in providers::configured_options() {
        if options.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(o, _)| *o == options) {
            Some((_, names)) => names.push(id.display_name()),
            None => groups.push((options, vec![id.display_name()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(options, names)| {
            let options: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
            format!(
                "{} {}",
                in_words(names.iter().copied()),
                in_words(options.iter().map(String::as_str))
            )
        })
        .collect();
    parts.join(", ")
}

/// "a, b and c".
fn in_words<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// A Markdown table: one row per field that some provider receives, one column per provider.
fn mapping_table(fields: &[String]) -> String {
    let mappings = providers::mappings();
    let mut table = String::from("| field |");
    for (id, _) in &mappings {
        table.push_str(&format!(" {} |", id.display_name()));
    }
    table.push_str(&format!("\n|---|{}\n", "---|".repeat(mappings.len())));
    for field in fields {
        let cells: Vec<&str> = mappings
            .iter()
            .map(|(_, sends)| {
                sends
                    .iter()
                    .find(|(f, _)| f == field)
                    .map_or("–", |(_, to)| *to)
            })
            .collect();
        if cells.iter().all(|c| *c == "–") {
            continue;
        }
        table.push_str(&format!("| `{field}` | {} |\n", cells.join(" | ")));
    }
    table.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_words() {
        assert_eq!(in_words(["a"].into_iter()), "a");
        assert_eq!(in_words(["a", "b", "c"].into_iter()), "a, b and c");
    }

    #[test]
    fn every_field_an_adapter_sends_is_a_field_of_the_client() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let fields = doc["components"]["schemas"]["ClientInput"]["properties"]
            .as_object()
            .unwrap();
        for (id, sends) in providers::mappings() {
            for (field, _) in sends {
                assert!(
                    fields.contains_key(*field),
                    "{id} sends an unknown field {field}"
                );
            }
        }
        let description = doc["components"]["schemas"]["ClientInput"]["description"]
            .as_str()
            .unwrap();
        assert!(description.contains("| `name` |"), "{description}");
    }
}
