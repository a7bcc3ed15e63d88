//! Named string schemas for the OpenAPI document, built from the same constants the validators
//! in [`super::text`] enforce, so the document says exactly what is accepted. Patterns are
//! ECMA-262 regular expressions, as JSON Schema requires.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// Control characters (Unicode category Cc), refused in every text field.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// Control characters except tab, line feed and carriage return (multi-line fields).
const CONTROL_MULTILINE: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// Character ranges as the inside of a regular-expression class (`\u200b-\u200f`).
fn class(ranges: &[(char, char)]) -> String {
    ranges
        .iter()
        .map(|(from, to)| {
            let code = |c: &char| format!("\\u{:04x}", u32::from(*c));
            if from == to {
                code(from)
            } else {
                format!("{}-{}", code(from), code(to))
            }
        })
        .collect()
}

/// Refused characters, and characters that show something, for lines or for multi-line text.
fn classes(control: &str) -> (String, String) {
    let refused = format!("{control}{}", class(super::text::BIDI_CONTROLS));
    let blank = format!("\\s{CONTROL}{}", class(super::text::INVISIBLE));
    (refused, blank)
}

/// One line of text with at least one visible character; no control characters, no
/// bidirectional-text controls.
pub fn single_line_pattern() -> String {
    let (refused, blank) = classes(CONTROL);
    format!("^[^{refused}]*[^{blank}{refused}][^{refused}]*$")
}

/// Lines of text with at least one visible character; no control characters but line breaks
/// and tabs, no bidirectional-text controls.
pub fn multi_line_pattern() -> String {
    let (refused, blank) = classes(CONTROL_MULTILINE);
    format!("^[^{refused}]*[^{blank}{refused}][^{refused}]*$")
}

/// A DNS label: letters, digits, inner hyphens, at most 63 characters.
const LABEL: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
/// A top-level label: starts with a letter.
const TLD: &str = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
/// RFC 5322 `atext`.
const ATEXT: &str = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";

pub fn domain_pattern() -> String {
    format!("^(?:{LABEL}\\.)+{TLD}$")
}

pub fn email_pattern() -> String {
    format!("^{ATEXT}+(?:\\.{ATEXT}+)*@(?:{LABEL}\\.)+{TLD}$")
}

pub fn string(description: &str, pattern: String, min: usize, max: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .into()
}

/// Declares a named string schema (a unit struct usable as `value_type`).
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $description:literal, $pattern:expr, $min:expr, $max:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::domain::schema::string($description, $pattern, $min, $max)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use string_schema;

string_schema!(
    Line255,
    "One line of text, 1–255 characters, not blank; trimmed.",
    single_line_pattern(),
    1,
    super::text::TextKind::LINE_255.max_chars
);
string_schema!(
    Line100,
    "One line of text, 1–100 characters, not blank; trimmed.",
    single_line_pattern(),
    1,
    super::text::TextKind::LINE_100.max_chars
);
string_schema!(
    Id64,
    "An identifier, 1–64 characters, not blank; trimmed.",
    single_line_pattern(),
    1,
    64
);
string_schema!(
    Text1000,
    "Text (line breaks allowed), 1–1000 characters, not blank; trimmed.",
    multi_line_pattern(),
    1,
    super::text::TextKind::TEXT_1000.max_chars
);
string_schema!(
    Text3000,
    "Text (line breaks allowed), 1–3000 characters, not blank; trimmed.",
    multi_line_pattern(),
    1,
    super::text::TextKind::TEXT_3000.max_chars
);
string_schema!(
    Email,
    "An e-mail address (`local@domain`, the domain lower-cased).",
    email_pattern(),
    3,
    254
);
string_schema!(
    DomainName,
    "A domain name such as `example.com`.",
    domain_pattern(),
    3,
    253
);
string_schema!(
    LanguageCode,
    "ISO 639-1 language code, lower case.",
    "^[a-z]{2}$".to_owned(),
    2,
    2
);
string_schema!(
    ObjectId,
    "A 24-hexadecimal-character id (a MongoDB ObjectId).",
    "^[0-9a-fA-F]{24}$".to_owned(),
    24,
    24
);
