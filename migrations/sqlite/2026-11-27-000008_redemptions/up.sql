-- Days a resident has to collect an order before it is cancelled and the points return.
ALTER TABLE units ADD COLUMN pickup_window_days INTEGER CHECK (pickup_window_days BETWEEN 1 AND 365);
UPDATE units SET pickup_window_days = 14 WHERE kind = 'community';

-- Each community's hold account: points of orders not yet handed over.
INSERT INTO accounts (id, community_id, kind, user_id, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))), id, 'hold', NULL, strftime('%Y-%m-%d %H:%M:%f', 'now') FROM units WHERE kind = 'community';

-- An order in the points shop: points held at order, posted at handover, returned on cancellation.
CREATE TABLE redemptions (
    id                    TEXT PRIMARY KEY,
    community_id          TEXT NOT NULL REFERENCES units (id),
    user_id               TEXT NOT NULL REFERENCES users (id),
    reward_id             TEXT NOT NULL REFERENCES rewards (id),
    quantity              INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    points                BIGINT NOT NULL CHECK (points > 0),
    status                TEXT NOT NULL CHECK (status IN ('pending', 'fulfilled', 'cancelled')),
    pickup_code           TEXT NOT NULL,
    -- The resident, or staff ordering for a resident without a phone.
    ordered_by            TEXT NOT NULL REFERENCES users (id),
    hold_transaction_id   TEXT NOT NULL REFERENCES ledger_transactions (id),
    -- The redemption (handover) or the refund (cancellation).
    settle_transaction_id TEXT REFERENCES ledger_transactions (id),
    -- NULL when the system cancelled an uncollected order.
    resolved_by           TEXT REFERENCES users (id),
    resolved_at           TIMESTAMP,
    created_at            TIMESTAMP NOT NULL,
    UNIQUE (community_id, pickup_code),
    CHECK ((status = 'pending') = (settle_transaction_id IS NULL))
);
CREATE INDEX redemptions_of_user ON redemptions (user_id, reward_id, created_at);
CREATE INDEX redemptions_queue ON redemptions (community_id, status, id);
