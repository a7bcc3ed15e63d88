//! The canonical client: the request body as received ([`CreateClientRequest`], which is also
//! what the OpenAPI document describes) and the parsed [`NewClient`] that adapters read.

mod client;
pub mod pointer;
pub mod schema;
pub mod text;

pub use client::{Contact, NewClient};

use serde::Deserialize;
use utoipa::ToSchema;

/// Body of `POST /clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!(crate::openapi::examples::all_targets_body()))]
pub struct CreateClientRequest {
    /// The client (customer company) to create.
    #[schema(required = true, value_type = ClientInput)]
    pub client: Option<ClientInput>,
    /// The providers to create it in: a key present means "create it there". At least one.
    /// Each value holds that provider's options and may be `{}` when the gateway's configuration
    /// has the defaults.
    #[schema(required = true, value_type = crate::providers::TargetsSchema)]
    pub targets: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The canonical client. `null` is the same as an absent field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Company name. Sent to every provider.
    #[schema(required = true, value_type = schema::Line255, example = "Nova Consulting Ltd")]
    pub name: Option<String>,
    /// Unique client code (Lucca). Default: an upper-case slug of `name`.
    #[schema(value_type = Option<schema::Line255>, example = "NOVA")]
    pub code: Option<String>,
    /// Your own reference (Lucca `externalCode`, missionX `customId`).
    #[schema(value_type = Option<schema::Line255>, example = "crm-4711")]
    pub external_id: Option<String>,
    /// Company e-mail (Clockify `email`; PlusVibe fallback when the contact has none).
    #[schema(value_type = Option<schema::Email>, example = "billing@nova.example")]
    pub email: Option<String>,
    /// Postal address (Clockify).
    #[schema(value_type = Option<schema::Text1000>)]
    pub address: Option<String>,
    /// Free-form note (Clockify).
    #[schema(value_type = Option<schema::Text3000>)]
    pub note: Option<String>,
    /// Dashboard language (ChatDash; its default `en` when absent).
    #[schema(value_type = Option<schema::LanguageCode>, example = "en")]
    pub language: Option<String>,
    /// E-mail domains of the company (missionX), at most 20. Default: the domain of
    /// `contact.email`, else of `email`.
    #[schema(value_type = Option<Vec<schema::DomainName>>, max_items = 20, example = json!(["nova.example"]))]
    pub email_domains: Option<Vec<String>>,
    /// The person at the client (PlusVibe login; ChatDash member defaults).
    pub contact: Option<ContactInput>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[schema(value_type = Option<schema::Line100>, example = "Nova")]
    pub first_name: Option<String>,
    #[schema(value_type = Option<schema::Line100>, example = "Smith")]
    pub last_name: Option<String>,
    #[schema(value_type = Option<schema::Email>, example = "nova.smith@nova.example")]
    pub email: Option<String>,
}
