-- Wrong pickup codes tried for an order: after five, the counter is locked for 15 minutes.
ALTER TABLE redemptions ADD COLUMN pickup_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE redemptions ADD COLUMN pickup_locked_until TIMESTAMP;
