//! Small text checks shared by the canonical client and the adapters' options.

use unicode_normalization::UnicodeNormalization;

use crate::field_error::FieldError;

/// Bidirectional-text controls: they reorder what is displayed (a name could read as another);
/// refused in every text field, as control characters are.
pub const BIDI_CONTROLS: &[(char, char)] = &[
    ('\u{061C}', '\u{061C}'),
    ('\u{200E}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2066}', '\u{2069}'),
];

/// Characters that display nothing (format characters, joiners, fillers, variation selectors):
/// a text made only of them and spaces is blank.
pub const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
];

fn within(c: char, ranges: &[(char, char)]) -> bool {
    ranges.iter().any(|(from, to)| (*from..=*to).contains(&c))
}

/// Whether `c` displays something.
pub fn is_visible(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !within(c, INVISIBLE)
}

/// What a text field may hold: at most `max_chars` characters (counted as sent), and line
/// breaks and tabs only when `multiline`. The OpenAPI document's string schemas
/// ([`super::schema`]) are made from the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextKind {
    pub max_chars: usize,
    pub multiline: bool,
}

impl TextKind {
    /// One line of at most 100 characters (a person's first or last name, a label).
    pub const LINE_100: Self = Self::line(100);
    /// One line of at most 255 characters (a name, a code, an id from elsewhere).
    pub const LINE_255: Self = Self::line(255);
    /// Text of at most 1,000 characters, line breaks allowed (an address).
    pub const TEXT_1000: Self = Self::lines(1000);
    /// Text of at most 3,000 characters, line breaks allowed (a note).
    pub const TEXT_3000: Self = Self::lines(3000);

    /// One line of at most `max_chars` characters.
    pub const fn line(max_chars: usize) -> Self {
        Self {
            max_chars,
            multiline: false,
        }
    }

    /// Text of at most `max_chars` characters, line breaks allowed.
    pub const fn lines(max_chars: usize) -> Self {
        Self {
            max_chars,
            multiline: true,
        }
    }
}

/// Checks an optional text field of the given `kind` and returns it in one spelling: trimmed of
/// spaces and invisible characters at its edges (a byte-order mark, a zero-width space), in
/// Unicode normal form C (`Café` sent decomposed is `Café` composed), so that whatever is derived
/// from it and every comparison with what a provider holds see one spelling. The length (in
/// characters) and the characters are checked on the value as sent, as the OpenAPI document
/// states them ([`super::schema`]).
pub fn text(
    value: Option<&str>,
    pointer: &str,
    kind: TextKind,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let TextKind {
        max_chars: max,
        multiline,
    } = kind;
    let value = value?;
    let len = value.chars().count();
    if len > max {
        errors.push(FieldError::new(
            pointer,
            format!("must be at most {max} characters (got {len})"),
        ));
        return None;
    }
    let bad = value.chars().any(|c| {
        (c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
            || within(c, BIDI_CONTROLS)
    });
    if bad {
        let allowed = if multiline { "" } else { " or line breaks" };
        errors.push(FieldError::new(
            pointer,
            format!(
                "must not contain control characters{allowed}, nor bidirectional-text controls"
            ),
        ));
        return None;
    }
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || within(c, INVISIBLE));
    if !trimmed.chars().any(is_visible) {
        errors.push(FieldError::new(
            pointer,
            "must not be empty or blank, nor made only of invisible characters (omit the field instead)",
        ));
        return None;
    }
    Some(normalized(trimmed))
}

/// `text` in Unicode normal form C.
pub fn normalized(text: &str) -> String {
    text.nfc().collect()
}

/// Whether two texts are the same once both are in normal form C (a provider may hold a name
/// spelt decomposed).
pub fn same_text(a: &str, b: &str) -> bool {
    a.nfc().eq(b.nfc())
}

/// An identifier such as a workspace id: 1–64 characters as sent, no control characters nor
/// bidirectional-text controls, at least one visible character (the `Id64` schema).
pub fn is_valid_id(id: &str) -> bool {
    id.chars().count() <= 64
        && !id
            .chars()
            .any(|c| c.is_control() || within(c, BIDI_CONTROLS))
        && id.chars().any(is_visible)
}

/// A MongoDB ObjectId as the providers that use them write it: 24 hexadecimal characters.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An id that may go into a URL path as one segment: 1–64 letters, digits, `-` or `_` (no `.`,
/// `..`, `;`, `/`, `%`: nothing a server could read as more than the id).
pub fn is_path_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A DNS name of at least two labels, letters, digits and hyphens (punycode for IDN).
pub fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// A pragmatic address check: `local@domain`, no spaces, the domain a DNS name.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !local.contains('@')
        && local.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | ']' | '\\' | '"'
                )
        })
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && is_valid_domain(domain)
}

/// Checks an e-mail field (as sent: no spaces around it), lower-casing its domain.
pub fn email(value: Option<&str>, pointer: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value?;
    if !is_valid_email(value) {
        errors.push(FieldError::new(
            pointer,
            "must be an e-mail address such as name@example.com",
        ));
        return None;
    }
    let (local, domain) = value.rsplit_once('@').expect("checked above");
    Some(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// The upper-case slug of a name: letters and digits kept, runs of anything else become one `-`,
/// in normal form C.
pub fn slug_upper(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.nfc() {
        if c.is_alphanumeric() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.extend(c.to_uppercase());
        } else {
            dash = true;
        }
    }
    normalized(&slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_upper_case_with_single_dashes() {
        assert_eq!(slug_upper("Nova Consulting Ltd"), "NOVA-CONSULTING-LTD");
        assert_eq!(slug_upper("  A&B -- co. "), "A-B-CO");
        assert_eq!(slug_upper("Café Zürich"), "CAFÉ-ZÜRICH");
        assert_eq!(slug_upper("!!!"), "");
        assert_eq!(
            slug_upper("Cafe\u{301} Cre\u{300}me Ltd"),
            "CAFÉ-CRÈME-LTD",
            "a decomposed name, one slug"
        );
    }

    #[test]
    fn one_spelling_whatever_was_sent() {
        let mut errors = Vec::new();
        let nfd = "Cafe\u{301} Cre\u{300}me Ltd";
        let nfc = "Café Crème Ltd";
        assert_ne!(nfd, nfc);
        assert_eq!(
            text(Some(nfd), "/n", TextKind::LINE_255, &mut errors).as_deref(),
            Some(nfc)
        );
        assert_eq!(
            text(
                Some("\u{FEFF}Nova\u{200B}"),
                "/n",
                TextKind::LINE_255,
                &mut errors
            )
            .as_deref(),
            Some("Nova"),
            "invisible characters at the edges go"
        );
        assert_eq!(
            text(Some("a\u{200D}b"), "/n", TextKind::LINE_255, &mut errors).as_deref(),
            Some("a\u{200D}b"),
            "inside, they stay"
        );
        assert!(errors.is_empty());
        assert!(same_text(nfd, nfc));
        assert!(!same_text("Nova", "nova"));
    }

    #[test]
    fn emails_and_domains() {
        assert!(is_valid_email("nova.smith@nova.example"));
        assert!(is_valid_email("a+b@x.co"));
        assert!(!is_valid_email("nova"));
        assert!(!is_valid_email("nova@localhost"));
        assert!(!is_valid_email("a b@x.co"));
        assert!(!is_valid_email("@x.co"));
        assert!(!is_valid_email("a@@x.co"));
        assert!(is_valid_domain("nova.example"));
        assert!(!is_valid_domain("-nova.example"));
        assert!(!is_valid_domain("nova"));
        assert!(!is_valid_domain("1.2.3.4"));
        assert!(!is_valid_domain("nova.1x"));
        assert!(is_valid_domain("nova.x1"));
    }

    #[test]
    fn text_trims_and_limits() {
        let mut errors = Vec::new();
        assert_eq!(
            text(Some("  a  "), "/x", TextKind::line(5), &mut errors).as_deref(),
            Some("a")
        );
        assert_eq!(
            text(Some("   "), "/x", TextKind::line(3), &mut errors),
            None
        );
        assert_eq!(
            text(Some(" abc"), "/y", TextKind::line(3), &mut errors),
            None,
            "length as sent"
        );
        assert_eq!(
            text(Some("a\u{0}"), "/z", TextKind::line(3), &mut errors),
            None
        );
        assert_eq!(
            text(
                Some("\u{200B}\u{FEFF} "),
                "/v",
                TextKind::line(9),
                &mut errors
            ),
            None
        );
        assert_eq!(
            text(Some("ab\u{202E}c"), "/b", TextKind::line(9), &mut errors),
            None
        );
        assert_eq!(
            text(Some("a\u{200D}b"), "/j", TextKind::line(9), &mut errors).as_deref(),
            Some("a\u{200D}b"),
            "a joiner between visible characters is fine"
        );
        assert_eq!(
            text(Some("a\nb"), "/w", TextKind::lines(3), &mut errors).as_deref(),
            Some("a\nb")
        );
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/x", "/y", "/z", "/v", "/b"]);
    }
}
