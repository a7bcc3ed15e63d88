//! ChatDash: `POST {base}/clients`, `Authorization: {agency_api_key}` (the bare key, no scheme),
//! creating the client with its first member; 200 `{"message": ...}` and no id.
//! Errors: `{"error": "..."}` with 400 (e.g. "Login ID already in use") or 500. Found by its
//! member's `loginId` (case-insensitive): `GET {base}/clients` (no filter, no paging), then
//! `GET {base}/clients/{id}/members` of each client of the same name; a list item that carries
//! `loginId` itself (an older generation of the API) is matched directly.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;
use utoipa::ToSchema;

use crate::adapter::{
    from_json, join_url, provider_settings, when_selected, Adapter, Candidate, Created, Duplicate,
    Examples, Found, Listed, Page, Planned, ProviderAuth, Request,
};
use crate::domain::schema::{Email, Line255};
use crate::domain::text::{email, is_path_id, same_text, text, TextKind};
use crate::domain::NewClient;
use crate::field_error::FieldError;
use crate::secret::{generate_password, Credentials};

provider_settings! {
    /// ChatDash.
    pub struct ChatdashSettings("https://api.chat-dash.com/v1/public") {
        secrets {
            /// The agency API key, sent as `Authorization: KEY`.
            api_key / api_key_file
        },
        /// After a create (which answers no id), find the client to fill `provider_client_id`.
        resolve_id: bool = true,
    }
}

/// `targets.chatdash`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatdashOptions {
    /// The client's first member (required: at least its `login_id`).
    #[schema(required = true, value_type = ChatdashMember)]
    pub member: Option<ChatdashMember>,
}

/// The first member of the ChatDash client.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatdashMember {
    /// The member's login id (required).
    #[schema(required = true, value_type = Line255, example = "nova")]
    pub login_id: Option<String>,
    /// Default: the contact's full name.
    #[schema(value_type = Option<Line255>, example = "Nova Smith")]
    pub name: Option<String>,
    /// Default: the contact's e-mail.
    #[schema(value_type = Option<Email>, example = "nova.smith@nova.example")]
    pub email: Option<String>,
    /// The member's password, 8–128 characters. Absent or `null`: a strong one is generated and
    /// returned once under `credentials`.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 128, write_only)]
    pub password: Option<SecretString>,
}

#[derive(Serialize)]
struct ChatdashCreateClient<'a> {
    client: ChatdashClient<'a>,
    member: ChatdashNewMember<'a>,
}

#[derive(Serialize)]
struct ChatdashClient<'a> {
    name: &'a str,
    language: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatdashNewMember<'a> {
    name: &'a str,
    login_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    password: &'a str,
}

/// A client of `GET /clients` (only what the gateway reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatdashListedClient {
    #[serde(rename = "_id")]
    id: Option<String>,
    name: Option<String>,
    /// Only in an older generation of the API.
    login_id: Option<String>,
}

/// A member of `GET /clients/{id}/members` (only what the gateway reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatdashMemberRecord {
    login_id: Option<String>,
}

/// Finds a client by its member's login id, among the clients of its name.
#[derive(Debug)]
pub struct ChatdashLookup {
    name: String,
    login_id: String,
}

#[derive(Debug)]
pub struct Chatdash {
    /// The create (and list) endpoint, built once from the base URL.
    endpoint: Url,
    resolve_id: bool,
}

/// Login ids are case-insensitive.
fn same_login(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// ChatDash's own default dashboard language.
const DEFAULT_LANGUAGE: &str = "en";

/// The member's login id: required.
fn login_id(given: Option<&str>, at: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let pointer = format!("{at}/member/login_id");
    match given {
        None => {
            errors.push(FieldError::new(
                &pointer,
                "is required: the ChatDash member needs a login id",
            ));
            None
        }
        some => text(some, &pointer, TextKind::LINE_255, errors),
    }
}

/// The member's name: given, else the contact's full name.
fn member_name(
    given: Option<&str>,
    client: &NewClient,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let pointer = format!("{at}/member/name");
    if given.is_some() {
        return text(given, &pointer, TextKind::LINE_255, errors);
    }
    let derived = client.contact.full_name();
    if derived.is_none() {
        errors.push(FieldError::new(
            pointer,
            "is required: give it, or the contact's first or last name",
        ));
    }
    derived
}

/// The member's password: given (8–128 characters), else generated (and returned once).
fn password(
    given: Option<&SecretString>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> (SecretString, bool) {
    match given {
        Some(p) => {
            let len = p.expose_secret().chars().count();
            if !(8..=128).contains(&len) {
                errors.push(FieldError::new(
                    format!("{at}/member/password"),
                    "must be 8–128 characters (omit it to have one generated)",
                ));
            }
            (p.clone(), false)
        }
        None => (generate_password(), true),
    }
}

impl Adapter for Chatdash {
    type Settings = ChatdashSettings;
    type Options = ChatdashOptions;
    type Lookup = ChatdashLookup;

    /// A login id is in use once.
    const ACCEPTS_DUPLICATES: bool = false;

    /// `400 {"error": "Login ID already in use"}`.
    const DUPLICATE: Option<Duplicate> = Some(Duplicate {
        status: 400,
        says: "login id already in use",
    });

    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("name", "`client.name`"),
        ("language", "`client.language` (default `en`)"),
        ("contact", "the member's default `name` and `email`"),
    ];

    fn new(s: &ChatdashSettings) -> Result<Self, String> {
        Ok(Self {
            endpoint: join_url(&s.base_url, &["clients"]),
            resolve_id: s.resolve_id,
        })
    }

    fn auth(s: &ChatdashSettings) -> Result<Option<ProviderAuth>, String> {
        ProviderAuth::key("authorization", "", s.api_key.as_ref())
    }

    fn plan(
        &self,
        client: &NewClient,
        opts: ChatdashOptions,
        at: &str,
    ) -> Result<Planned<ChatdashLookup>, Vec<FieldError>> {
        let member = opts.member.unwrap_or_default();
        let mut errors = Vec::new();
        let login_id = login_id(member.login_id.as_deref(), at, &mut errors);
        let name = member_name(member.name.as_deref(), client, at, &mut errors);
        let member_email = match member.email.as_deref() {
            Some(_) => email(
                member.email.as_deref(),
                &format!("{at}/member/email"),
                &mut errors,
            ),
            None => client.contact.email.clone(),
        };
        let (password, generated) = password(member.password.as_ref(), at, &mut errors);
        let (Some(login_id), Some(name), true) = (login_id, name, errors.is_empty()) else {
            return Err(errors);
        };
        let body = ChatdashCreateClient {
            client: ChatdashClient {
                name: &client.name,
                language: client.language.as_deref().unwrap_or(DEFAULT_LANGUAGE),
            },
            member: ChatdashNewMember {
                name: &name,
                login_id: &login_id,
                email: member_email.as_deref(),
                password: password.expose_secret(),
            },
        };
        let create =
            Request::post(self.endpoint.clone(), &body).with_secrets(&["/member/password"]);
        Ok(Planned {
            create,
            lookup: Ok(ChatdashLookup {
                name: client.name.clone(),
                login_id: login_id.clone(),
            }),
            credentials: generated.then_some(Credentials {
                login: login_id,
                password,
            }),
        })
    }

    fn list(&self, _lookup: &ChatdashLookup, _since: Option<std::time::SystemTime>) -> Request {
        Request::get(self.endpoint.clone())
    }

    fn read_list(&self, lookup: &ChatdashLookup, page: &Page) -> Result<Listed, String> {
        let items: Vec<Value> = from_json(page.body)?;
        let mut listed = Listed::default();
        for item in items {
            let client: ChatdashListedClient = from_json(&item)?;
            let Some(id) = client.id.filter(|id| !id.is_empty()) else {
                continue;
            };
            // The id goes into a URL path: only one that looks like an id.
            if !is_path_id(&id) {
                return Err("a listed client has an `_id` that cannot be a path segment".into());
            }
            if let Some(login) = &client.login_id {
                if same_login(login, &lookup.login_id) {
                    listed.found.push(Found::new(id, item));
                    return Ok(listed);
                }
            } else if client
                .name
                .as_deref()
                .is_some_and(|name| same_text(name, &lookup.name))
            {
                listed.candidates.push(Candidate {
                    request: Request::get(join_url(&self.endpoint, &[&id, "members"])),
                    record: item,
                });
            }
        }
        Ok(listed)
    }

    fn read_candidate(
        &self,
        lookup: &ChatdashLookup,
        candidate: &Value,
        page: &Page,
    ) -> Result<Option<Found>, String> {
        let members: Vec<ChatdashMemberRecord> = from_json(page.body)?;
        let ours = members
            .iter()
            .filter_map(|m| m.login_id.as_deref())
            .any(|login| same_login(login, &lookup.login_id));
        if !ours {
            return Ok(None);
        }
        let client: ChatdashListedClient = from_json(candidate)?;
        Ok(client.id.map(|id| Found::new(id, candidate.clone())))
    }

    fn resolves_id(&self) -> bool {
        self.resolve_id
    }

    /// The member's name: given, or the contact's first or last name.
    fn request_rules(name: &str) -> Vec<Value> {
        let text = json!({ "type": "string" });
        vec![when_selected(
            name,
            json!({ "anyOf": [
                { "properties": { "targets": { "properties": { name: { "properties": { "member": {
                    "required": ["name"], "properties": { "name": text }
                } } } } } } },
                { "required": ["client"], "properties": { "client": {
                    "required": ["contact"],
                    "properties": { "contact": { "type": "object", "anyOf": [
                        { "required": ["first_name"], "properties": { "first_name": text } },
                        { "required": ["last_name"], "properties": { "last_name": text } }
                    ] } }
                } } }
            ] }),
        )]
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        // `{"message": "Client created successfully"}`: nothing to read but that it is one.
        match body {
            Value::Object(_) => Ok(Created::default()),
            _ => Err("the answer is not a JSON object".into()),
        }
    }

    fn examples() -> Examples {
        Examples {
            options: json!({ "member": { "login_id": "nova", "name": "Nova Smith", "email": "nova.smith@nova.example", "password": null } }),
            created: json!({ "status": "created", "provider_status": 200, "provider_client_id": "6650c0ffee00000000000077", "attempts": 1, "duration_ms": 61, "replayed": false, "reconciled": false,
                "credentials": { "login": "nova", "password": "q7!Rm2#vTz9@Lk4pWx8e" },
                "response": { "message": "Client created successfully" } }),
            partial: Some(
                json!({ "status": "failed", "provider_status": 400, "attempts": 1, "duration_ms": 61, "replayed": false, "reconciled": false,
                "error": { "kind": "conflict", "message": "Login ID already in use", "retryable": false, "provider_status": 400,
                           "provider_error": { "error": "Login ID already in use" } } }),
            ),
            planned: Some(
                json!({ "status": "planned", "attempts": 0, "duration_ms": 0, "replayed": false, "reconciled": false,
                "request": { "method": "POST", "url": "https://api.chat-dash.com/v1/public/clients",
                             "headers": { "accept": "application/json", "authorization": "[redacted]", "content-type": "application/json" },
                             "body": { "client": { "name": "Nova Consulting Ltd", "language": "en" },
                                       "member": { "name": "Nova Smith", "loginId": "nova", "email": "nova.smith@nova.example", "password": "[redacted]" } } } }),
            ),
            single: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Reply;
    use crate::provider_error::ErrorKind;
    use reqwest::StatusCode;

    #[test]
    fn the_default_base_url_is_the_production_one() {
        assert_eq!(
            ChatdashSettings::default().base_url.as_str(),
            "https://api.chat-dash.com/v1/public"
        );
    }

    fn chatdash() -> Chatdash {
        Chatdash::new(&ChatdashSettings::default()).unwrap()
    }

    fn client() -> NewClient {
        let input = crate::domain::ClientInput {
            name: Some("Nova".into()),
            contact: Some(crate::domain::ContactInput {
                first_name: Some("Nova".into()),
                last_name: Some("Smith".into()),
                email: Some("nova@nova.example".into()),
            }),
            ..Default::default()
        };
        NewClient::parse(Some(&input), &mut Vec::new()).unwrap()
    }

    fn options(member: Value) -> ChatdashOptions {
        serde_json::from_value(json!({ "member": member })).unwrap()
    }

    #[test]
    fn member_defaults_come_from_the_contact_and_a_password_is_generated() {
        let plan = Adapter::plan(
            &chatdash(),
            &client(),
            options(json!({"login_id": "nova"})),
            "/t",
        )
        .unwrap();
        let credentials = plan.credentials.unwrap();
        assert_eq!(credentials.login, "nova");
        let password = credentials.password.expose_secret().to_owned();
        assert_eq!(
            plan.create.body,
            Some(json!({"client": {"name": "Nova", "language": "en"},
                "member": {"name": "Nova Smith", "loginId": "nova", "email": "nova@nova.example", "password": password}}))
        );
        assert_eq!(plan.create.secret_pointers, ["/member/password"]);
    }

    #[test]
    fn a_given_password_is_checked_and_not_returned() {
        let plan = Adapter::plan(
            &chatdash(),
            &client(),
            options(json!({"login_id": "nova", "password": "long-enough"})),
            "/t",
        )
        .unwrap();
        assert!(plan.credentials.is_none());
        let errors = Adapter::plan(
            &chatdash(),
            &client(),
            options(json!({"login_id": " ", "password": "short"})),
            "/t",
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/t/member/login_id", "/t/member/password"]);
    }

    #[test]
    fn a_used_login_id_is_a_conflict() {
        let body = json!({"error": "Login ID already in use"});
        let e = chatdash().error(&Reply::json(StatusCode::BAD_REQUEST, &body));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(e.message, "Login ID already in use");
        let e = chatdash().error(&Reply::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "db down"}),
        ));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.message, "db down");
    }

    #[test]
    fn the_success_is_an_object_without_an_id() {
        let c = chatdash()
            .created(&json!({"message": "Client created successfully"}))
            .unwrap();
        assert!(c.id.is_none());
        assert!(chatdash().created(&json!("ok")).is_err());
    }
}
