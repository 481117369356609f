-- A community's point rules (积分细则): what earns or costs points, how many, how often.
CREATE TABLE rules (
    id             TEXT PRIMARY KEY,
    community_id   TEXT NOT NULL REFERENCES units (id),
    code           TEXT NOT NULL,
    name           TEXT NOT NULL,
    category       TEXT NOT NULL CHECK (category IN ('volunteering', 'environment', 'culture', 'safety', 'civility', 'mutual_aid', 'other')),
    direction      TEXT NOT NULL CHECK (direction IN ('earn', 'deduct')),
    default_points BIGINT NOT NULL,
    min_points     BIGINT NOT NULL,
    max_points     BIGINT NOT NULL,
    -- How many times a resident may be awarded (or charged) under the rule per local day, week, month.
    daily_cap      INTEGER CHECK (daily_cap > 0),
    weekly_cap     INTEGER CHECK (weekly_cap > 0),
    monthly_cap    INTEGER CHECK (monthly_cap > 0),
    active         BOOLEAN NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    UNIQUE (community_id, code),
    CHECK (1 <= min_points AND min_points <= default_points AND default_points <= max_points AND max_points <= 1000000)
);
-- For counting a resident's uses of a rule within a period.
CREATE INDEX ledger_transactions_rule ON ledger_transactions (community_id, rule_code, created_at);
