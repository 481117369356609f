DROP TABLE audit_records;
DROP FUNCTION jifen_audit_append_only();
