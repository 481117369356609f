-- Expiry policy of a community's points: 'never', 'days' (expiry_days after earning) or 'year_end'
-- (points earned in year Y expire at the end of year Y+1), at local midnight in the community's time zone.
ALTER TABLE units ADD COLUMN expiry_policy TEXT CHECK (expiry_policy IN ('never', 'days', 'year_end'));
ALTER TABLE units ADD COLUMN expiry_days INTEGER CHECK (expiry_days BETWEEN 1 AND 3650);
UPDATE units SET expiry_policy = 'never' WHERE kind = 'community';

-- Per community: one account per resident, and the system accounts. Balances are
-- materialised here and changed only in the transaction that writes their postings.
CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL REFERENCES units (id),
    kind         TEXT NOT NULL CHECK (kind IN ('resident', 'issuance', 'redemption', 'expiry', 'penalty', 'hold')),
    user_id      TEXT REFERENCES users (id),
    -- Available points.
    balance      BIGINT NOT NULL DEFAULT 0,
    -- Points held for pending redemptions.
    held         BIGINT NOT NULL DEFAULT 0,
    -- Running totals for residents: awards net of their reversals, and redemptions net of refunds.
    earned       BIGINT NOT NULL DEFAULT 0,
    spent        BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL,
    CHECK ((kind = 'resident') = (user_id IS NOT NULL)),
    -- The last line of defence: a resident's points never go below zero.
    CHECK (kind <> 'resident' OR (balance >= 0 AND held >= 0))
);
CREATE UNIQUE INDEX accounts_resident ON accounts (community_id, user_id) WHERE kind = 'resident';
CREATE UNIQUE INDEX accounts_system ON accounts (community_id, kind) WHERE kind <> 'resident';

-- The head of each community's hash chain; its row lock orders the community's ledger writes.
CREATE TABLE ledger_heads (
    community_id TEXT PRIMARY KEY REFERENCES units (id),
    sequence     BIGINT NOT NULL,
    hash         TEXT NOT NULL
);

CREATE TABLE ledger_transactions (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES units (id),
    sequence      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    rule_code     TEXT,
    memo          TEXT NOT NULL,
    -- NULL for what the system does by itself (expiry).
    actor_id      TEXT REFERENCES users (id),
    cause_type    TEXT,
    cause_id      TEXT,
    -- A transaction is reversed at most once.
    reverses_id   TEXT UNIQUE REFERENCES ledger_transactions (id),
    created_at    TIMESTAMP NOT NULL,
    previous_hash TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (community_id, sequence)
);
CREATE INDEX ledger_transactions_kind ON ledger_transactions (community_id, kind, sequence);
CREATE INDEX ledger_transactions_time ON ledger_transactions (community_id, created_at);

CREATE TABLE ledger_postings (
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    line           INTEGER NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    -- Positive adds to the account, negative takes from it; a transaction's postings sum to zero.
    amount         BIGINT NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (transaction_id, line)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, transaction_id);

-- Every credit to a resident is a lot with its own expiry; debits consume the oldest-expiring lots first.
CREATE TABLE lots (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    remaining      BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    earned_at      TIMESTAMP NOT NULL,
    expires_at     TIMESTAMP
);
CREATE INDEX lots_open ON lots (account_id, expires_at) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0;
CREATE INDEX lots_transaction ON lots (transaction_id);

-- Which lots a transaction took points from (positive) or gave points back to (negative).
CREATE TABLE lot_movements (
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    lot_id         TEXT NOT NULL REFERENCES lots (id),
    amount         BIGINT NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (transaction_id, lot_id)
);

-- Idempotency-Key records, written in the same transaction as the effect they record.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL REFERENCES users (id),
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    location    TEXT,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Communities that existed before the ledger get their chain head and accounts now.
INSERT INTO ledger_heads (community_id, sequence, hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM units WHERE kind = 'community';
INSERT INTO accounts (id, community_id, kind, user_id, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))), units.id, kinds.kind, NULL, strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM units CROSS JOIN (SELECT 'issuance' AS kind UNION ALL SELECT 'redemption' UNION ALL SELECT 'expiry' UNION ALL SELECT 'penalty') AS kinds
WHERE units.kind = 'community';
INSERT INTO accounts (id, community_id, kind, user_id, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))), unit_id, 'resident', user_id, strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM memberships WHERE is_resident AND status = 'active';

-- The ledger is append-only: corrections are new, linked transactions.
CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'jifen: UPDATE on ledger_transactions is not allowed: the ledger is append-only'); END;
CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'jifen: DELETE on ledger_transactions is not allowed: the ledger is append-only'); END;
CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
BEGIN SELECT RAISE(ABORT, 'jifen: UPDATE on ledger_postings is not allowed: the ledger is append-only'); END;
CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
BEGIN SELECT RAISE(ABORT, 'jifen: DELETE on ledger_postings is not allowed: the ledger is append-only'); END;
CREATE TRIGGER lot_movements_no_update BEFORE UPDATE ON lot_movements
BEGIN SELECT RAISE(ABORT, 'jifen: UPDATE on lot_movements is not allowed: the ledger is append-only'); END;
CREATE TRIGGER lot_movements_no_delete BEFORE DELETE ON lot_movements
BEGIN SELECT RAISE(ABORT, 'jifen: DELETE on lot_movements is not allowed: the ledger is append-only'); END;
