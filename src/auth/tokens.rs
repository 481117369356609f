//! Access tokens (HS256 JWTs, RFC 8725 rules) and refresh tokens (opaque).
//!
//! Both keys are derived from the configured secret with distinct labels, so a
//! token of one kind can never verify as the other.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;

pub const ISSUER: &str = "jifen";
pub const AUDIENCE: &str = "jifen-api";
/// The JOSE `typ` of access tokens (RFC 9068); jsonwebtoken does not check it, we do.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
pub const ACCESS_TOKEN_USE: &str = "access";
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(15);
pub const REFRESH_TOKEN_TTL: Duration = Duration::days(30);
/// Tolerated clock skew between this server and others that issue tokens with the same secret.
pub const LEEWAY_SECONDS: i64 = 30;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// Which kind of token this is; only "access" is accepted as a bearer token.
    pub token_use: String,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    refresh_mac_key: Vec<u8>,
    validation: Validation,
}

fn derive_key(secret: &[u8], label: &str) -> Vec<u8> {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let access_key = derive_key(secret, "jifen access token signing key v1");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // exp and nbf are checked in `verify_access` against the service's
        // injectable clock; jsonwebtoken would read the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = LEEWAY_SECONDS.unsigned_abs();
        TokenKeys {
            encoding: EncodingKey::from_secret(&access_key),
            decoding: DecodingKey::from_secret(&access_key),
            refresh_mac_key: derive_key(secret, "jifen refresh token mac key v1"),
            validation,
        }
    }

    /// Deterministic for given inputs, so a retried refresh can hand out the very
    /// same token again.
    pub fn issue_access(&self, user_id: &str, jti: &str, issued_at: DateTime<Utc>) -> Result<String, ApiError> {
        let iat = issued_at.timestamp();
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            exp: iat + ACCESS_TOKEN_TTL.num_seconds(),
            nbf: iat,
            iat,
            jti: jti.to_owned(),
            token_use: ACCESS_TOKEN_USE.to_owned(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(ApiError::internal)
    }

    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, ApiError> {
        let invalid = || ApiError::unauthorized("the access token is invalid or expired");
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|_| invalid())?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) || data.claims.token_use != ACCESS_TOKEN_USE {
            return Err(invalid());
        }
        let now = now.timestamp();
        if data.claims.exp + LEEWAY_SECONDS <= now || data.claims.nbf - LEEWAY_SECONDS > now {
            return Err(invalid());
        }
        Ok(data.claims)
    }

    /// `<id>.<HMAC of id>`: opaque to clients, and nothing in the database alone
    /// lets anyone rebuild a usable token.
    pub fn refresh_token(&self, id: &str) -> String {
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(self.refresh_mac(id).finalize().into_bytes()))
    }

    /// The token's id if its MAC is right (compared in constant time).
    pub fn parse_refresh_token(&self, token: &str) -> Option<String> {
        let (id, mac) = token.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.refresh_mac(id).verify_slice(&mac).ok()?;
        Some(id.to_owned())
    }

    fn refresh_mac(&self, id: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.refresh_mac_key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn access_tokens_round_trip_and_are_deterministic() {
        let keys = TokenKeys::new(SECRET);
        let now = Utc::now();
        let token = keys.issue_access("u1", "j1", now).unwrap();
        assert_eq!(token, keys.issue_access("u1", "j1", now).unwrap());
        let claims = keys.verify_access(&token, now).unwrap();
        assert_eq!(claims.sub, "u1");
        assert!(keys.verify_access(&token, now + ACCESS_TOKEN_TTL + Duration::seconds(LEEWAY_SECONDS)).is_err());
        assert!(keys.verify_access(&token, now + ACCESS_TOKEN_TTL).is_ok(), "within the leeway");
        assert!(keys.verify_access(&token, now - Duration::seconds(LEEWAY_SECONDS + 1)).is_err(), "not yet valid");
        assert!(TokenKeys::new(b"another secret of thirty-two bytes!").verify_access(&token, now).is_err());
    }

    #[test]
    fn refresh_tokens_carry_a_mac() {
        let keys = TokenKeys::new(SECRET);
        let token = keys.refresh_token("abc");
        assert_eq!(keys.parse_refresh_token(&token).as_deref(), Some("abc"));
        assert_eq!(keys.parse_refresh_token(&token.replace("abc", "abd")), None);
        assert_eq!(keys.parse_refresh_token("abc"), None);
        assert_eq!(keys.parse_refresh_token(&token), keys.parse_refresh_token(&keys.refresh_token("abc")));
    }
}
