//! PlusVibe: `POST {base}/client`, `x-api-key: {api_key}`, 200 with `client_id`, `email` and a
//! generated `password` (shown once). No error shape is documented. Found by its `client_email`
//! (compared case-insensitively) in `GET {base}/client/?workspace_id=`, one page with every
//! client of the workspace.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;
use utoipa::ToSchema;

use crate::adapter::{
    from_json, join_url, provider_settings, when_selected, Adapter, Created, Examples, Found,
    Listed, Page, Planned, ProviderAuth, Request,
};
use crate::domain::schema::{Id64, Line100};
use crate::domain::text::{is_valid_id, text, TextKind};
use crate::domain::NewClient;
use crate::field_error::FieldError;
use crate::secret::Credentials;

provider_settings! {
    /// PlusVibe.
    pub struct PlusvibeSettings("https://api.plusvibe.ai/api/v1") {
        secrets {
            /// Sent as `x-api-key`.
            api_key / api_key_file
        },
        /// Default `workspace_id` (the API user's workspace) when a request has none.
        workspace_id: Option<String> = None,
    }
}

/// `targets.plusvibe`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlusvibeOptions {
    /// A workspace the API user has access to (it does not decide where the client gets access).
    /// Required here or in `providers.plusvibe.workspace_id`.
    #[schema(value_type = Option<Id64>, example = "65f99a0dd96fae8ab61130c0")]
    pub workspace_id: Option<String>,
    /// The workspaces the client may see (at most 10). Default: `workspace_id` with
    /// `FULL_ACCESS`.
    #[schema(min_items = 1, max_items = 10)]
    pub workspaces: Option<Vec<PlusvibeWorkspace>>,
}

/// One workspace the client gets access to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlusvibeWorkspace {
    #[schema(value_type = Id64, example = "65f99a0dd96fae8ab61130c0")]
    pub id: String,
    pub permission: PlusvibePermission,
    /// Labels hidden from the client, e.g. `NOT_INTERESTED` (at most 20).
    #[serde(default)]
    #[schema(value_type = Vec<Line100>, max_items = 20)]
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

/// The create answer: the client's id, its login and the password PlusVibe generated.
#[derive(Deserialize)]
struct PlusvibeCreated {
    client_id: String,
    /// The login (read leniently: the client exists whatever this holds).
    #[serde(default)]
    email: Option<Value>,
    #[serde(default)]
    password: Option<Value>,
}

/// `GET /client/`: every client of the workspace.
#[derive(Deserialize)]
struct PlusvibeClientList {
    clients: Vec<Value>,
}

/// A client of the list (only what the gateway reads).
#[derive(Deserialize)]
struct PlusvibeListedClient {
    client_id: Option<String>,
    client_email: Option<String>,
    /// When it was created (RFC 3339): of duplicates, the oldest is adopted.
    created_at: Option<String>,
}

/// Finds a client by its login e-mail among the workspace's clients.
#[derive(Debug)]
pub struct PlusvibeLookup {
    workspace_id: String,
    email: String,
}

/// Most workspaces a client may be given, and labels hidden in each.
const MAX_WORKSPACES: usize = 10;
const MAX_LABELS: usize = 20;

#[derive(Debug)]
pub struct Plusvibe {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    /// The list endpoint (`/client/`, with its trailing slash as documented).
    list: Url,
    workspace_id: Option<String>,
}

impl Plusvibe {
    /// The workspace: the request's, else the configured one; a fault when neither is.
    fn workspace(
        &self,
        requested: Option<&str>,
        at: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<String> {
        let pointer = format!("{at}/workspace_id");
        match requested {
            Some(w) if !is_valid_id(w) => {
                errors.push(FieldError::new(
                    pointer,
                    "must be a workspace id of 1–64 characters",
                ));
                None
            }
            Some(w) => Some(w.trim().to_owned()),
            None if self.workspace_id.is_none() => {
                errors.push(FieldError::new(
                    pointer,
                    "is required: PlusVibe needs the API user's workspace, and the gateway has no default (providers.plusvibe.workspace_id)",
                ));
                None
            }
            None => self.workspace_id.clone(),
        }
    }
}

/// The workspaces a client is given: at least one, at most [`MAX_WORKSPACES`], each id valid,
/// at most [`MAX_LABELS`] hidden labels each.
fn check_workspaces(list: &[PlusvibeWorkspace], at: &str, errors: &mut Vec<FieldError>) {
    if list.is_empty() {
        errors.push(FieldError::new(
            format!("{at}/workspaces"),
            "must list at least one workspace (omit it to use workspace_id)",
        ));
    }
    if list.len() > MAX_WORKSPACES {
        errors.push(FieldError::new(
            format!("{at}/workspaces"),
            format!("must list at most {MAX_WORKSPACES} workspaces"),
        ));
    }
    for (i, w) in list.iter().enumerate() {
        if !is_valid_id(&w.id) {
            errors.push(FieldError::new(
                format!("{at}/workspaces/{i}/id"),
                "must be a workspace id of 1–64 characters",
            ));
        }
        if w.hide_labels.len() > MAX_LABELS {
            errors.push(FieldError::new(
                format!("{at}/workspaces/{i}/hide_labels"),
                format!("must list at most {MAX_LABELS} labels"),
            ));
            continue;
        }
        for (j, label) in w.hide_labels.iter().enumerate() {
            let pointer = format!("{at}/workspaces/{i}/hide_labels/{j}");
            text(Some(label), &pointer, TextKind::LINE_100, errors);
        }
    }
}

/// The client's login at PlusVibe: e-mail (the contact's, else the client's), first and last
/// name; a fault for each missing.
fn login<'a>(
    client: &'a NewClient,
    errors: &mut Vec<FieldError>,
) -> Option<(&'a str, &'a str, &'a str)> {
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
    Some((
        email?,
        contact.first_name.as_deref()?,
        contact.last_name.as_deref()?,
    ))
}

impl Adapter for Plusvibe {
    type Settings = PlusvibeSettings;
    type Options = PlusvibeOptions;
    type Lookup = PlusvibeLookup;

    /// Nothing documented stops a second client with the same e-mail.
    const ACCEPTS_DUPLICATES: bool = true;

    const CONFIGURED: &'static [&'static str] = &["workspace_id"];

    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("name", "`client_business_name`"),
        ("email", "`client_email` when the contact has no e-mail"),
        ("contact", "`client_first_name`, `client_last_name`, `client_email`: the client's login (required)"),
    ];

    fn new(s: &PlusvibeSettings) -> Result<Self, String> {
        Ok(Self {
            endpoint: join_url(&s.base_url, &["client"]),
            list: join_url(&s.base_url, &["client", ""]),
            workspace_id: s.workspace_id.clone(),
        })
    }

    fn auth(s: &PlusvibeSettings) -> Result<Option<ProviderAuth>, String> {
        ProviderAuth::key("x-api-key", "", s.api_key.as_ref())
    }

    fn plan(
        &self,
        client: &NewClient,
        opts: PlusvibeOptions,
        at: &str,
    ) -> Result<Planned<PlusvibeLookup>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let workspace_id = self.workspace(opts.workspace_id.as_deref(), at, &mut errors);
        if let Some(list) = &opts.workspaces {
            check_workspaces(list, at, &mut errors);
        }
        let login = login(client, &mut errors);
        let (Some(workspace_id), Some((email, first, last)), true) =
            (workspace_id.as_deref(), login, errors.is_empty())
        else {
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
        // E-mails match without regard to case: the key is the lowercased address, so two
        // requests for one client spelt differently also take turns at its guard.
        let lookup = PlusvibeLookup {
            workspace_id: workspace_id.to_owned(),
            email: email.to_lowercase(),
        };
        Ok(Planned {
            create: Request::post(self.endpoint.clone(), &body),
            credentials: None,
            lookup: Ok(lookup),
        })
    }

    fn list(&self, lookup: &PlusvibeLookup, _since: Option<std::time::SystemTime>) -> Request {
        let mut url = self.list.clone();
        url.query_pairs_mut()
            .append_pair("workspace_id", &lookup.workspace_id);
        Request::get(url)
    }

    fn read_list(&self, lookup: &PlusvibeLookup, page: &Page) -> Result<Listed, String> {
        let list: PlusvibeClientList = from_json(page.body)?;
        let mut listed = Listed::default();
        for item in list.clients {
            let client: PlusvibeListedClient = from_json(&item)?;
            if client.client_email.map(|e| e.to_lowercase()).as_deref() == Some(&lookup.email) {
                let id = client.client_id.filter(|id| !id.is_empty());
                let id = id.ok_or("a listed client has no `client_id`")?;
                let created = client.created_at.clone();
                listed
                    .found
                    .push(Found::new(id, item).created_at(created.as_deref()));
            }
        }
        // No paging is documented: the one page is the whole list.
        Ok(listed)
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        let created = match from_json::<PlusvibeCreated>(body) {
            Ok(c) if !c.client_id.is_empty() => c,
            _ => return Err("no string `client_id` in the answer".into()),
        };
        let text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_owned);
        let credentials = text(&created.password).map(|password| Credentials {
            login: text(&created.email).unwrap_or_default(),
            password: SecretString::from(password),
        });
        Ok(Created {
            id: Some(created.client_id),
            credentials,
        })
    }

    fn response_secrets(&self) -> &'static [&'static str] {
        &["/password"]
    }

    /// The client's login: the contact's first and last name, and an e-mail (the contact's, or
    /// the company's).
    fn request_rules(name: &str) -> Vec<Value> {
        let text = json!({ "type": "string" });
        vec![when_selected(
            name,
            json!({
                "required": ["client"],
                "properties": { "client": {
                    "required": ["contact"],
                    "properties": { "contact": {
                        "type": "object",
                        "required": ["first_name", "last_name"],
                        "properties": { "first_name": text, "last_name": text }
                    } },
                    "anyOf": [
                        { "required": ["email"], "properties": { "email": text } },
                        { "properties": { "contact": { "required": ["email"], "properties": { "email": text } } } }
                    ]
                } }
            }),
        )]
    }

    fn examples() -> Examples {
        Examples {
            options: json!({
                "workspace_id": "65f99a0dd96fae8ab61130c0",
                "workspaces": [{ "id": "65f99a0dd96fae8ab61130c0", "permission": "FULL_ACCESS", "hide_labels": [] }]
            }),
            created: json!({ "status": "created", "provider_status": 200, "provider_client_id": "70218d5e05561a3877dcb77f", "attempts": 1, "duration_ms": 95, "replayed": false, "reconciled": false,
                "credentials": { "login": "nova.smith@nova.example", "password": "Xp9#Ld2!ak" },
                "response": { "client_id": "70218d5e05561a3877dcb77f", "email": "nova.smith@nova.example", "password": "[redacted]" } }),
            partial: None,
            planned: None,
            single: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn plusvibe(workspace: Option<&str>) -> Plusvibe {
        Plusvibe::new(&PlusvibeSettings {
            workspace_id: workspace.map(Into::into),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn the_default_base_url_is_the_production_one() {
        assert_eq!(
            PlusvibeSettings::default().base_url.as_str(),
            "https://api.plusvibe.ai/api/v1"
        );
    }

    fn client(contact: bool) -> NewClient {
        let input = crate::domain::ClientInput {
            name: Some("Nova".into()),
            email: Some("billing@nova.example".into()),
            contact: contact.then(|| crate::domain::ContactInput {
                first_name: Some("Nova".into()),
                last_name: Some("Smith".into()),
                email: None,
            }),
            ..Default::default()
        };
        NewClient::parse(Some(&input), &mut Vec::new()).unwrap()
    }

    #[test]
    fn the_default_workspace_gets_full_access_and_the_company_email_is_the_login() {
        let plan = Adapter::plan(
            &plusvibe(Some("w1")),
            &client(true),
            Default::default(),
            "/t",
        )
        .unwrap();
        assert_eq!(
            plan.create.url.as_str(),
            "https://api.plusvibe.ai/api/v1/client"
        );
        assert_eq!(
            plan.create.body,
            Some(json!({
                "workspace_id": "w1", "client_email": "billing@nova.example",
                "client_first_name": "Nova", "client_last_name": "Smith", "client_business_name": "Nova",
                "workspaces": [{"id": "w1", "permissions": ["FULL_ACCESS"], "hide_labels": []}]
            }))
        );
    }

    #[test]
    fn the_login_and_the_workspace_are_required() {
        let errors =
            Adapter::plan(&plusvibe(None), &client(false), Default::default(), "/t").unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/t/workspace_id",
                "/client/contact/first_name",
                "/client/contact/last_name"
            ]
        );
    }

    #[test]
    fn the_generated_password_becomes_credentials() {
        let c = plusvibe(None)
            .created(&json!({"client_id": "p1", "email": "a@b.example", "password": "pw"}))
            .unwrap();
        assert_eq!(c.id.as_deref(), Some("p1"));
        let credentials = c.credentials.unwrap();
        assert_eq!(credentials.login, "a@b.example");
        assert_eq!(credentials.password.expose_secret(), "pw");
        assert!(plusvibe(None).created(&json!({"client_id": ""})).is_err());
        assert!(plusvibe(None).created(&json!({"id": "p1"})).is_err());
    }
}
