//! Checks of free-text input shared by the endpoints. Each returns the cleaned
//! value (trimmed) or a 400 naming the field.

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::error::ApiError;
use crate::units::model::Household;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_HOUSEHOLD_FIELD_CHARS: usize = 50;

/// White space as `str::trim` removes it (Unicode White_Space), spelled out: `\s`
/// means other sets in other regex dialects, and clients use all of them.
const WHITE_SPACE: &str = r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
const CONTROL_BUT_LINE_BREAKS: &str = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F";

/// A text field as the contract marks it (`x-text` on its schema): the checks of
/// [`text`], [`multiline_text`] or [`optional_text`], for [`TextRule::pattern`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRule {
    pub max_chars: usize,
    /// Line breaks and tabs allowed inside ([`multiline_text`]).
    #[serde(default)]
    pub multiline: bool,
    /// Blank counts as absent ([`optional_text`]).
    #[serde(default)]
    pub blank_is_absent: bool,
    /// An http(s) URL without white space ([`url`]).
    #[serde(default)]
    pub url: bool,
}

impl TextRule {
    /// The JSON Schema pattern that matches exactly what the server accepts: white
    /// space at the ends is trimmed, so only the rest counts against `max_chars`,
    /// which `maxLength` (counting everything) could not say.
    pub fn pattern(&self) -> String {
        let inside = if self.multiline { CONTROL_BUT_LINE_BREAKS } else { CONTROL };
        let edge = format!("[^{CONTROL}{WHITE_SPACE}]");
        let trimmed = match self.max_chars {
            max if self.url => {
                let rest = |scheme: &str| max.saturating_sub(scheme.len());
                let (http, https) = (rest("http://"), rest("https://"));
                format!(
                    "(?:http://[^{CONTROL}{WHITE_SPACE}]{{0,{http}}}|https://[^{CONTROL}{WHITE_SPACE}]{{0,{https}}})"
                )
            }
            0 | 1 => edge,
            max => format!("{edge}(?:[^{inside}]{{0,{}}}{edge})?", max - 2),
        };
        let trimmed = if self.blank_is_absent { format!("(?:{trimmed})?") } else { trimmed };
        format!("^[{WHITE_SPACE}]*{trimmed}[{WHITE_SPACE}]*$")
    }
}

/// The closest pattern to [`username`] a JSON Schema can state: the check decides by
/// Unicode's Alphabetic and Numeric properties after lower-casing and trimming, which
/// `\p{L}` and `\p{N}` approach from within (a test holds that what the pattern takes,
/// the check takes for the samples it lists).
pub const USERNAME_PATTERN: &str = r"^[\p{L}\p{N}._@-]{3,64}$";

/// An IANA time zone name as a pattern can state it; which names exist, only the
/// server's time zone database knows (`validation_failed` for the others).
pub const TIMEZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$";

/// The contract's schema of a username (request bodies), from [`USERNAME_PATTERN`].
pub fn username_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "3 to 64 letters, digits or `. _ - @` (a phone number works); compared and stored lower-cased. \
             The pattern is the closest a JSON Schema can state: the server decides by Unicode's Alphabetic and \
             Numeric properties after lower-casing, and refuses other names with 400 `validation_failed`.",
        ))
        .pattern(Some(USERNAME_PATTERN))
        .min_length(Some(3))
        .max_length(Some(64))
        .examples(["13800138000", "zhang.guilan"])
        .build()
}

/// The contract's schema of a community's time zone (request bodies), from [`TIMEZONE_PATTERN`].
pub fn timezone_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "Communities only: an IANA time zone name such as `Asia/Shanghai` (the default for a new community). \
             A name that matches the pattern but that the server's time zone database does not know is refused \
             with 400 `validation_failed`.",
        ))
        .pattern(Some(TIMEZONE_PATTERN))
        .min_length(Some(1))
        .max_length(Some(64))
        .examples(["Asia/Shanghai", "Asia/Urumqi", "UTC"])
        .build()
}

/// Usernames are compared case-insensitively: stored lower-cased.
pub fn username(input: &str) -> Result<String, ApiError> {
    let username = input.trim().to_lowercase();
    let chars = username.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if !(3..=64).contains(&chars) || !username.chars().all(allowed) {
        return Err(ApiError::validation("username must be 3 to 64 letters, digits or . _ - @ (a phone number works)"));
    }
    Ok(username)
}

pub fn text(field: &str, input: &str, max_chars: usize) -> Result<String, ApiError> {
    let value = input.trim();
    if value.is_empty() || value.chars().count() > max_chars || value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} must be 1 to {max_chars} characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Like [`text`], but line breaks and tabs are allowed (memos, descriptions).
pub fn multiline_text(field: &str, input: &str, max_chars: usize) -> Result<String, ApiError> {
    let value = input.trim();
    let allowed = |c: char| !c.is_control() || matches!(c, '\n' | '\r' | '\t');
    if value.is_empty() || value.chars().count() > max_chars || !value.chars().all(allowed) {
        return Err(ApiError::validation(format!(
            "{field} must be 1 to {max_chars} characters without control characters other than line breaks"
        )));
    }
    Ok(value.to_owned())
}

/// An optional text: blank counts as absent.
pub fn optional_text(field: &str, input: Option<&str>, max_chars: usize) -> Result<Option<String>, ApiError> {
    match input.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => text(field, value, max_chars).map(Some),
    }
}

/// An optional http(s) URL of at most `max_chars` characters; blank counts as absent.
pub fn url(field: &str, input: Option<&str>, max_chars: usize) -> Result<Option<String>, ApiError> {
    let Some(url) = optional_text(field, input, max_chars)? else { return Ok(None) };
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(char::is_whitespace) {
        return Err(ApiError::validation(format!("{field} must be an http(s) URL")));
    }
    Ok(Some(url))
}

pub fn phone(input: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(phone) = input.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')');
    if !(5..=20).contains(&digits) || phone.len() > 30 || !phone.chars().all(allowed) {
        return Err(ApiError::validation("phone must be 5 to 20 digits, optionally with + - ( ) and spaces"));
    }
    Ok(Some(phone.to_owned()))
}

pub fn household(input: Option<Household>) -> Result<Option<Household>, ApiError> {
    let Some(household) = input else {
        return Ok(None);
    };
    let field = |name: &str, value: Option<String>| {
        optional_text(&format!("household.{name}"), value.as_deref(), MAX_HOUSEHOLD_FIELD_CHARS)
    };
    let household = Household {
        compound: field("compound", household.compound)?,
        building: field("building", household.building)?,
        unit: field("unit", household.unit)?,
        room: field("room", household.room)?,
    };
    Ok((household != Household::default()).then_some(household))
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit null (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_patterns_match_exactly_what_the_checks_accept() {
        let samples = [
            "",
            " ",
            "\t \n",
            "a",
            "ab",
            "abc",
            "abcd",
            " abc ",
            "\ta\r\n",
            "a b",
            "a\nb",
            "a\tb",
            "a\u{0}b",
            "\u{85}x",
            "x\u{9f}",
            "\u{1c}x",
            "\u{feff}",
            "\u{3000}福寓苑\u{3000}",
            "a\u{2028}b",
            "\u{2028}",
            "清理 楼道",
        ];
        for max_chars in [1, 2, 3] {
            for (multiline, blank_is_absent) in [(false, false), (true, false), (false, true)] {
                let rule = TextRule { max_chars, multiline, blank_is_absent, url: false };
                let pattern = regex::Regex::new(&rule.pattern()).unwrap();
                for sample in samples {
                    let accepted = match (multiline, blank_is_absent) {
                        (true, _) => multiline_text("f", sample, max_chars).is_ok(),
                        (false, true) => optional_text("f", Some(sample), max_chars).is_ok(),
                        (false, false) => text("f", sample, max_chars).is_ok(),
                    };
                    assert_eq!(pattern.is_match(sample), accepted, "{sample:?} under {rule:?}");
                }
            }
        }
        let rule = TextRule { max_chars: 12, multiline: false, blank_is_absent: true, url: true };
        let pattern = regex::Regex::new(&rule.pattern()).unwrap();
        for sample in [
            "",
            " ",
            "http://",
            "http://a.cn",
            " https://a.c ",
            "https://a.cn",
            "https://a.cn/",
            "http://a b",
            "ftp://a.cn",
            "http://a.cn/x\u{0}",
            "http://\u{3000}",
        ] {
            let accepted = url("f", Some(sample), 12).is_ok();
            assert_eq!(pattern.is_match(sample), accepted, "{sample:?} under {rule:?}");
        }
    }
}
