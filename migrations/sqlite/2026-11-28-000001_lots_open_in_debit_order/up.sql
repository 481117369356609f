-- Debits take open lots soonest expiry first, then oldest: with earned_at and id in the index
-- too, a debit reads its first lots in that order instead of sorting all of an account's open lots.
DROP INDEX lots_open;
CREATE INDEX lots_open ON lots (account_id, expires_at, earned_at, id) WHERE remaining > 0;
