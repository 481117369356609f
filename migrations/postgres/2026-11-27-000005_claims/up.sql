-- How many undecided claims a resident of the community may have at once.
ALTER TABLE units ADD COLUMN max_open_claims INTEGER CHECK (max_open_claims BETWEEN 1 AND 100);
UPDATE units SET max_open_claims = 5 WHERE kind = 'community';

-- A resident's "I did a good deed", for staff to approve (awarding points) or reject.
CREATE TABLE claims (
    id              TEXT PRIMARY KEY,
    community_id    TEXT NOT NULL REFERENCES units (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    rule_id         TEXT NOT NULL REFERENCES rules (id),
    description     TEXT NOT NULL,
    occurred_at     TIMESTAMP NOT NULL,
    -- JSON array of strings: links or short notes.
    evidence        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    points          BIGINT,
    decided_by      TEXT REFERENCES users (id),
    decided_at      TIMESTAMP,
    decision_reason TEXT,
    transaction_id  TEXT REFERENCES ledger_transactions (id),
    created_at      TIMESTAMP NOT NULL,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK ((status = 'approved') = (transaction_id IS NOT NULL))
);
CREATE INDEX claims_queue ON claims (community_id, status, id);
CREATE INDEX claims_of_user ON claims (user_id, status);
