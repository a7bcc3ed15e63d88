//! Lucca Project (Timmi Project API v4): `POST {base}/timmi-project/api/v4/clients`,
//! `Authorization: lucca application={api_key}`, 201 with the Client resource (`id` a number).
//! Errors are RFC 7807 problems with `errors: {field: [messages]}`. Found by its `code` (exact),
//! in its organization: `GET .../clients?organizationId=&code=`, paged by `page` while `next` is
//! set.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Number, Value};
use url::Url;
use utoipa::ToSchema;

use crate::adapter::{
    error_of, from_json, integer_id, join_url, positive, provider_settings, query_number,
    with_query, Adapter, Created, Examples, Found, Listed, Page, Planned, ProviderAuth, Reply,
    Request,
};
use crate::domain::text::same_text;
use crate::domain::NewClient;
use crate::field_error::FieldError;
use crate::json_number;
use crate::provider_error::{ErrorKind, ProviderError};

provider_settings! {
    /// Lucca Project. `base_url` is your account's host, e.g. `https://acme.ilucca.net`.
    pub struct LuccaSettings("https://example.ilucca.net") {
        secrets {
            /// Sent as `Authorization: lucca application=KEY`.
            api_key / api_key_file
        },
        /// Default `organizationId` when a request's `targets.lucca` has none.
        organization_id: Option<u64> = None,
        /// Default `ownerId`.
        owner_id: Option<u64> = None,
    }
}

/// `targets.lucca`: each field overrides the gateway's configured default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LuccaOptions {
    /// The organization (legal establishments sharing accounting) the client belongs to.
    /// Required here or in `providers.lucca.organization_id`.
    #[schema(minimum = 1, maximum = 9007199254740991_i64, example = 12)]
    #[serde(default, deserialize_with = "json_number::optional_integer")]
    pub organization_id: Option<i64>,
    /// The user managing this client.
    #[schema(minimum = 1, maximum = 9007199254740991_i64, example = 7)]
    #[serde(default, deserialize_with = "json_number::optional_integer")]
    pub owner_id: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LuccaCreateClient<'a> {
    name: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<u64>,
    organization_id: u64,
}

/// The Client resource (only what the gateway reads).
#[derive(Deserialize)]
struct LuccaClient {
    id: Number,
}

/// One page of List Clients.
#[derive(Deserialize)]
struct LuccaClientList {
    items: Vec<Value>,
    /// A link to the next page, or null (its format is not documented: only its presence is
    /// read).
    #[serde(default)]
    next: Option<Value>,
}

/// A client summary of List Clients (only what the gateway reads).
#[derive(Deserialize)]
struct LuccaListedClient {
    id: Option<Number>,
    code: Option<String>,
}

/// Finds a client by its code in its organization.
#[derive(Debug)]
pub struct LuccaLookup {
    organization_id: u64,
    code: String,
}

/// An RFC 7807 problem as Lucca answers it.
#[derive(Deserialize, Default)]
struct LuccaProblem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    errors: BTreeMap<String, LuccaMessages>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LuccaMessages {
    Many(Vec<String>),
    One(String),
}

impl LuccaMessages {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let list: &[String] = match self {
            LuccaMessages::Many(v) => v,
            LuccaMessages::One(s) => std::slice::from_ref(s),
        };
        list.iter().map(String::as_str)
    }
}

#[derive(Debug)]
pub struct Lucca {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    organization_id: Option<u64>,
    owner_id: Option<u64>,
}

/// Words of a message saying that a value is taken.
const TAKEN: [&str; 6] = ["unique", "already", "exist", "duplicate", "taken", "in use"];

impl Adapter for Lucca {
    type Settings = LuccaSettings;
    type Options = LuccaOptions;
    type Lookup = LuccaLookup;

    /// `code` is unique.
    const ACCEPTS_DUPLICATES: bool = false;

    const CONFIGURED: &'static [&'static str] = &["organization_id"];

    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("name", "`name`"),
        ("code", "`code` (unique)"),
        ("external_id", "`externalCode`"),
    ];

    fn new(s: &LuccaSettings) -> Result<Self, String> {
        Ok(Self {
            endpoint: join_url(&s.base_url, &["timmi-project", "api", "v4", "clients"]),
            organization_id: s.organization_id,
            owner_id: s.owner_id,
        })
    }

    fn auth(s: &LuccaSettings) -> Result<Option<ProviderAuth>, String> {
        ProviderAuth::key("authorization", "lucca application=", s.api_key.as_ref())
    }

    fn plan(
        &self,
        client: &NewClient,
        opts: LuccaOptions,
        at: &str,
    ) -> Result<Planned<LuccaLookup>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let organization_id = positive(
            opts.organization_id,
            format!("{at}/organization_id"),
            &mut errors,
        )
        .or(self.organization_id);
        let owner_id =
            positive(opts.owner_id, format!("{at}/owner_id"), &mut errors).or(self.owner_id);
        if organization_id.is_none() && errors.is_empty() {
            errors.push(FieldError::new(
                format!("{at}/organization_id"),
                "is required: Lucca needs the organization of the client, and the gateway has no default (providers.lucca.organization_id)",
            ));
        }
        let (Some(organization_id), Some(code), true) =
            (organization_id, client.code.as_deref(), errors.is_empty())
        else {
            return Err(errors);
        };
        let body = LuccaCreateClient {
            name: &client.name,
            code,
            external_code: client.external_id.as_deref(),
            owner_id,
            organization_id,
        };
        Ok(Planned {
            create: Request::post(self.endpoint.clone(), &body),
            credentials: None,
            lookup: Ok(LuccaLookup {
                organization_id,
                code: code.to_owned(),
            }),
        })
    }

    fn list(&self, lookup: &LuccaLookup, _since: Option<std::time::SystemTime>) -> Request {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("organizationId", &lookup.organization_id.to_string())
            .append_pair("code", &lookup.code)
            .append_pair("page", "1");
        Request::get(url)
    }

    fn read_list(&self, lookup: &LuccaLookup, page: &Page) -> Result<Listed, String> {
        let list: LuccaClientList = from_json(page.body)?;
        for item in list.items {
            let client: LuccaListedClient = from_json(&item)?;
            // The `code` filter is documented as strict equality; compared here too, exactly.
            if client
                .code
                .as_deref()
                .is_some_and(|code| same_text(code, &lookup.code))
            {
                let id = client.id.ok_or("a listed client has no `id`")?;
                return Ok(Listed {
                    found: vec![Found::new(integer_id(&id)?, item)],
                    ..Listed::default()
                });
            }
        }
        let more = list.next.is_some_and(|n| !n.is_null());
        let next = more.then(|| {
            let page_no = query_number(page.url, "page").unwrap_or(1);
            Request::get(with_query(page.url, "page", &(page_no + 1).to_string()))
        });
        Ok(Listed {
            next,
            ..Listed::default()
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        let client: LuccaClient =
            from_json(body).map_err(|e| format!("no numeric `id` in the Client resource ({e})"))?;
        Ok(Created {
            id: Some(integer_id(&client.id)?),
            credentials: None,
        })
    }

    fn error(&self, reply: &Reply) -> ProviderError {
        let err = error_of(reply);
        let problem: LuccaProblem = reply.json_as().unwrap_or_default();
        let field_errors: Vec<(&str, &str)> = problem
            .errors
            .iter()
            .flat_map(|(field, msgs)| msgs.iter().map(move |m| (field.as_str(), m)))
            .collect();
        if field_errors.is_empty() {
            return err;
        }
        let details: Vec<String> = field_errors
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect();
        let message = match problem.title.as_deref().filter(|t| !t.is_empty()) {
            Some(title) => format!("{title} {}", details.join("; ")),
            None => details.join("; "),
        };
        let code_taken = field_errors.iter().any(|(field, msg)| {
            let field = field.to_ascii_lowercase();
            let field = field.rsplit(['.', '$']).next().unwrap_or(&field);
            let msg = msg.to_ascii_lowercase();
            field == "code" && TAKEN.iter().any(|w| msg.contains(w))
        });
        let err = err.with_message(Some(message));
        if reply.status == StatusCode::BAD_REQUEST && code_taken {
            err.with_kind(ErrorKind::Conflict)
        } else {
            err
        }
    }

    fn examples() -> Examples {
        let created = json!({ "status": "created", "provider_status": 201, "provider_client_id": "123", "attempts": 1, "duration_ms": 84, "replayed": false, "reconciled": false,
            "response": { "id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null } });
        Examples {
            options: json!({ "organization_id": 12, "owner_id": 7 }),
            partial: Some(created.clone()),
            created,
            planned: Some(
                json!({ "status": "planned", "attempts": 0, "duration_ms": 0, "replayed": false, "reconciled": false,
                "request": { "method": "POST", "url": "https://acme.ilucca.net/timmi-project/api/v4/clients",
                             "headers": { "accept": "application/json", "authorization": "lucca application=[redacted]", "content-type": "application/json" },
                             "body": { "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "ownerId": 7, "organizationId": 12 } } }),
            ),
            single: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_base_url_is_the_production_one() {
        assert_eq!(
            LuccaSettings::default().base_url.as_str(),
            "https://example.ilucca.net/"
        );
    }

    fn lucca() -> Lucca {
        Lucca::new(&LuccaSettings {
            base_url: Url::parse("https://acme.ilucca.net").unwrap(),
            ..Default::default()
        })
        .unwrap()
    }

    fn client(name: &str, code: Option<&str>) -> NewClient {
        let mut errors = Vec::new();
        let input = crate::domain::ClientInput {
            name: Some(name.into()),
            code: code.map(Into::into),
            external_id: Some("crm-4711".into()),
            ..Default::default()
        };
        NewClient::parse(Some(&input), &mut errors).unwrap()
    }

    #[test]
    fn the_request_is_the_documented_one() {
        let opts = LuccaOptions {
            organization_id: Some(12),
            owner_id: Some(7),
        };
        let plan = Adapter::plan(&lucca(), &client("Nova", Some("NOVA")), opts, "/t").unwrap();
        assert_eq!(plan.create.method, reqwest::Method::POST);
        assert_eq!(
            plan.create.url.as_str(),
            "https://acme.ilucca.net/timmi-project/api/v4/clients"
        );
        assert_eq!(
            plan.create.body,
            Some(
                json!({"name": "Nova", "code": "NOVA", "externalCode": "crm-4711", "ownerId": 7, "organizationId": 12})
            )
        );
    }

    #[test]
    fn ids_written_with_a_zero_fraction_are_integers() {
        let opts: LuccaOptions =
            serde_json::from_value(json!({"organization_id": 12.0, "owner_id": 7})).unwrap();
        assert_eq!((opts.organization_id, opts.owner_id), (Some(12), Some(7)));
        let err = serde_json::from_value::<LuccaOptions>(json!({"organization_id": 12.5}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an integer"), "{err}");
    }

    #[test]
    fn a_name_without_letters_or_digits_gets_a_derived_code() {
        let opts = LuccaOptions {
            organization_id: Some(12),
            owner_id: None,
        };
        let plan = Adapter::plan(&lucca(), &client("!!!", None), opts, "/t").unwrap();
        let code = plan.create.body.as_ref().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(code.starts_with("CLIENT-") && code.len() == 15, "{code}");
        // The same name gives the same code, so a retry or a lookup finds the same client.
        let again = Adapter::plan(
            &lucca(),
            &client("!!!", None),
            LuccaOptions {
                organization_id: Some(12),
                owner_id: None,
            },
            "/t",
        )
        .unwrap();
        assert_eq!(again.create.body.unwrap()["code"], code.as_str());
    }

    #[test]
    fn the_organization_is_required_and_ids_positive() {
        let opts = LuccaOptions {
            organization_id: None,
            owner_id: Some(0),
        };
        let errors = Adapter::plan(&lucca(), &client("!!!", None), opts, "/t").unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/t/owner_id"]);
        let errors =
            Adapter::plan(&lucca(), &client("Nova", None), Default::default(), "/t").unwrap_err();
        assert_eq!(errors[0].pointer, "/t/organization_id");
    }

    #[test]
    fn conflict_only_for_code_uniqueness() {
        let dup = json!({"type": "x", "title": "One or more validation errors occurred.", "status": 400,
            "errors": {"Code": ["The code 'NOVA' is already used by another client; it must be unique."]}});
        let e = lucca().error(&Reply::json(StatusCode::BAD_REQUEST, &dup));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("Code: The code 'NOVA'"), "{}", e.message);

        let missing = json!({"title": "One or more validation errors occurred.", "status": 400,
            "errors": {"organizationId": ["A value for the 'organizationId' parameter or property was not provided."]}});
        assert_eq!(
            lucca()
                .error(&Reply::json(StatusCode::BAD_REQUEST, &missing))
                .kind,
            ErrorKind::Validation
        );
        let external = json!({"errors": {"externalCode": ["already exists"]}});
        assert_eq!(
            lucca()
                .error(&Reply::json(StatusCode::BAD_REQUEST, &external))
                .kind,
            ErrorKind::Validation
        );
        let one = json!({"errors": {"code": "is already taken"}});
        assert_eq!(
            lucca()
                .error(&Reply::json(StatusCode::BAD_REQUEST, &one))
                .kind,
            ErrorKind::Conflict,
            "a single message instead of a list"
        );
        let odd = json!({"title": "Server error", "errors": 5});
        let e = lucca().error(&Reply::json(StatusCode::INTERNAL_SERVER_ERROR, &odd));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.message, "Server error");
    }

    #[test]
    fn id_is_normalized_to_a_string() {
        let id = |v: Value| lucca().created(&v).map(|c| c.id.unwrap());
        assert_eq!(id(json!({"id": 123})).unwrap(), "123");
        assert_eq!(id(json!({"id": 123.0})).unwrap(), "123");
        assert!(id(json!({"id": 1.5})).is_err());
        assert!(id(json!({"id": "123"})).is_err());
        assert!(id(json!({})).is_err());
    }
}
