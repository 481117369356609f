//! Checks of free-text input shared by the endpoints. Each returns the cleaned
//! value (trimmed) or a 400 naming the field.

use crate::error::ApiError;
use crate::units::model::Household;

pub const MAX_NAME_CHARS: usize = 100;
const MAX_HOUSEHOLD_FIELD_CHARS: usize = 50;

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
