DROP INDEX lots_open;
CREATE INDEX lots_open ON lots (account_id, expires_at) WHERE remaining > 0;
