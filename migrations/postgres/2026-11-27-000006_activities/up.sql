-- Activities (活动): published by staff, signed up for and attended by residents,
-- who are paid under the activity's rule when staff complete it.
CREATE TABLE activities (
    id                    TEXT PRIMARY KEY,
    community_id          TEXT NOT NULL REFERENCES units (id),
    rule_id               TEXT NOT NULL REFERENCES rules (id),
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL,
    location              TEXT NOT NULL,
    points                BIGINT NOT NULL CHECK (points > 0),
    starts_at             TIMESTAMP NOT NULL,
    ends_at               TIMESTAMP NOT NULL,
    capacity              INTEGER CHECK (capacity > 0),
    signup_deadline       TIMESTAMP NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('draft', 'published', 'completed', 'cancelled')),
    -- Sign-ups, kept here so the capacity check is one guarded UPDATE.
    registered            INTEGER NOT NULL DEFAULT 0 CHECK (registered >= 0 AND (capacity IS NULL OR registered <= capacity)),
    -- Seeds the rotating check-in codes.
    check_in_secret       TEXT NOT NULL,
    award_transaction_id  TEXT REFERENCES ledger_transactions (id),
    created_by            TEXT NOT NULL REFERENCES users (id),
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    CHECK (starts_at < ends_at)
);
CREATE INDEX activities_calendar ON activities (community_id, starts_at, id);

CREATE TABLE activity_registrations (
    activity_id     TEXT NOT NULL REFERENCES activities (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    registered_at   TIMESTAMP NOT NULL,
    checked_in_at   TIMESTAMP,
    check_in_method TEXT CHECK (check_in_method IN ('code', 'staff')),
    PRIMARY KEY (activity_id, user_id)
);
