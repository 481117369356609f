DROP INDEX ledger_transactions_rule;
DROP TABLE rules;
