//! Wire types of the ledger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ledger::model::{Account, AccountKind, LedgerTransaction, Posting, TransactionKind};

/// Points in one request: 1 to 1,000,000.
pub const MAX_POINTS: i64 = 1_000_000;
/// Residents in one award.
pub const MAX_AWARD_LINES: usize = 1_000;
pub const MAX_MEMO_CHARS: usize = 500;
pub const MAX_RULE_CODE_CHARS: usize = 64;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwardLine {
    pub user_id: Uuid,
    /// Within the rule's range; default: the rule's default points.
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "rule_code": "corridor_cleanup",
    "memo": "清理楼道杂物 3号楼",
    "awards": [
        {"user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f", "points": 10},
        {"user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e60", "points": 10}
    ]
}))]
pub struct AwardRequest {
    /// An active `earn` rule of the community; its range and caps apply to every line.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_RULE_CODE_CHARS}))))]
    pub rule_code: String,
    /// 1 to 500 characters: why the points are given.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_MEMO_CHARS, "multiline": true}))))]
    pub memo: String,
    /// 1 to 1,000 residents, each once.
    pub awards: Vec<AwardLine>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "points": 5,
    "rule_code": "littering",
    "memo": "高空抛物"
}))]
pub struct DeductionRequest {
    pub user_id: Uuid,
    /// Within the rule's range; default: the rule's default points.
    #[schema(minimum = 1, maximum = 1000000)]
    pub points: Option<i64>,
    /// An active `deduct` rule of the community.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_RULE_CODE_CHARS}))))]
    pub rule_code: String,
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_MEMO_CHARS, "multiline": true}))))]
    pub memo: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"memo": "recorded for the wrong resident"}))]
pub struct ReversalRequest {
    /// Why the transaction is being reversed.
    #[schema(extensions(("x-text" = json!({"max_chars": MAX_MEMO_CHARS, "multiline": true}))))]
    pub memo: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostingResponse {
    pub line: i32,
    #[schema(format = Uuid)]
    pub account_id: String,
    pub account_kind: AccountKind,
    /// The resident, for resident accounts.
    #[schema(format = Uuid)]
    pub user_id: Option<String>,
    /// Positive adds points to the account, negative takes them away.
    pub amount: i64,
}

impl PostingResponse {
    pub fn new(posting: &Posting, account: &Account) -> Self {
        PostingResponse {
            line: posting.line,
            account_id: posting.account_id.clone(),
            account_kind: account.kind(),
            user_id: account.user_id.clone(),
            amount: posting.amount,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f6b0-0000-7000-8000-000000000001",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "sequence": 42,
    "kind": "award",
    "rule_code": "corridor_cleanup",
    "memo": "清理楼道杂物 3号楼",
    "actor_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e00",
    "cause_type": null,
    "cause_id": null,
    "reverses_id": null,
    "reversed_by": null,
    "created_at": "2026-11-27T02:30:00.123456Z",
    "postings": [
        {"line": 1, "account_id": "0193f6a2-0000-7000-8000-00000000000a", "account_kind": "issuance", "user_id": null, "amount": -10},
        {"line": 2, "account_id": "0193f6a2-0000-7000-8000-00000000000b", "account_kind": "resident", "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f", "amount": 10}
    ],
    "previous_hash": "5d41402abc4b2a76b9719d911017c592b2c3e1f6a8d7c9e0f1a2b3c4d5e6f708",
    "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
}))]
pub struct TransactionResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    /// Position in the community's hash chain: 1, 2, 3, ... without gaps.
    pub sequence: i64,
    pub kind: TransactionKind,
    pub rule_code: Option<String>,
    pub memo: String,
    /// Who recorded it; null for the system (expiry).
    #[schema(format = Uuid)]
    pub actor_id: Option<String>,
    /// What caused it (e.g. `activity`, `claim`, `redemption`), if anything.
    pub cause_type: Option<String>,
    pub cause_id: Option<String>,
    /// For a reversal: the transaction it reverses.
    #[schema(format = Uuid)]
    pub reverses_id: Option<String>,
    /// The reversal of this transaction, if it has been reversed.
    #[schema(format = Uuid)]
    pub reversed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Residents see only their own posting.
    pub postings: Vec<PostingResponse>,
    /// Lowercase hex SHA-256 (see docs/ledger-hash-chain.md).
    pub previous_hash: String,
    pub hash: String,
}

impl TransactionResponse {
    pub fn new(transaction: LedgerTransaction, postings: Vec<PostingResponse>, reversed_by: Option<String>) -> Self {
        TransactionResponse {
            kind: TransactionKind::parse(&transaction.kind).unwrap_or(TransactionKind::Award),
            id: transaction.id,
            community_id: transaction.community_id,
            sequence: transaction.sequence,
            rule_code: transaction.rule_code,
            memo: transaction.memo,
            actor_id: transaction.actor_id,
            cause_type: transaction.cause_type,
            cause_id: transaction.cause_id,
            reverses_id: transaction.reverses_id,
            reversed_by,
            created_at: transaction.created_at.and_utc(),
            postings,
            previous_hash: transaction.previous_hash,
            hash: transaction.hash,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionListQuery {
    /// Only transactions touching this resident's account (residents always see only their own).
    pub user_id: Option<Uuid>,
    pub kind: Option<TransactionKind>,
    /// From this time on (inclusive), RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Before this time (exclusive), RFC 3339.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringPoints {
    pub expires_at: DateTime<Utc>,
    pub points: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "0193f6a2-6c2d-7e4f-a000-0a1b2c3d4e5f",
    "community_id": "0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f",
    "balance": 120,
    "held": 0,
    "lifetime_earned": 150,
    "lifetime_spent": 30,
    "expiring": [{"expires_at": "2026-12-31T16:00:00Z", "points": 40}]
}))]
pub struct AccountResponse {
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(format = Uuid)]
    pub community_id: String,
    /// Points available to spend.
    pub balance: i64,
    /// Points held for pending redemptions.
    pub held: i64,
    /// Points awarded, net of reversed awards.
    pub lifetime_earned: i64,
    /// Points spent in the points shop, net of refunds.
    pub lifetime_spent: i64,
    /// Points that will expire within the next 30 days, soonest first.
    pub expiring: Vec<ExpiringPoints>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainHead {
    /// Number of transactions in the chain.
    pub sequence: i64,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "ok": true,
    "transactions_checked": 42,
    "first_bad_sequence": null,
    "head": {"sequence": 42, "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
}))]
pub struct VerifyResponse {
    /// True when every transaction's hash recomputes and links to its predecessor.
    pub ok: bool,
    pub transactions_checked: i64,
    /// The first sequence number whose transaction does not match its hash or is missing.
    pub first_bad_sequence: Option<i64>,
    /// The checkpoint to write down: a later verification that reaches the same head proves nothing before it changed.
    pub head: ChainHead,
}
