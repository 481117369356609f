DROP TABLE redemptions;
DELETE FROM accounts WHERE kind = 'hold';
ALTER TABLE units DROP COLUMN pickup_window_days;
