-- Who did what, where, from where and how it ended: every state-changing request
-- by staff or admins, every sign-in and every export. unit_id and target_id are
-- whatever the request named, so they carry no foreign key: a probe for another
-- community's ids is recorded too. unit_path is the unit's path when it exists,
-- so that a street's auditors find the records of every community below it.
CREATE TABLE audit_records (
    id TEXT PRIMARY KEY NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    actor_id TEXT REFERENCES users (id),
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    unit_id TEXT,
    unit_path TEXT,
    request_id TEXT NOT NULL,
    client_ip TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'replayed', 'refused', 'failed')),
    code TEXT
);
CREATE INDEX audit_records_actor ON audit_records (actor_id, id);

-- Append-only, like the ledger.
CREATE FUNCTION jifen_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'jifen: % on % is not allowed: the audit log is append-only', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION jifen_audit_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION jifen_audit_append_only();
