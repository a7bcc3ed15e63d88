//! The adapters: one file per provider (`<name>.rs`), each mapping the canonical client to that
//! provider's documented requests and its documented answers back to a normalized result.
//!
//! Everything here that has one item per provider (the adapters' modules, the `providers`
//! configuration section, the registry, the `targets` schema) is generated from the one list in
//! [`crate::catalog`]. What an adapter is: [`Adapter`]; what it takes to call one: [`Target`].

mod adapter;
mod auth;
mod http;
pub mod kit;
mod oauth;
mod settings;
mod target;

pub use adapter::{
    Adapter, Candidate, Created, DynAdapter, Examples, Found, Listed, LookupKey, Page, Plan,
    Planned, Request,
};
pub use auth::Auth;
pub use http::{http_client, ClientSpec, Connections, Pick};
pub use kit::{
    conflict_when, error_of, join_url, query_number, read, when_selected, with_query, Reply,
};
pub use oauth::TokenSource;
pub(crate) use settings::{provider_settings, provider_settings_with, with_common_keys};
pub use settings::{Common, ProviderSettings};
pub use target::{Outside, Registry, Target, Unavailable};

use crate::catalog::ProviderId;
use crate::secret::SecretFileError;

macro_rules! adapters {
    ($(($variant:ident, $module:ident, $display:literal)),* $(,)?) => {
        $(pub mod $module;)*

        /// `providers`: one section per provider.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ProvidersSettings {
            $(
                #[doc = $display]
                pub $module: <$module::$variant as Adapter>::Settings,
            )*
        }

        impl ProvidersSettings {
            /// Each provider's common keys.
            pub fn commons(&self) -> Vec<(ProviderId, Common)> {
                vec![$((ProviderId::$variant, self.$module.common())),*]
            }

            /// Changes one provider's common keys.
            pub fn update_common(&mut self, id: ProviderId, change: impl FnOnce(&mut Common)) {
                match id {
                    $(ProviderId::$variant => {
                        let mut common = self.$module.common();
                        change(&mut common);
                        self.$module.set_common(common);
                    })*
                }
            }

            /// Reads every provider's `<secret>_file` keys.
            pub fn resolve_secret_files(&mut self) -> Result<(), SecretFileError> {
                $(self.$module.resolve_secret_files(concat!("providers.", stringify!($module)))?;)*
                Ok(())
            }

            /// Every provider's target, available or not.
            fn build_targets(
                &self,
                outside: &target::Outside<'_>,
            ) -> Result<Vec<(ProviderId, Result<Target, Unavailable>)>, String> {
                Ok(vec![$((
                    ProviderId::$variant,
                    target::build::<$module::$variant>(ProviderId::$variant, &self.$module, outside)?,
                )),*])
            }
        }

        /// Each provider's mapping of the canonical client (`Adapter::SENDS`).
        pub fn mappings() -> Vec<(ProviderId, &'static [(&'static str, &'static str)])> {
            vec![$((ProviderId::$variant, <$module::$variant as Adapter>::SENDS)),*]
        }

        /// Each provider's options the configuration may give (`Adapter::CONFIGURED`).
        pub fn configured_options() -> Vec<(ProviderId, &'static [&'static str])> {
            vec![$((ProviderId::$variant, <$module::$variant as Adapter>::CONFIGURED)),*]
        }

        /// Every provider's rules on the whole request body (`Adapter::request_rules`).
        pub fn request_rules() -> Vec<serde_json::Value> {
            let mut rules = Vec::new();
            $(rules.extend(<$module::$variant as Adapter>::request_rules(stringify!($module)));)*
            rules
        }

        /// Each provider's part in the OpenAPI document's examples.
        pub fn examples() -> Vec<(ProviderId, Examples)> {
            vec![$((ProviderId::$variant, <$module::$variant as Adapter>::examples())),*]
        }

        /// Documentation of `targets`: one optional member per provider, at least one, no
        /// other. Written out because the derive cannot state `minProperties`.
        pub struct TargetsSchema;

        impl utoipa::PartialSchema for TargetsSchema {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
                use utoipa::openapi::Ref;
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(
                        "The providers to create the client in: a key present means \"create it there\". \
                         At least one. Each value holds that provider's options; `{}` uses the gateway's \
                         configured defaults.",
                    ))
                    $(.property(
                        stringify!($module),
                        Ref::from_schema_name(
                            <<$module::$variant as Adapter>::Options as utoipa::ToSchema>::name(),
                        ),
                    ))*
                    .min_properties(Some(1))
                    .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                    .into()
            }
        }

        impl utoipa::ToSchema for TargetsSchema {
            fn schemas(
                schemas: &mut Vec<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>,
            ) {
                $({
                    type Options = <$module::$variant as Adapter>::Options;
                    schemas.push((
                        <Options as utoipa::ToSchema>::name().into(),
                        <Options as utoipa::PartialSchema>::schema(),
                    ));
                    <Options as utoipa::ToSchema>::schemas(schemas);
                })*
            }
        }
    };
}

crate::for_each_provider!(adapters);
