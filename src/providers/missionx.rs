//! missionX: `POST {base}/clients` with an OAuth2 bearer token (client-credentials grant, or a
//! static token); 200 with the client document (`_id`). Errors: `{message, code, data}`.

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

use super::{
    build_target, http_client, join_url, Adapter, Auth, Created, Plan, ProviderId, Target,
    TokenSource, Unavailable,
};
use crate::config::MissionxSettings;
use crate::domain::pointer::parse_options;
use crate::domain::schema::DepartmentId;
use crate::domain::NewClient;
use crate::problem::FieldError;

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

#[derive(Debug)]
pub struct Missionx {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
    departments: Vec<String>,
}

impl Missionx {
    pub fn new(base_url: Url, departments: Vec<String>) -> Self {
        Self {
            endpoint: join_url(&base_url, &["clients"]),
            departments,
        }
    }
}

pub fn target(s: &MissionxSettings) -> Result<Result<Target, Unavailable>, String> {
    let auth = match (&s.access_token, &s.client_id, &s.client_secret) {
        (Some(token), _, _) => Some(Auth::header(
            "authorization",
            "Bearer ",
            token.expose_secret(),
        )),
        (None, Some(client_id), Some(secret)) => {
            Some(Ok(Auth::OAuth2(Arc::new(TokenSource::new(
                http_client(1)?,
                s.token_url.clone(),
                client_id.clone(),
                secret.clone(),
                s.org_id.clone(),
                s.scope.clone(),
            )))))
        }
        (None, Some(_), None) => {
            return Err("providers.missionx: client_id is set but client_secret is not".into())
        }
        (None, None, Some(_)) => {
            return Err("providers.missionx: client_secret is set but client_id is not".into())
        }
        (None, None, None) => None,
    };
    for d in &s.departments {
        if !is_object_id(d) {
            return Err(format!(
                "providers.missionx.departments: `{d}` is not a 24-hex department id"
            ));
        }
    }
    let adapter = Missionx::new(s.base_url.clone(), s.departments.clone());
    build_target(adapter, s.common(), auth)
}

const BASE: &str = "/targets/missionx";

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Adapter for Missionx {
    fn id(&self) -> ProviderId {
        ProviderId::Missionx
    }

    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>> {
        let opts: MissionxOptions = parse_options(options, BASE).map_err(|e| vec![e])?;
        let departments = opts.departments.unwrap_or_else(|| self.departments.clone());
        let errors: Vec<FieldError> = departments
            .iter()
            .enumerate()
            .filter(|(_, d)| !is_object_id(d))
            .map(|(i, _)| {
                FieldError::new(
                    format!("{BASE}/departments/{i}"),
                    "must be a department id: 24 hexadecimal characters",
                )
            })
            .chain((departments.len() > 50).then(|| {
                FieldError::new(
                    format!("{BASE}/departments"),
                    "must list at most 50 departments",
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
        Ok(Plan {
            url: self.endpoint.clone(),
            body: serde_json::to_value(body).expect("plain struct serializes"),
            secret_pointers: &[],
            credentials: None,
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        match body.get("_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(Created {
                id: Some(id.to_owned()),
                credentials: None,
            }),
            _ => Err("no string `_id` in the client document".into()),
        }
    }
}
