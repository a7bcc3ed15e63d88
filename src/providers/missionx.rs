//! missionX: `POST {base}/clients` with an OAuth2 bearer token (client-credentials grant, or a
//! static token); 200 with the client document (`_id`). Errors: `{message, code, data}`. Found by
//! its `customId` (our `external_id`, compared exactly): `GET {base}/clients` has no filter on it,
//! so the list is read newest first (archived clients included), narrowed by `updatedAt` when the
//! time of the create is known, following `nextLink` on the same host.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;
use utoipa::ToSchema;

use crate::adapter::{
    error_of, from_json, join_url, provider_settings, Adapter, ClientCredentials, Created,
    Examples, Found, Listed, Page, Planned, ProviderAuth, Reply, Request,
};
use crate::domain::schema::string_schema;
use crate::domain::text::is_object_id;
use crate::domain::NewClient;
use crate::field_error::FieldError;
use crate::provider_error::ProviderError;

provider_settings! {
    /// missionX: OAuth2 client credentials, or a static bearer token.
    pub struct MissionxSettings("https://open.api.missionx.ai/v2") {
        secrets {
            /// Client-credentials grant.
            client_secret / client_secret_file,
            /// A static bearer token instead of the client-credentials flow.
            access_token / access_token_file,
        },
        /// OAuth2 token endpoint (client-credentials grant).
        token_url: Url = Url::parse("https://open.api.missionx.ai/v2/auth/token").expect("a valid URL"),
        client_id: Option<String> = None,
        /// Sent as the `Org-Id` header of the token request.
        org_id: Option<String> = None,
        /// Optional OAuth2 `scope` of the token request.
        scope: Option<String> = None,
        /// Default department ids when a request's `targets.missionx` has none.
        departments: Vec<String> = Vec::new(),
    }
}

string_schema!(
    DepartmentId,
    "A missionX department id: 24 hexadecimal characters.",
    "^[0-9a-fA-F]{24}$".to_owned(),
    24,
    24
);

/// Most departments one client may list.
const MAX_DEPARTMENTS: usize = 50;

/// `targets.missionx`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionxOptions {
    /// Department ids (24-hex ObjectIds) the client is associated with. Default:
    /// `providers.missionx.departments`.
    #[schema(value_type = Option<Vec<DepartmentId>>, max_items = 50, example = json!(["6650c0ffee0000000000abcd"]))]
    pub departments: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MissionxCreateClient<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_id: Option<&'a str>,
    email_domains: &'a [String],
    departments: &'a [String],
}

/// The client document (only what the gateway reads).
#[derive(Deserialize)]
struct MissionxClient {
    #[serde(rename = "_id")]
    id: String,
}

/// A page of `GET /clients`.
#[derive(Deserialize)]
struct MissionxClientList {
    value: Vec<Value>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

/// A client of the list (only what the gateway reads).
#[derive(Deserialize)]
struct MissionxListedClient {
    #[serde(rename = "_id")]
    id: Option<String>,
    #[serde(rename = "customId")]
    custom_id: Option<String>,
}

/// Finds a client by its `customId`.
#[derive(Debug)]
pub struct MissionxLookup {
    custom_id: String,
}

/// Clients per list page (the documented maximum).
const PAGE_SIZE: &str = "100";
/// How much earlier than the gateway's clock missionX's may be (the `updatedAt` narrowing).
const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// missionX's error body, `{message, code, data}`.
#[derive(Deserialize)]
struct MissionxError {
    message: Option<String>,
}

#[derive(Debug)]
pub struct Missionx {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    departments: Vec<String>,
}

/// The next page's URL from a `nextLink` (absolute, or relative to this page). Its form is not
/// documented; it is only followed on the same host (the bearer token goes nowhere else).
fn next_page(current: &Url, link: &str) -> Result<Url, String> {
    let next = current
        .join(link)
        .map_err(|e| format!("`nextLink` is not a link ({e})"))?;
    if next.origin() != current.origin() {
        return Err("`nextLink` points to another host; not followed".into());
    }
    if next == *current {
        return Err("`nextLink` points to the same page".into());
    }
    Ok(next)
}

/// The header naming the organization on a token request.
static ORG_ID: reqwest::header::HeaderName = reqwest::header::HeaderName::from_static("org-id");

impl Adapter for Missionx {
    type Settings = MissionxSettings;
    type Options = MissionxOptions;
    type Lookup = MissionxLookup;

    /// Nothing documented stops a second client with the same `customId` or title.
    const ACCEPTS_DUPLICATES: bool = true;

    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("name", "`title`"),
        ("external_id", "`customId`"),
        ("email_domains", "`emailDomains`"),
    ];

    fn new(s: &MissionxSettings) -> Result<Self, String> {
        if let Some(problem) = crate::net::url_problem("token_url", &s.token_url) {
            return Err(problem);
        }
        if let Some(d) = s.departments.iter().find(|d| !is_object_id(d)) {
            return Err(format!("departments: `{d}` is not a 24-hex department id"));
        }
        Ok(Self {
            endpoint: join_url(&s.base_url, &["clients"]),
            departments: s.departments.clone(),
        })
    }

    fn auth(s: &MissionxSettings) -> Result<Option<ProviderAuth>, String> {
        match (&s.access_token, &s.client_id, &s.client_secret) {
            (Some(token), _, _) => ProviderAuth::bearer(Some(token)),
            (None, Some(client_id), Some(secret)) => {
                let org_id = s.org_id.iter().map(|org| (ORG_ID.clone(), org.clone()));
                ProviderAuth::client_credentials(ClientCredentials {
                    token_url: s.token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: secret.clone(),
                    scope: s.scope.clone(),
                    headers: org_id.collect(),
                })
                .map(Some)
            }
            (None, Some(_), None) => Err("client_id is set but client_secret is not".into()),
            (None, None, Some(_)) => Err("client_secret is set but client_id is not".into()),
            (None, None, None) => Ok(None),
        }
    }

    fn plan(
        &self,
        client: &NewClient,
        opts: MissionxOptions,
        at: &str,
    ) -> Result<Planned<MissionxLookup>, Vec<FieldError>> {
        let departments = opts.departments.unwrap_or_else(|| self.departments.clone());
        let errors: Vec<FieldError> = departments
            .iter()
            .enumerate()
            .filter(|(_, d)| !is_object_id(d))
            .map(|(i, _)| {
                FieldError::new(
                    format!("{at}/departments/{i}"),
                    "must be a department id: 24 hexadecimal characters",
                )
            })
            .chain((departments.len() > MAX_DEPARTMENTS).then(|| {
                FieldError::new(
                    format!("{at}/departments"),
                    format!("must list at most {MAX_DEPARTMENTS} departments"),
                )
            }))
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let body = MissionxCreateClient {
            title: &client.name,
            custom_id: client.external_id.as_deref(),
            email_domains: &client.email_domains,
            departments: &departments,
        };
        let lookup = match &client.external_id {
            Some(id) => Ok(MissionxLookup {
                custom_id: id.clone(),
            }),
            None => Err(FieldError::new(
                "/client/external_id",
                "is required to find the client at missionX (if_exists: adopt): missionX clients are matched by their customId, the external_id",
            )),
        };
        Ok(Planned {
            create: Request::post(self.endpoint.clone(), &body),
            credentials: None,
            lookup,
        })
    }

    fn list(&self, _lookup: &MissionxLookup, since: Option<std::time::SystemTime>) -> Request {
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("limit", PAGE_SIZE)
                .append_pair("sortBy", "updatedAt")
                .append_pair("sortDirection", "desc")
                .append_pair("withArchived", "true");
            if let Some(since) = since.and_then(|s| s.checked_sub(CLOCK_SKEW)) {
                let at = humantime::format_rfc3339_millis(since);
                query.append_pair("updatedAt", &format!("gte {at}"));
            }
        }
        Request::get(url)
    }

    fn read_list(&self, lookup: &MissionxLookup, page: &Page) -> Result<Listed, String> {
        let list: MissionxClientList = from_json(page.body)?;
        for item in list.value {
            let client: MissionxListedClient = from_json(&item)?;
            if client.custom_id.as_deref() == Some(lookup.custom_id.as_str()) {
                let id = client.id.filter(|id| !id.is_empty());
                let id = id.ok_or("a listed client has no `_id`")?;
                return Ok(Listed {
                    found: Some(Found { id, record: item }),
                    ..Listed::default()
                });
            }
        }
        let next = match list.next_link.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(link) => Some(Request::get(next_page(page.url, link)?)),
        };
        Ok(Listed {
            next,
            ..Listed::default()
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        match from_json::<MissionxClient>(body) {
            Ok(c) if !c.id.is_empty() => Ok(Created {
                id: Some(c.id),
                credentials: None,
            }),
            _ => Err("no string `_id` in the client document".into()),
        }
    }

    fn error(&self, reply: &Reply) -> ProviderError {
        let message = reply.json_as::<MissionxError>().and_then(|e| e.message);
        error_of(reply).with_message(message)
    }

    /// With `if_exists: adopt`, the client is found by its `customId`: `client.external_id`.
    fn request_rules(name: &str) -> Vec<Value> {
        vec![json!({
            "if": {
                "required": ["targets", "if_exists"],
                "properties": { "targets": { "required": [name] }, "if_exists": { "const": "adopt" } }
            },
            "then": {
                "required": ["client"],
                "properties": { "client": {
                    "required": ["external_id"],
                    "properties": { "external_id": { "type": "string" } }
                } }
            }
        })]
    }

    fn examples() -> Examples {
        Examples {
            options: json!({ "departments": ["6650c0ffee0000000000abcd"] }),
            created: json!({ "status": "created", "provider_status": 200, "provider_client_id": "6650c0ffee00000000000042", "attempts": 1, "duration_ms": 102, "replayed": false, "reconciled": false,
                "response": { "_id": "6650c0ffee00000000000042", "title": "Nova Consulting Ltd", "customId": "crm-4711", "emailDomains": ["nova.example"], "departments": ["6650c0ffee0000000000abcd"] } }),
            partial: Some(
                json!({ "status": "unknown", "attempts": 1, "duration_ms": 5000, "replayed": false, "reconciled": false,
                "error": { "kind": "timeout", "message": "no answer within 5000 ms; the client may have been created", "retryable": true } }),
            ),
            planned: None,
            single: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn missionx(departments: &[&str]) -> Missionx {
        Missionx::new(&MissionxSettings {
            departments: departments.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn the_default_base_url_is_the_production_one() {
        assert_eq!(
            MissionxSettings::default().base_url.as_str(),
            "https://open.api.missionx.ai/v2"
        );
        assert_eq!(
            MissionxSettings::default().token_url.as_str(),
            "https://open.api.missionx.ai/v2/auth/token"
        );
    }

    fn client() -> NewClient {
        let input = crate::domain::ClientInput {
            name: Some("Nova".into()),
            external_id: Some("crm-1".into()),
            email: Some("billing@nova.example".into()),
            ..Default::default()
        };
        NewClient::parse(Some(&input), &mut Vec::new()).unwrap()
    }

    #[test]
    fn the_request_is_the_documented_one() {
        let d = "6650c0ffee0000000000abcd";
        let plan = Adapter::plan(&missionx(&[d]), &client(), Default::default(), "/t").unwrap();
        assert_eq!(
            plan.create.url.as_str(),
            "https://open.api.missionx.ai/v2/clients"
        );
        assert_eq!(
            plan.create.body,
            Some(
                json!({"title": "Nova", "customId": "crm-1", "emailDomains": ["nova.example"], "departments": [d]})
            )
        );
    }

    #[test]
    fn departments_are_object_ids_at_most_fifty() {
        let opts = MissionxOptions {
            departments: Some(vec!["nope".into(), "6650c0ffee0000000000abcd".into()]),
        };
        let errors = Adapter::plan(&missionx(&[]), &client(), opts, "/t").unwrap_err();
        assert_eq!(errors[0].pointer, "/t/departments/0");
        let opts = MissionxOptions {
            departments: Some(vec!["6650c0ffee0000000000abcd".into(); 51]),
        };
        let errors = Adapter::plan(&missionx(&[]), &client(), opts, "/t").unwrap_err();
        assert_eq!(errors[0].pointer, "/t/departments");
        assert!(Missionx::new(&MissionxSettings {
            departments: vec!["x".into()],
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn credentials_come_in_pairs() {
        let s = |id: Option<&str>, secret: Option<&str>| MissionxSettings {
            client_id: id.map(Into::into),
            client_secret: secret.map(|s| s.to_owned().into()),
            ..Default::default()
        };
        assert!(Missionx::auth(&s(Some("id"), None)).is_err());
        assert!(Missionx::auth(&s(None, Some("secret"))).is_err());
        assert!(Missionx::auth(&s(None, None)).unwrap().is_none());
        let Some(ProviderAuth::ClientCredentials(grant)) =
            Missionx::auth(&s(Some("id"), Some("secret"))).unwrap()
        else {
            panic!("a client-credentials grant")
        };
        assert_eq!(grant.client_id, "id");
        let with_org = MissionxSettings {
            org_id: Some("org-7".into()),
            ..s(Some("id"), Some("secret"))
        };
        let Some(ProviderAuth::ClientCredentials(grant)) = Missionx::auth(&with_org).unwrap()
        else {
            panic!("a client-credentials grant")
        };
        assert_eq!(grant.headers, [(ORG_ID.clone(), "org-7".to_owned())]);
    }

    #[test]
    fn the_id_and_the_message_are_read_from_the_documented_bodies() {
        let m = missionx(&[]);
        assert_eq!(m.created(&json!({"_id": "x1"})).unwrap().id.unwrap(), "x1");
        assert!(m.created(&json!({"id": "x1"})).is_err());
        let body =
            json!({"message": "\"title\" is required", "code": "VALIDATION_ERROR", "data": {}});
        let e = m.error(&Reply::json(StatusCode::BAD_REQUEST, &body));
        assert_eq!(e.message, "\"title\" is required");
        assert_eq!(e.provider_error, Some(body));
    }
}
