-- Organisation units: platform -> district -> street -> community.
CREATE TABLE units (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('platform', 'district', 'street', 'community')),
    parent_id   TEXT REFERENCES units (id),
    -- '/<root id>/<district id>/.../<own id>/': a grant on a unit covers every unit whose path starts with its path.
    path        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    timezone    TEXT,
    join_code   TEXT UNIQUE,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    CHECK ((kind = 'platform') = (parent_id IS NULL)),
    CHECK ((kind = 'community') = (timezone IS NOT NULL AND join_code IS NOT NULL))
);
CREATE UNIQUE INDEX units_parent_name ON units (parent_id, name);
CREATE UNIQUE INDEX units_single_platform ON units (kind) WHERE kind = 'platform';

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    phone               TEXT,
    password_hash       TEXT NOT NULL,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        TIMESTAMP,
    password_changed_at TIMESTAMP NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);

-- A user's roles on one unit. Roles apply to the unit and every unit below it.
CREATE TABLE memberships (
    id                 TEXT PRIMARY KEY,
    unit_id            TEXT NOT NULL REFERENCES units (id),
    user_id            TEXT NOT NULL REFERENCES users (id),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'active', 'suspended')),
    is_admin           BOOLEAN NOT NULL,
    is_staff           BOOLEAN NOT NULL,
    is_auditor         BOOLEAN NOT NULL,
    is_resident        BOOLEAN NOT NULL,
    household_compound TEXT,
    household_building TEXT,
    household_unit     TEXT,
    household_room     TEXT,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    UNIQUE (unit_id, user_id),
    CHECK (is_admin OR is_staff OR is_auditor OR is_resident)
);
CREATE INDEX memberships_user ON memberships (user_id);
-- A resident lives in one community.
CREATE UNIQUE INDEX memberships_one_residence ON memberships (user_id) WHERE is_resident;

-- Refresh tokens are opaque to clients ('<id>.<mac>'); only the id is stored.
CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    access_jti  TEXT NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    replaced_by TEXT,
    revoked_at  TIMESTAMP
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
-- Access tokens are valid only while the session (token family) that issued them is.
CREATE UNIQUE INDEX refresh_tokens_access_jti ON refresh_tokens (access_jti);
