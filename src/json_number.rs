//! Integers as JSON Schema counts them: `12` and `12.0` are both the integer 12 (JSON Schema
//! 2020-12, "type": "integer"), while serde's integer types refuse the second form. Some JSON
//! encoders write every number with a fraction, so a document that says `integer` accepts both.

use serde::{Deserialize, Deserializer};
use serde_json::Number;

/// Largest integer every JSON reader holds exactly (2^53 - 1).
pub const MAX_EXACT: i64 = 9_007_199_254_740_991;

/// The integer a JSON number stands for: an integer, or a number without a fraction that is exact
/// (within ±(2^53 - 1)). `None` for a fraction, or an integer beyond `i64`.
pub fn integer(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // The bound is exact in f64, so within it the cast neither saturates nor rounds.
    (f.fract() == 0.0 && f.abs() <= MAX_EXACT as f64).then_some(f as i64)
}

/// `#[serde(deserialize_with = "json_number::optional_integer")]` for an `Option<i64>` field that
/// follows JSON Schema's `integer`.
pub fn optional_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => integer(&n)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: serde_json::Value) -> Option<i64> {
        integer(v.as_number().unwrap())
    }

    #[test]
    fn integers_in_either_form() {
        assert_eq!(of(json!(12)), Some(12));
        assert_eq!(of(json!(-3)), Some(-3));
        assert_eq!(of(json!(12.0)), Some(12));
        assert_eq!(of(json!(9_007_199_254_740_991.0)), Some(MAX_EXACT));
        assert_eq!(of(json!(u64::MAX)), None);
        assert_eq!(of(json!(12.5)), None);
        assert_eq!(of(json!(1e300)), None);
        assert_eq!(of(json!(18_014_398_509_481_984.0)), None);
    }

    #[test]
    fn optional_field() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "optional_integer")]
            n: Option<i64>,
        }
        let t = |s: &str| serde_json::from_str::<T>(s).map(|t| t.n);
        assert_eq!(t(r#"{"n": 7.0}"#).unwrap(), Some(7));
        assert_eq!(t(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(t("{}").unwrap(), None);
        let err = t(r#"{"n": 7.5}"#).unwrap_err().to_string();
        assert!(err.contains("expected an integer, got 7.5"), "{err}");
    }
}
