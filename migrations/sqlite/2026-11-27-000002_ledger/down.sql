DROP TABLE idempotency_keys;
DROP TABLE lot_movements;
DROP TABLE lots;
DROP TABLE ledger_postings;
DROP TABLE ledger_transactions;
DROP TABLE ledger_heads;
DROP TABLE accounts;
ALTER TABLE units DROP COLUMN expiry_days;
ALTER TABLE units DROP COLUMN expiry_policy;
