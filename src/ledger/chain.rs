//! The tamper-evident hash chain of a community's ledger (see docs/ledger-hash-chain.md):
//! `hash = SHA-256(previous hash ‖ canonical bytes of the transaction with its postings)`.

use chrono::NaiveDateTime;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ledger::model::{LedgerTransaction, Posting};

/// The "previous hash" of a community's first transaction: 32 zero bytes.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Serialize)]
struct CanonicalPosting<'a> {
    line: i32,
    account_id: &'a str,
    amount: i64,
}

/// Field order and formats are part of the specification: do not change them.
#[derive(Serialize)]
struct CanonicalTransaction<'a> {
    version: u8,
    community_id: &'a str,
    sequence: i64,
    id: &'a str,
    kind: &'a str,
    rule_code: Option<&'a str>,
    memo: &'a str,
    actor_id: Option<&'a str>,
    cause_type: Option<&'a str>,
    cause_id: Option<&'a str>,
    reverses_id: Option<&'a str>,
    created_at: String,
    postings: Vec<CanonicalPosting<'a>>,
}

/// `2026-11-27T02:00:00.000000Z`: UTC, always six fractional digits.
pub fn canonical_time(time: NaiveDateTime) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The UTF-8 JSON the hash covers: keys in the order above, no spaces, non-ASCII
/// characters unescaped, postings in line order.
pub fn canonical_bytes(transaction: &LedgerTransaction, postings: &[Posting]) -> Vec<u8> {
    let mut postings: Vec<&Posting> = postings.iter().collect();
    postings.sort_by_key(|posting| posting.line);
    let canonical = CanonicalTransaction {
        version: 1,
        community_id: &transaction.community_id,
        sequence: transaction.sequence,
        id: &transaction.id,
        kind: &transaction.kind,
        rule_code: transaction.rule_code.as_deref(),
        memo: &transaction.memo,
        actor_id: transaction.actor_id.as_deref(),
        cause_type: transaction.cause_type.as_deref(),
        cause_id: transaction.cause_id.as_deref(),
        reverses_id: transaction.reverses_id.as_deref(),
        created_at: canonical_time(transaction.created_at),
        postings: postings
            .into_iter()
            .map(|posting| CanonicalPosting {
                line: posting.line,
                account_id: &posting.account_id,
                amount: posting.amount,
            })
            .collect(),
    };
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// The transaction's hash, chained to `previous_hash` (lowercase hex of 32 bytes).
pub fn chained_hash(previous_hash: &str, transaction: &LedgerTransaction, postings: &[Posting]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(decode_hex(previous_hash));
    hasher.update(canonical_bytes(transaction, postings));
    encode_hex(&hasher.finalize())
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Invalid hex (a tampered row) decodes to something that cannot match.
fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| hex.get(2 * i..2 * i + 2))
        .map(|pair| u8::from_str_radix(pair, 16).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (LedgerTransaction, Vec<Posting>) {
        let created_at = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap().and_hms_micro_opt(2, 0, 0, 5).unwrap();
        let transaction = LedgerTransaction {
            id: "t1".into(),
            community_id: "c1".into(),
            sequence: 1,
            kind: "award".into(),
            rule_code: None,
            memo: "清理楼道 \"quoted\"\n".into(),
            actor_id: Some("u0".into()),
            cause_type: None,
            cause_id: None,
            reverses_id: None,
            created_at,
            previous_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let postings = vec![
            Posting { transaction_id: "t1".into(), line: 2, account_id: "a2".into(), amount: 10 },
            Posting { transaction_id: "t1".into(), line: 1, account_id: "a1".into(), amount: -10 },
        ];
        (transaction, postings)
    }

    #[test]
    fn canonical_bytes_are_as_documented() {
        let (transaction, postings) = example();
        assert_eq!(
            String::from_utf8(canonical_bytes(&transaction, &postings)).unwrap(),
            r#"{"version":1,"community_id":"c1","sequence":1,"id":"t1","kind":"award","rule_code":null,"memo":"清理楼道 \"quoted\"\n","actor_id":"u0","cause_type":null,"cause_id":null,"reverses_id":null,"created_at":"2026-11-27T02:00:00.000005Z","postings":[{"line":1,"account_id":"a1","amount":-10},{"line":2,"account_id":"a2","amount":10}]}"#
        );
    }

    #[test]
    fn the_hash_covers_the_previous_hash_and_every_field() {
        let (transaction, postings) = example();
        let hash = chained_hash(GENESIS_HASH, &transaction, &postings);
        // The value docs/ledger-hash-chain.md computes with Python for this example.
        assert_eq!(hash, "bc40f04aa64b9de281c4fb09d7247a7b2f432746bac8cb6de94570e147f6e150");
        assert_ne!(chained_hash(&hash, &transaction, &postings), hash);
        let mut changed = postings.clone();
        changed[0].amount = 11;
        assert_ne!(chained_hash(GENESIS_HASH, &transaction, &changed), hash);
    }
}
