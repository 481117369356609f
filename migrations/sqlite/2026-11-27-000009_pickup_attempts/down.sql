ALTER TABLE redemptions DROP COLUMN pickup_locked_until;
ALTER TABLE redemptions DROP COLUMN pickup_failures;
