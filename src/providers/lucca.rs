//! Lucca Project (Timmi Project API v4): `POST {base}/timmi-project/api/v4/clients`,
//! `Authorization: lucca application={api_key}`, 201 with the Client resource (`id` a number).
//! Errors are RFC 7807 problems with `errors: {field: [messages]}`.

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
use crate::config::LuccaSettings;
use crate::domain::pointer::parse_options;
use crate::domain::NewClient;
use crate::problem::FieldError;

/// `targets.lucca`: each field overrides the gateway's configured default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LuccaOptions {
    /// The organization (legal establishments sharing accounting) the client belongs to.
    /// Required here or in `providers.lucca.organization_id`.
    #[schema(minimum = 1, example = 12)]
    pub organization_id: Option<i64>,
    /// The user managing this client.
    #[schema(minimum = 1, example = 7)]
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

#[derive(Debug)]
pub struct Lucca {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    organization_id: Option<u64>,
    owner_id: Option<u64>,
}

pub fn target(s: &LuccaSettings) -> Result<Result<Target, Unavailable>, String> {
    let adapter = Lucca::new(s.base_url.clone(), s.organization_id, s.owner_id);
    let auth = s
        .api_key
        .as_ref()
        .map(|key| Auth::header("authorization", "lucca application=", key.expose_secret()));
    build_target(adapter, s.common(), auth)
}

impl Lucca {
    pub fn new(base_url: Url, organization_id: Option<u64>, owner_id: Option<u64>) -> Self {
        Self {
            endpoint: join_url(&base_url, &["timmi-project", "api", "v4", "clients"]),
            organization_id,
            owner_id,
        }
    }
}

const BASE: &str = "/targets/lucca";

fn positive(v: Option<i64>, field: &str, errors: &mut Vec<FieldError>) -> Option<u64> {
    match v {
        Some(n) if n >= 1 => Some(n.unsigned_abs()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{BASE}/{field}"),
                "must be a positive integer",
            ));
            None
        }
        None => None,
    }
}

impl Adapter for Lucca {
    fn id(&self) -> ProviderId {
        ProviderId::Lucca
    }

    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>> {
        let opts: LuccaOptions = parse_options(options, BASE).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let organization_id =
            positive(opts.organization_id, "organization_id", &mut errors).or(self.organization_id);
        let owner_id = positive(opts.owner_id, "owner_id", &mut errors).or(self.owner_id);
        if organization_id.is_none() && errors.is_empty() {
            errors.push(FieldError::new(
                format!("{BASE}/organization_id"),
                "is required: Lucca needs the organization of the client, and the gateway has no default (providers.lucca.organization_id)",
            ));
        }
        // An empty name is already reported at /client/name; a code follows once it is fixed.
        if client.code.is_none() && !client.name.is_empty() {
            errors.push(FieldError::new(
                "/client/code",
                "is required by Lucca, and none can be derived from a name without letters or digits",
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
        Ok(Plan {
            url: self.endpoint.clone(),
            body: serde_json::to_value(body).expect("plain struct serializes"),
            secret_pointers: &[],
            credentials: None,
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        let id = match body.get("id") {
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
                _ => return Err(format!("`id` is not an integer: {n}")),
            },
            _ => return Err("no numeric `id` in the Client resource".into()),
        };
        Ok(Created {
            id: Some(id),
            credentials: None,
        })
    }

    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        let mut err = ProviderError::from_status(status, body);
        let Some(body) = body else { return err };
        let field_errors: Vec<(String, String)> = body
            .get("errors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .flat_map(|(field, msgs)| {
                        let msgs: Vec<String> = match msgs {
                            Value::Array(a) => a
                                .iter()
                                .filter_map(|m| m.as_str().map(str::to_owned))
                                .collect(),
                            Value::String(s) => vec![s.clone()],
                            _ => Vec::new(),
                        };
                        msgs.into_iter().map(move |m| (field.clone(), m))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !field_errors.is_empty() {
            let details: Vec<String> = field_errors
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect();
            let title = body.get("title").and_then(Value::as_str).unwrap_or("");
            err.message = if title.is_empty() {
                details.join("; ")
            } else {
                format!("{title} {}", details.join("; "))
            };
        }
        let code_taken = field_errors.iter().any(|(field, msg)| {
            let field = field.to_ascii_lowercase();
            let field = field.rsplit(['.', '$']).next().unwrap_or(&field);
            let msg = msg.to_ascii_lowercase();
            field == "code"
                && ["unique", "already", "exist", "duplicate", "taken", "in use"]
                    .iter()
                    .any(|w| msg.contains(w))
        });
        if status == StatusCode::BAD_REQUEST && code_taken {
            err = err.with_kind(ErrorKind::Conflict);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lucca() -> Lucca {
        Lucca::new(Url::parse("https://acme.ilucca.net").unwrap(), None, None)
    }

    #[test]
    fn conflict_only_for_code_uniqueness() {
        let dup = json!({"type": "x", "title": "One or more validation errors occurred.", "status": 400,
            "errors": {"Code": ["The code 'NOVA' is already used by another client; it must be unique."]}});
        let e = lucca().error(StatusCode::BAD_REQUEST, Some(&dup));
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("Code: The code 'NOVA'"), "{}", e.message);

        let missing = json!({"title": "One or more validation errors occurred.", "status": 400,
            "errors": {"organizationId": ["A value for the 'organizationId' parameter or property was not provided."]}});
        assert_eq!(
            lucca().error(StatusCode::BAD_REQUEST, Some(&missing)).kind,
            ErrorKind::Validation
        );
        let external = json!({"errors": {"externalCode": ["already exists"]}});
        assert_eq!(
            lucca().error(StatusCode::BAD_REQUEST, Some(&external)).kind,
            ErrorKind::Validation
        );
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
