//! The canonical client: as received ([`ClientInput`], which is also what the OpenAPI document
//! describes) and parsed once into the [`NewClient`] that adapters read.

mod client;
pub mod pointer;
pub mod schema;
pub mod text;

pub use client::{Contact, NewClient};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What to do when the client already exists at a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// Create it; a provider that refuses duplicates answers `conflict`, one that accepts them
    /// gets a second client.
    #[default]
    Fail,
    /// Adopt the existing client (`existing`, with its id) instead of failing or duplicating.
    Adopt,
}

/// The canonical client. `null` is the same as an absent field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Company name. Sent to every provider.
    #[schema(required = true, value_type = schema::Line255, example = "Nova Consulting Ltd")]
    pub name: Option<String>,
    /// Unique client code. Default: an upper-case slug of `name`.
    #[schema(value_type = Option<schema::Line255>, example = "NOVA")]
    pub code: Option<String>,
    /// Your own reference for the client (a CRM id, say).
    #[schema(value_type = Option<schema::Line255>, example = "crm-4711")]
    pub external_id: Option<String>,
    /// Company e-mail.
    #[schema(value_type = Option<schema::Email>, example = "billing@nova.example")]
    pub email: Option<String>,
    /// Postal address.
    #[schema(value_type = Option<schema::Text1000>)]
    pub address: Option<String>,
    /// Free-form note.
    #[schema(value_type = Option<schema::Text3000>)]
    pub note: Option<String>,
    /// Language of the client's dashboards.
    #[schema(value_type = Option<schema::LanguageCode>, example = "en")]
    pub language: Option<String>,
    /// E-mail domains of the company, at most 20. Default: the domain of `contact.email`, else
    /// of `email`.
    #[schema(value_type = Option<Vec<schema::DomainName>>, max_items = 20, example = json!(["nova.example"]))]
    pub email_domains: Option<Vec<String>>,
    /// The person at the client (a login at some providers).
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
