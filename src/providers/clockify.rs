//! Clockify: `POST {base}/v1/workspaces/{workspaceId}/clients`, `X-Api-Key: {api_key}`,
//! 201 with the client (`id` a string). Errors: JSON `{message, code}`, or no body. Found by its
//! `name` in the workspace: `GET .../clients?name=` (a filter of undocumented match mode: names are
//! compared exactly here), paged by `page` while `Last-Page` is not `true`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;
use utoipa::ToSchema;

use crate::adapter::{
    from_json, join_url, provider_settings, query_number, with_query, Adapter, Created, Duplicate,
    Examples, Found, Listed, Page, Planned, ProviderAuth, Request,
};
use crate::domain::schema::ObjectId;
use crate::domain::text::{is_object_id, same_text};
use crate::domain::NewClient;
use crate::field_error::FieldError;

provider_settings! {
    /// Clockify.
    pub struct ClockifySettings("https://api.clockify.me/api") {
        secrets {
            /// Sent as `X-Api-Key`.
            api_key / api_key_file
        },
        /// Default workspace when a request's `targets.clockify` has none.
        workspace_id: Option<String> = None,
    }
}

/// `targets.clockify`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockifyOptions {
    /// The workspace to create the client in (a Clockify id: 24 hexadecimal characters; it goes
    /// into the URL path). Required here or in `providers.clockify.workspace_id`.
    #[schema(value_type = Option<ObjectId>, example = "64a687e29ae1f428e7ebe303")]
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

/// The created client (only what the gateway reads).
#[derive(Deserialize)]
struct ClockifyClient {
    id: String,
}

/// A client of the list (only what the gateway reads).
#[derive(Deserialize)]
struct ClockifyListedClient {
    id: Option<String>,
    name: Option<String>,
}

/// Finds a client by its name in a workspace.
#[derive(Debug)]
pub struct ClockifyLookup {
    /// The workspace's clients endpoint.
    clients: Url,
    name: String,
}

/// Clients per list page (the documented default).
const PAGE_SIZE: usize = 50;

#[derive(Debug)]
pub struct Clockify {
    base_url: Url,
    workspace_id: Option<String>,
    /// The endpoint of the configured workspace, built once.
    default_endpoint: Option<Url>,
}

fn endpoint(base_url: &Url, workspace: &str) -> Url {
    join_url(base_url, &["v1", "workspaces", workspace, "clients"])
}

impl Adapter for Clockify {
    type Settings = ClockifySettings;
    type Options = ClockifyOptions;
    type Lookup = ClockifyLookup;

    /// A name is unique in its workspace.
    const ACCEPTS_DUPLICATES: bool = false;

    /// `400 {"message": "Client with that name already exists on workspace", "code": 501}`.
    const DUPLICATE: Option<Duplicate> = Some(Duplicate {
        status: 400,
        says: "client with that name already exists",
    });

    const CONFIGURED: &'static [&'static str] = &["workspace_id"];

    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("name", "`name` (unique in the workspace)"),
        ("email", "`email`"),
        ("address", "`address`"),
        ("note", "`note`"),
    ];

    fn new(s: &ClockifySettings) -> Result<Self, String> {
        if let Some(w) = s.workspace_id.as_deref().filter(|w| !is_object_id(w)) {
            return Err(format!(
                "workspace_id: `{w}` is not a Clockify workspace id (24 hexadecimal characters)"
            ));
        }
        Ok(Self {
            default_endpoint: s.workspace_id.as_deref().map(|w| endpoint(&s.base_url, w)),
            base_url: s.base_url.clone(),
            workspace_id: s.workspace_id.clone(),
        })
    }

    fn auth(s: &ClockifySettings) -> Result<Option<ProviderAuth>, String> {
        ProviderAuth::key("x-api-key", "", s.api_key.as_ref())
    }

    fn plan(
        &self,
        client: &NewClient,
        opts: ClockifyOptions,
        at: &str,
    ) -> Result<Planned<ClockifyLookup>, Vec<FieldError>> {
        let pointer = format!("{at}/workspace_id");
        let workspace = match opts.workspace_id.as_deref() {
            Some(w) if !is_object_id(w) => {
                return Err(vec![FieldError::new(
                    pointer,
                    "must be a Clockify workspace id: 24 hexadecimal characters",
                )])
            }
            Some(w) => w.to_owned(),
            None => self.workspace_id.clone().ok_or_else(|| {
                vec![FieldError::new(
                    pointer,
                    "is required: Clockify needs a workspace, and the gateway has no default (providers.clockify.workspace_id)",
                )]
            })?,
        };
        let url = match &self.default_endpoint {
            Some(url) if self.workspace_id.as_deref() == Some(workspace.as_str()) => url.clone(),
            _ => endpoint(&self.base_url, &workspace),
        };
        let body = ClockifyCreateClient {
            name: &client.name,
            email: client.email.as_deref(),
            address: client.address.as_deref(),
            note: client.note.as_deref(),
        };
        Ok(Planned {
            create: Request::post(url.clone(), &body),
            credentials: None,
            lookup: Ok(ClockifyLookup {
                clients: url,
                name: client.name.clone(),
            }),
        })
    }

    fn list(&self, lookup: &ClockifyLookup, _since: Option<std::time::SystemTime>) -> Request {
        let mut url = lookup.clients.clone();
        url.query_pairs_mut()
            .append_pair("name", &lookup.name)
            .append_pair("page", "1")
            .append_pair("page-size", &PAGE_SIZE.to_string());
        Request::get(url)
    }

    fn read_list(&self, lookup: &ClockifyLookup, page: &Page) -> Result<Listed, String> {
        let items: Vec<Value> = from_json(page.body)?;
        let count = items.len();
        for item in items {
            let client: ClockifyListedClient = from_json(&item)?;
            if client
                .name
                .as_deref()
                .is_some_and(|name| same_text(name, &lookup.name))
            {
                let id = client.id.filter(|id| !id.is_empty());
                let id = id.ok_or("a listed client has no `id`")?;
                return Ok(Listed {
                    found: vec![Found::new(id, item)],
                    ..Listed::default()
                });
            }
        }
        // `Last-Page: true` ends the list; without the header, a full page may have a next.
        let last = match page.headers.get("last-page").and_then(|v| v.to_str().ok()) {
            Some(v) => v.trim().eq_ignore_ascii_case("true"),
            None => count < PAGE_SIZE,
        };
        let next = (!last).then(|| {
            let page_no = query_number(page.url, "page").unwrap_or(1);
            Request::get(with_query(page.url, "page", &(page_no + 1).to_string()))
        });
        Ok(Listed {
            next,
            ..Listed::default()
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        match from_json::<ClockifyClient>(body) {
            Ok(c) if !c.id.is_empty() => Ok(Created {
                id: Some(c.id),
                credentials: None,
            }),
            _ => Err("no string `id` in the created client".into()),
        }
    }

    fn examples() -> Examples {
        Examples {
            options: json!({ "workspace_id": "64a687e29ae1f428e7ebe303" }),
            created: json!({ "status": "created", "provider_status": 201, "provider_client_id": "44a687e29ae1f428e7ebe305", "attempts": 1, "duration_ms": 71, "replayed": false, "reconciled": false,
                "response": { "id": "44a687e29ae1f428e7ebe305", "name": "Nova Consulting Ltd", "workspaceId": "64a687e29ae1f428e7ebe303", "archived": false } }),
            partial: None,
            planned: None,
            single: Some(
                json!({ "name": "Acme Logistics", "email": "billing@acme.example", "note": "Pilot project" }),
            ),
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
            ClockifySettings::default().base_url.as_str(),
            "https://api.clockify.me/api"
        );
    }

    fn clockify(workspace: Option<&str>) -> Clockify {
        Clockify::new(&ClockifySettings {
            workspace_id: workspace.map(Into::into),
            ..Default::default()
        })
        .unwrap()
    }

    fn client() -> NewClient {
        let input = crate::domain::ClientInput {
            name: Some("Nova".into()),
            email: Some("billing@nova.example".into()),
            note: Some("n".into()),
            ..Default::default()
        };
        NewClient::parse(Some(&input), &mut Vec::new()).unwrap()
    }

    #[test]
    fn the_workspace_is_a_path_segment_from_the_request_or_the_config() {
        let w1 = "64a687e29ae1f428e7ebe301";
        let plan = Adapter::plan(&clockify(Some(w1)), &client(), Default::default(), "/t").unwrap();
        assert_eq!(
            plan.create.url.as_str(),
            format!("https://api.clockify.me/api/v1/workspaces/{w1}/clients")
        );
        assert_eq!(
            plan.create.body,
            Some(json!({"name": "Nova", "email": "billing@nova.example", "note": "n"}))
        );
        let opts = ClockifyOptions {
            workspace_id: Some("64a687e29ae1f428e7ebe302".into()),
        };
        let plan = Adapter::plan(&clockify(Some(w1)), &client(), opts, "/t").unwrap();
        assert!(plan
            .create
            .url
            .path()
            .contains("/64a687e29ae1f428e7ebe302/"));
        for bad in [
            ".",
            "..",
            "..;",
            "a/b",
            "64a687e29ae1f428e7ebe30",
            "64a687e29ae1f428e7ebe30g",
        ] {
            let opts = ClockifyOptions {
                workspace_id: Some(bad.into()),
            };
            let errors = Adapter::plan(&clockify(Some(w1)), &client(), opts, "/t").unwrap_err();
            assert_eq!(errors[0].pointer, "/t/workspace_id", "{bad}");
        }
        assert!(Clockify::new(&ClockifySettings {
            workspace_id: Some("..".into()),
            ..Default::default()
        })
        .is_err());
        let errors =
            Adapter::plan(&clockify(None), &client(), Default::default(), "/t").unwrap_err();
        assert_eq!(errors[0].pointer, "/t/workspace_id");
    }

    #[test]
    fn a_duplicate_name_is_a_conflict() {
        let body =
            json!({"message": "Client with that name already exists on workspace", "code": 501});
        let e = clockify(None).error(&Reply::json(StatusCode::BAD_REQUEST, &body));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(
            e.message,
            "Client with that name already exists on workspace"
        );
        let other = json!({"message": "name: must not be blank", "code": 501});
        assert_eq!(
            clockify(None)
                .error(&Reply::json(StatusCode::BAD_REQUEST, &other))
                .kind,
            ErrorKind::Validation
        );
    }

    #[test]
    fn the_id_is_a_non_empty_string() {
        let c = clockify(None);
        assert_eq!(c.created(&json!({"id": "abc"})).unwrap().id.unwrap(), "abc");
        assert!(c.created(&json!({"id": ""})).is_err());
        assert!(c.created(&json!({"id": 5})).is_err());
    }
}
