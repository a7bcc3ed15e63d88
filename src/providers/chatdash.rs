//! ChatDash: `POST {base}/clients`, `Authorization: {agency_api_key}` (the bare key, no scheme),
//! creating the client with its first member; 200 `{"message": ...}` and no id.
//! Errors: `{"error": "..."}` with 400 (e.g. "Login ID already in use") or 500.

use rand::seq::{IndexedRandom, SliceRandom};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

use super::{
    build_target, join_url, Adapter, Auth, Created, Credentials, ErrorKind, Plan, ProviderError,
    ProviderId, Target, Unavailable,
};
use crate::config::ChatdashSettings;
use crate::domain::pointer::parse_options;
use crate::domain::schema::{Email, Line255};
use crate::domain::text::{email, text};
use crate::domain::NewClient;
use crate::problem::FieldError;

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

#[derive(Debug)]
pub struct Chatdash {
    /// The create endpoint, built once from the base URL.
    endpoint: Url,
}

impl Chatdash {
    pub fn new(base_url: Url) -> Self {
        Self {
            endpoint: join_url(&base_url, &["clients"]),
        }
    }
}

pub fn target(s: &ChatdashSettings) -> Result<Result<Target, Unavailable>, String> {
    let auth = s
        .api_key
        .as_ref()
        .map(|key| Auth::header("authorization", "", key.expose_secret()));
    build_target(Chatdash::new(s.base_url.clone()), s.common(), auth)
}

const BASE: &str = "/targets/chatdash";
/// ChatDash's own default dashboard language.
const DEFAULT_LANGUAGE: &str = "en";
const DUPLICATE_LOGIN: &str = "login id already in use";

/// A 20-character password with upper and lower case letters, digits and symbols.
pub fn generate_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-=?@_";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| *set.choose(&mut rng).expect("non-empty set"))
        .collect();
    while chars.len() < 20 {
        chars.push(*all.choose(&mut rng).expect("non-empty set"));
    }
    chars.shuffle(&mut rng);
    SecretString::from(String::from_utf8(chars).expect("ASCII"))
}

impl Adapter for Chatdash {
    fn id(&self) -> ProviderId {
        ProviderId::Chatdash
    }

    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>> {
        let opts: ChatdashOptions = parse_options(options, BASE).map_err(|e| vec![e])?;
        let member = opts.member.unwrap_or_default();
        let mut errors = Vec::new();
        let login_pointer = format!("{BASE}/member/login_id");
        let login_id = match member.login_id.as_deref() {
            None => {
                errors.push(FieldError::new(
                    &login_pointer,
                    "is required: the ChatDash member needs a login id",
                ));
                None
            }
            some => text(some, &login_pointer, 255, false, &mut errors),
        };
        let name = match member.name.as_deref() {
            Some(_) => text(
                member.name.as_deref(),
                &format!("{BASE}/member/name"),
                255,
                false,
                &mut errors,
            ),
            None => {
                let derived = client.contact.full_name();
                if derived.is_none() {
                    errors.push(FieldError::new(
                        format!("{BASE}/member/name"),
                        "is required: give it, or the contact's first or last name",
                    ));
                }
                derived
            }
        };
        let member_email = match member.email.as_deref() {
            Some(_) => email(
                member.email.as_deref(),
                &format!("{BASE}/member/email"),
                &mut errors,
            ),
            None => client.contact.email.clone(),
        };
        let (password, generated) = match &member.password {
            Some(p) => {
                let len = p.expose_secret().chars().count();
                if !(8..=128).contains(&len) {
                    errors.push(FieldError::new(
                        format!("{BASE}/member/password"),
                        "must be 8–128 characters (omit it to have one generated)",
                    ));
                }
                (p.clone(), false)
            }
            None => (generate_password(), true),
        };
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
        let body = serde_json::to_value(body).expect("plain struct serializes");
        Ok(Plan {
            url: self.endpoint.clone(),
            body,
            secret_pointers: &["/member/password"],
            credentials: generated.then_some(Credentials {
                login: login_id,
                password,
            }),
        })
    }

    fn created(&self, body: &Value) -> Result<Created, String> {
        if body.is_object() {
            Ok(Created::default())
        } else {
            Err("the answer is not a JSON object".into())
        }
    }

    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        let err = ProviderError::from_status(status, body);
        let duplicate = err.message.to_ascii_lowercase().contains(DUPLICATE_LOGIN);
        if status == StatusCode::BAD_REQUEST && duplicate {
            return err.with_kind(ErrorKind::Conflict);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_strong_and_differ() {
        let a = generate_password();
        let b = generate_password();
        let a = a.expose_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b.expose_secret());
        assert!(a.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(a.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(a.bytes().any(|c| c.is_ascii_digit()));
        assert!(a.bytes().any(|c| !c.is_ascii_alphanumeric()));
    }
}
