-- The points shop (积分超市): what residents can spend their points on.
CREATE TABLE rewards (
    id                 TEXT PRIMARY KEY,
    community_id       TEXT NOT NULL REFERENCES units (id),
    name               TEXT NOT NULL,
    description        TEXT NOT NULL,
    image_url          TEXT,
    cost               BIGINT NOT NULL CHECK (cost BETWEEN 1 AND 1000000),
    -- Items left; NULL: unlimited.
    stock              INTEGER CHECK (stock >= 0),
    -- At most this many per resident per local period.
    limit_per_resident INTEGER CHECK (limit_per_resident > 0),
    limit_period       TEXT CHECK (limit_period IN ('day', 'week', 'month', 'year')),
    available_from     TIMESTAMP,
    available_until    TIMESTAMP,
    active             BOOLEAN NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    CHECK ((limit_per_resident IS NULL) = (limit_period IS NULL))
);
CREATE INDEX rewards_catalogue ON rewards (community_id, id);
