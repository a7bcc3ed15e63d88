use sha2::Digest;

use super::text::{self, email, slug_upper, TextKind};
use super::{ClientInput, ContactInput};
use crate::field_error::FieldError;

/// Most e-mail domains one client may list.
pub const MAX_EMAIL_DOMAINS: usize = 20;

/// A canonical client that passed validation, with its derived defaults applied.
/// Built only by [`NewClient::parse`]; adapters read it and never see raw input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    /// Given, or derived from `name` ([`derived_code`]); `None` only when `name` is invalid.
    pub code: Option<String>,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub note: Option<String>,
    pub language: Option<String>,
    /// Given, or the domain of `contact.email`, else of `email`.
    pub email_domains: Vec<String>,
    pub contact: Contact,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

impl Contact {
    /// "First Last", or whichever of the two is known.
    pub fn full_name(&self) -> Option<String> {
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }
}

impl NewClient {
    /// Parses the canonical client, pushing every fault (with its pointer) into `errors`.
    ///
    /// When `errors` grew, the client returned is a best effort (faulty fields left out) that is
    /// only good for asking the adapters about their own options, so that one answer lists
    /// every fault; it must not be sent. `None` when the body has no client at all.
    pub fn parse(input: Option<&ClientInput>, errors: &mut Vec<FieldError>) -> Option<NewClient> {
        let Some(input) = input else {
            errors.push(FieldError::new("/client", "is required"));
            return None;
        };
        let name = match input.name.as_deref() {
            None => {
                errors.push(FieldError::new("/client/name", "is required"));
                None
            }
            some => text::text(some, "/client/name", TextKind::LINE_255, errors),
        };
        let line = |value: &Option<String>, pointer: &str, errors: &mut Vec<FieldError>| {
            text::text(value.as_deref(), pointer, TextKind::LINE_255, errors)
        };
        let code = line(&input.code, "/client/code", errors);
        let external_id = line(&input.external_id, "/client/external_id", errors);
        let client_email = email(input.email.as_deref(), "/client/email", errors);
        let address = text::text(
            input.address.as_deref(),
            "/client/address",
            TextKind::TEXT_1000,
            errors,
        );
        let note = text::text(
            input.note.as_deref(),
            "/client/note",
            TextKind::TEXT_3000,
            errors,
        );
        let language = parse_language(input.language.as_deref(), errors);
        let contact = parse_contact(input.contact.as_ref(), errors);
        let email_domains = match &input.email_domains {
            Some(domains) => parse_domains(domains, errors),
            None => contact
                .email
                .as_deref()
                .or(client_email.as_deref())
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| vec![d.to_owned()])
                .unwrap_or_default(),
        };
        let name = name.unwrap_or_default();
        let code = code.or_else(|| derived_code(&name));
        Some(NewClient {
            name,
            code,
            external_id,
            email: client_email,
            address,
            note,
            language,
            email_domains,
            contact,
        })
    }
}

/// `client.language`: an ISO 639-1 code, in lower case.
fn parse_language(language: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let l = language?;
    let ok = l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase());
    if !ok {
        errors.push(FieldError::new(
            "/client/language",
            "must be an ISO 639-1 code in lower case, such as `en`",
        ));
    }
    ok.then(|| l.to_owned())
}

/// The code of a client that gives none: the upper-case slug of its name (`NOVA-CONSULTING-LTD`),
/// at most 255 characters like a code given (upper case may lengthen a name: `ß` is `SS`), or,
/// for a name without a letter or a digit, `CLIENT-` and 8 hexadecimal characters of the
/// name's SHA-256 (the same name, the same code).
pub fn derived_code(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let slug = slug_upper(name);
    if !slug.is_empty() {
        let max = TextKind::LINE_255.max_chars;
        let bounded: String = slug.chars().take(max).collect();
        return Some(bounded.trim_end_matches('-').to_owned());
    }
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02X}")).collect();
    Some(format!("CLIENT-{hex}"))
}

fn parse_contact(input: Option<&ContactInput>, errors: &mut Vec<FieldError>) -> Contact {
    let Some(c) = input else {
        return Contact::default();
    };
    Contact {
        first_name: text::text(
            c.first_name.as_deref(),
            "/client/contact/first_name",
            TextKind::LINE_100,
            errors,
        ),
        last_name: text::text(
            c.last_name.as_deref(),
            "/client/contact/last_name",
            TextKind::LINE_100,
            errors,
        ),
        email: email(c.email.as_deref(), "/client/contact/email", errors),
    }
}

fn parse_domains(domains: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if domains.len() > MAX_EMAIL_DOMAINS {
        errors.push(FieldError::new(
            "/client/email_domains",
            format!("must list at most {MAX_EMAIL_DOMAINS} domains"),
        ));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for (i, d) in domains.iter().enumerate() {
        let d = d.to_ascii_lowercase();
        if !text::is_valid_domain(&d) {
            errors.push(FieldError::new(
                format!("/client/email_domains/{i}"),
                "must be a domain name such as example.com (no `@`)",
            ));
        } else if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> ClientInput {
        ClientInput {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn derives_code_and_domains() {
        let mut i = input("  Nova Consulting Ltd ");
        i.email = Some("billing@Nova.Example".into());
        let mut errors = Vec::new();
        let c = NewClient::parse(Some(&i), &mut errors).unwrap();
        assert!(errors.is_empty());
        assert_eq!(c.name, "Nova Consulting Ltd");
        assert_eq!(c.code.as_deref(), Some("NOVA-CONSULTING-LTD"));
        assert_eq!(c.email.as_deref(), Some("billing@nova.example"));
        assert_eq!(c.email_domains, ["nova.example"]);

        i.contact = Some(ContactInput {
            email: Some("a@contact.example".into()),
            ..Default::default()
        });
        let c = NewClient::parse(Some(&i), &mut errors).unwrap();
        assert_eq!(c.email_domains, ["contact.example"], "contact e-mail first");
        assert!(errors.is_empty());
    }

    #[test]
    fn a_name_without_letters_or_digits_still_gets_a_code() {
        let code = derived_code("!!!").unwrap();
        assert!(code.starts_with("CLIENT-") && code.len() == 15, "{code}");
        assert_eq!(derived_code("!!!"), Some(code));
        assert_ne!(derived_code("???"), derived_code("!!!"));
        assert_eq!(derived_code(""), None);
    }

    #[test]
    fn a_derived_code_is_bounded_like_a_given_one() {
        for name in ["ß".repeat(255), "\u{FB03}".repeat(255)] {
            let code = derived_code(&name).unwrap();
            assert_eq!(code.chars().count(), 255, "{}", &code[..10]);
        }
        let dashed = format!("{} b", "a".repeat(254));
        let code = derived_code(&dashed).unwrap();
        assert!(
            !code.ends_with('-') && code.chars().count() <= 255,
            "{code}"
        );
    }

    #[test]
    fn collects_every_fault() {
        let i = ClientInput {
            name: Some(" ".into()),
            email: Some("nope".into()),
            language: Some("EN".into()),
            email_domains: Some(vec!["ok.example".into(), "bad@x".into()]),
            contact: Some(ContactInput {
                email: Some("x".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut errors = Vec::new();
        NewClient::parse(Some(&i), &mut errors);
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/client/name",
                "/client/email",
                "/client/language",
                "/client/contact/email",
                "/client/email_domains/1"
            ]
        );
    }
}
