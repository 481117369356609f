-- The raw reference schema of sql/schema.sql in SQLite's words.
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY,
  balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE rewards (
  id INTEGER PRIMARY KEY,
  cost INTEGER NOT NULL,
  stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE TABLE ledger_entries (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL,
  delta INTEGER NOT NULL,
  reward_id INTEGER REFERENCES rewards(id),
  reason TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX ledger_entries_account_id_id ON ledger_entries(account_id, id);
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 10000)
INSERT INTO accounts(id, balance) SELECT x, 1000000 FROM g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 100)
INSERT INTO rewards(id, cost, stock) SELECT x, 10, 100000000 FROM g;
