//! Clockify: `POST {base}/v1/workspaces/{workspaceId}/clients`, `X-Api-Key: {api_key}`,
//! 201 with the client (`id` a string). Errors: JSON `{message, code}`, or no body.

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

use super::{
    build_target, join_url, Adapter, Auth, Created, ErrorKind, Plan, ProviderError, ProviderId,
    Target, Unavailable,
};
use crate::config::ClockifySettings;
use crate::domain::pointer::parse_options;
use crate::domain::schema::Id64;
use crate::domain::text::is_valid_id;
use crate::domain::NewClient;
use crate::problem::FieldError;

/// `targets.clockify`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockifyOptions {
    /// The workspace to create the client in. Required here or in
    /// `providers.clockify.workspace_id`.
    #[schema(value_type = Option<Id64>, example = "64a687e29ae1f428e7ebe303")]
    pub workspace_id: Option<String>,
}

#[derive(Serialize)]
struct ClockifyCreateClient<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

#[derive(Debug)]
pub struct Clockify {
    base_url: Url,
    workspace_id: Option<String>,
    /// The endpoint of the configured workspace, built once.
    default_endpoint: Option<Url>,
}

impl Clockify {
    pub fn new(base_url: Url, workspace_id: Option<String>) -> Self {
        let default_endpoint = workspace_id.as_deref().map(|w| endpoint(&base_url, w));
        Self {
            base_url,
            workspace_id,
            default_endpoint,
        }
    }
}

fn endpoint(base_url: &Url, workspace: &str) -> Url {
    join_url(base_url, &["v1", "workspaces", workspace, "clients"])
}

pub fn target(s: &ClockifySettings) -> Result<Result<Target, Unavailable>, String> {
    let adapter = Clockify::new(s.base_url.clone(), s.workspace_id.clone());
    let auth = s
        .api_key
        .as_ref()
        .map(|key| Auth::header("x-api-key", "", key.expose_secret()));
    build_target(adapter, s.common(), auth)
}

const BASE: &str = "/targets/clockify";

/// Clockify's answer when the workspace already has a client of that name.
const DUPLICATE_NAME: &str = "client with that name already exists";

impl Adapter for Clockify {
    fn id(&self) -> ProviderId {
        ProviderId::Clockify
    }

    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>> {
        let opts: ClockifyOptions = parse_options(options, BASE).map_err(|e| vec![e])?;
        let pointer = format!("{BASE}/workspace_id");
        let workspace = match opts.workspace_id.as_deref() {
            Some(w) if !is_valid_id(w) => {
                return Err(vec![FieldError::new(
                    pointer,
                    "must be a workspace id of 1–64 characters",
                )])
            }
            Some(w) => w.trim().to_owned(),
            None => self.workspace_id.clone().ok_or_else(|| {
                vec![FieldError::new(
                    pointer,
                    "is required: Clockify needs a workspace, and the gateway has no default (providers.clockify.workspace_id)",
                )]
            })?,
        };
        let body = ClockifyCreateClient {
            name: &client.name,
            email: client.email.as_deref(),
            address: client.address.as_deref(),
            note: client.note.as_deref(),
        };
        Ok(Plan {
            url: match &self.default_endpoint {
                Some(url) if self.workspace_id.as_deref() == Some(workspace.as_str()) => {
                    url.clone()
                }
                _ => endpoint(&self.base_url, &workspace),
            },
            body: serde_json::to_value(body).expect("plain struct serializes"),
            secret_pointers: &[],
            credentials: None,
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        match body.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(Created {
                id: Some(id.to_owned()),
                credentials: None,
            }),
            _ => Err("no string `id` in the created client".into()),
        }
    }

    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        let err = ProviderError::from_status(status, body);
        let duplicate = err.message.to_ascii_lowercase().contains(DUPLICATE_NAME);
        if status == StatusCode::BAD_REQUEST && duplicate {
            return err.with_kind(ErrorKind::Conflict);
        }
        err
    }
}
