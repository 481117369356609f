-- The raw reference schema (from shared/reference/perf.md §2.1); VACUUM ANALYZE runs apart from it.
DROP TABLE IF EXISTS ledger_entries, accounts, rewards;
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rewards (
  id bigint PRIMARY KEY,
  cost bigint NOT NULL,
  stock integer NOT NULL CHECK (stock >= 0)
);
CREATE TABLE ledger_entries (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  kind text NOT NULL,            -- 'award' | 'redeem'
  delta bigint NOT NULL,
  reward_id bigint REFERENCES rewards(id),
  reason text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_account_id_id ON ledger_entries(account_id, id);
INSERT INTO accounts(id, balance) SELECT g, 1000000 FROM generate_series(1,10000) g;
INSERT INTO rewards(id, cost, stock) SELECT g, 10, 100000000 FROM generate_series(1,100) g;
