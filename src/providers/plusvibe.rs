//! PlusVibe: `POST {base}/client`, `x-api-key: {api_key}`, 200 with `client_id`, `email` and a
//! generated `password` (shown once). No error shape is documented.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

use super::{
    build_target, join_url, Adapter, Auth, Created, Credentials, Plan, ProviderId, Target,
    Unavailable,
};
use crate::config::PlusvibeSettings;
use crate::domain::pointer::parse_options;
use crate::domain::schema::Id64;
use crate::domain::text::is_valid_id;
use crate::domain::NewClient;
use crate::problem::FieldError;

/// `targets.plusvibe`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlusvibeOptions {
    /// A workspace the API user has access to (it does not decide where the client gets access).
    /// Required here or in `providers.plusvibe.workspace_id`.
    #[schema(value_type = Option<Id64>, example = "65f99a0dd96fae8ab61130c0")]
    pub workspace_id: Option<String>,
    /// The workspaces the client may see. Default: `workspace_id` with `FULL_ACCESS`.
    #[schema(min_items = 1)]
    pub workspaces: Option<Vec<PlusvibeWorkspace>>,
}

/// One workspace the client gets access to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlusvibeWorkspace {
    #[schema(value_type = Id64, example = "65f99a0dd96fae8ab61130c0")]
    pub id: String,
    pub permission: PlusvibePermission,
    /// Labels hidden from the client, e.g. `NOT_INTERESTED`.
    #[serde(default)]
    pub hide_labels: Vec<String>,
}

/// `FULL_ACCESS` (the whole application) or `UNIBOX_FULL_ACCESS` (Unibox only).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlusvibePermission {
    FullAccess,
    UniboxFullAccess,
}

#[derive(Serialize)]
struct PlusvibeCreateClient<'a> {
    workspace_id: &'a str,
    client_email: &'a str,
    client_first_name: &'a str,
    client_last_name: &'a str,
    client_business_name: &'a str,
    workspaces: Vec<PlusvibeWorkspacePermission<'a>>,
}

#[derive(Serialize)]
struct PlusvibeWorkspacePermission<'a> {
    id: &'a str,
    /// Exactly one permission, as the document requires.
    permissions: [PlusvibePermission; 1],
    hide_labels: &'a [String],
}

#[derive(Debug)]
pub struct Plusvibe {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    workspace_id: Option<String>,
}

impl Plusvibe {
    pub fn new(base_url: Url, workspace_id: Option<String>) -> Self {
        Self {
            endpoint: join_url(&base_url, &["client"]),
            workspace_id,
        }
    }
}

pub fn target(s: &PlusvibeSettings) -> Result<Result<Target, Unavailable>, String> {
    let adapter = Plusvibe::new(s.base_url.clone(), s.workspace_id.clone());
    let auth = s
        .api_key
        .as_ref()
        .map(|key| Auth::header("x-api-key", "", key.expose_secret()));
    build_target(adapter, s.common(), auth)
}

const BASE: &str = "/targets/plusvibe";

impl Adapter for Plusvibe {
    fn id(&self) -> ProviderId {
        ProviderId::Plusvibe
    }

    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>> {
        let opts: PlusvibeOptions = parse_options(options, BASE).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let workspace_id = match opts.workspace_id.as_deref() {
            Some(w) if !is_valid_id(w) => {
                errors.push(FieldError::new(
                    format!("{BASE}/workspace_id"),
                    "must be a workspace id of 1–64 characters",
                ));
                None
            }
            Some(w) => Some(w.trim().to_owned()),
            None => self.workspace_id.clone(),
        };
        if workspace_id.is_none() && errors.is_empty() {
            errors.push(FieldError::new(
                format!("{BASE}/workspace_id"),
                "is required: PlusVibe needs the API user's workspace, and the gateway has no default (providers.plusvibe.workspace_id)",
            ));
        }
        if let Some(list) = &opts.workspaces {
            if list.is_empty() {
                errors.push(FieldError::new(
                    format!("{BASE}/workspaces"),
                    "must list at least one workspace (omit it to use workspace_id)",
                ));
            }
            for (i, w) in list.iter().enumerate() {
                if !is_valid_id(&w.id) {
                    errors.push(FieldError::new(
                        format!("{BASE}/workspaces/{i}/id"),
                        "must be a workspace id of 1–64 characters",
                    ));
                }
            }
        }
        let contact = &client.contact;
        let email = contact.email.as_deref().or(client.email.as_deref());
        let missing = [
            (
                "/client/contact/first_name",
                contact.first_name.is_none(),
                "is required by PlusVibe (the client's login)",
            ),
            (
                "/client/contact/last_name",
                contact.last_name.is_none(),
                "is required by PlusVibe (the client's login)",
            ),
            (
                "/client/contact/email",
                email.is_none(),
                "is required by PlusVibe (the client's login); `client.email` is used when the contact has none",
            ),
        ];
        for (pointer, is_missing, detail) in missing {
            if is_missing {
                errors.push(FieldError::new(pointer, detail));
            }
        }
        let (Some(workspace_id), Some(email), Some(first), Some(last), true) = (
            workspace_id.as_deref(),
            email,
            contact.first_name.as_deref(),
            contact.last_name.as_deref(),
            errors.is_empty(),
        ) else {
            return Err(errors);
        };
        let workspaces = match &opts.workspaces {
            Some(list) => list
                .iter()
                .map(|w| PlusvibeWorkspacePermission {
                    id: w.id.trim(),
                    permissions: [w.permission],
                    hide_labels: &w.hide_labels,
                })
                .collect(),
            None => vec![PlusvibeWorkspacePermission {
                id: workspace_id,
                permissions: [PlusvibePermission::FullAccess],
                hide_labels: &[],
            }],
        };
        let body = PlusvibeCreateClient {
            workspace_id,
            client_email: email,
            client_first_name: first,
            client_last_name: last,
            client_business_name: &client.name,
            workspaces,
        };
        Ok(Plan {
            url: self.endpoint.clone(),
            body: serde_json::to_value(body).expect("plain struct serializes"),
            secret_pointers: &[],
            credentials: None,
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        let id = match body.get("client_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Err("no string `client_id` in the answer".into()),
        };
        let credentials = body
            .get("password")
            .and_then(Value::as_str)
            .map(|password| Credentials {
                login: body
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                password: SecretString::from(password),
            });
        Ok(Created {
            id: Some(id),
            credentials,
        })
    }

    fn response_secrets(&self) -> &'static [&'static str] {
        &["/password"]
    }
}
