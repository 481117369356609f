-- Lower-cased "username display_name", computed in Rust (SQL's lower() differs
-- between SQLite and PostgreSQL beyond ASCII), for case-insensitive member search.
ALTER TABLE users ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE users SET search_text = lower(username || ' ' || display_name);
