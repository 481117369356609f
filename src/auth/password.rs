//! Password hashing: argon2id with the argon2 crate's defaults (OWASP's minimum,
//! m=19456 KiB, t=2, p=1), PHC strings, rehash on login when weaker.
//! Hashing is CPU-heavy: callers run these functions off the async workers.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};

use crate::error::ApiError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

pub fn validate_new_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::validation(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).map_err(ApiError::internal)
}

pub enum Verification {
    Mismatch,
    Match { needs_rehash: bool },
}

/// Verifies with the parameters stored in the hash, so hashes made with older
/// settings still verify and can be upgraded.
pub fn verify(password: &str, stored: &str) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verification::Mismatch;
    };
    if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
        return Verification::Mismatch;
    }
    Verification::Match { needs_rehash: is_weaker_than_default(&parsed) }
}

/// A hash with today's parameters of a password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$z5zc1BjHrXoQK3Zeft6g4w$/kmfhj18RA3BzguWEmB5hQNRZ3uAc8vJU/4WM4Jq/6I";

/// Spends the same effort as a real verification, for unknown users, so that the
/// response time does not reveal which usernames exist.
pub fn verify_dummy(password: &str) {
    let _ = verify(password, DUMMY_HASH);
}

fn is_weaker_than_default(hash: &PasswordHash<'_>) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    let Ok(params) = Params::try_from(hash) else {
        return true;
    };
    let default = Params::default();
    params.m_cost() < default.m_cost() || params.t_cost() < default.t_cost() || params.p_cost() < default.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(matches!(verify("correct horse", &stored), Verification::Match { needs_rehash: false }));
        assert!(matches!(verify("wrong horse", &stored), Verification::Mismatch));
    }

    #[test]
    fn the_dummy_hash_has_todays_parameters() {
        assert!(matches!(
            verify("jifen dummy password for timing", DUMMY_HASH),
            Verification::Match { needs_rehash: false }
        ));
    }

    #[test]
    fn weaker_hashes_are_flagged_for_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, Params::new(4096, 1, 1, None).unwrap())
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(matches!(verify("correct horse", &weak), Verification::Match { needs_rehash: true }));
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(validate_new_password("短密码").is_err());
        assert!(validate_new_password("八个字的中文密码").is_ok());
        assert!(validate_new_password(&"x".repeat(129)).is_err());
        assert!(validate_new_password(&"x".repeat(128)).is_ok());
    }
}
