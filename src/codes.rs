//! Short codes people read aloud or type: no look-alike characters (0/O, 1/I/L).

use rand::Rng;
use rand::rngs::OsRng;

const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A code of `len` characters from a CSPRNG (31 symbols: ~4.95 bits each).
pub fn random_code(len: usize) -> String {
    (0..len).map(|_| ALPHABET[OsRng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// A fresh random code of `len` characters that `taken` does not know yet; None if ten
/// draws in a row were taken (with 31^len codes, that means something else is wrong).
pub fn unused_code<E>(len: usize, mut taken: impl FnMut(&str) -> Result<bool, E>) -> Result<Option<String>, E> {
    for _ in 0..10 {
        let code = random_code(len);
        if !taken(&code)? {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// Upper-cases and drops spaces and dashes, so "ab3-k7 pq" matches "AB3K7PQ".
pub fn normalize_code(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// Whether `code` (normalised) could have been made by [`random_code`].
pub fn is_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|b| ALPHABET.contains(&b))
}

/// A code of one character per byte, for codes derived from a MAC.
pub fn code_from_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}
