DROP TABLE claims;
ALTER TABLE units DROP COLUMN max_open_claims;
