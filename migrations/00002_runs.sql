-- +goose Up
-- The Locust run calendar: runs scheduled ahead (one-off or recurring) and
-- live leases taken by running tests. A run's uses names the policies whose
-- credentials it uses, or tag:NAME for every policy with that tag; tags are
-- expanded when the calendar is read, so a policy tagged later is covered.
-- No column ever holds a credential value.

-- One row per run. A cancelled run keeps its row (cancelled_at, cancelled_by)
-- for the record; only runs with no cancelled_at block rotations.
CREATE TABLE runs (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (name <> ''),
    kind         text NOT NULL CHECK (kind IN ('one_off', 'recurring')),
    -- one_off: busy [start_at, start_at + duration).
    start_at     timestamptz,
    -- recurring: busy [fire, fire + duration) at every fire of cron_spec in
    -- timezone ('' means UTC).
    cron_spec    text,
    timezone     text,
    duration     interval NOT NULL CHECK (duration > interval '0'),
    uses         text[] NOT NULL CHECK (cardinality(uses) > 0),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    cancelled_by text,
    CHECK (kind <> 'one_off' OR (start_at IS NOT NULL AND cron_spec IS NULL AND timezone IS NULL)),
    CHECK (kind <> 'recurring' OR (start_at IS NULL AND cron_spec IS NOT NULL AND timezone IS NOT NULL)),
    CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL))
);

-- A name identifies one active run: `swarmkey runs cancel NAME` must know
-- which. A cancelled run's name may be reused.
CREATE UNIQUE INDEX runs_active_name ON runs (name) WHERE cancelled_at IS NULL;

-- One row per lease: a Locust run that is live now (`swarmkey exec`, the
-- Locust plugin). It is busy from started_at until ended_at, or, while it has
-- none, until last_heartbeat + ttl; past that it has expired and blocks
-- nothing. run_name is the holder's label for the run and need not name a
-- row of runs.
CREATE TABLE leases (
    id             uuid PRIMARY KEY,
    run_name       text NOT NULL CHECK (run_name <> ''),
    uses           text[] NOT NULL CHECK (cardinality(uses) > 0),
    holder         text NOT NULL CHECK (holder <> ''),
    started_at     timestamptz NOT NULL,
    last_heartbeat timestamptz NOT NULL,
    ttl            interval NOT NULL CHECK (ttl > interval '0'),
    ended_at       timestamptz
);
CREATE INDEX leases_live ON leases (last_heartbeat) WHERE ended_at IS NULL;
CREATE INDEX leases_ended ON leases (ended_at) WHERE ended_at IS NOT NULL;

-- +goose Down
DROP TABLE leases;
DROP TABLE runs;
