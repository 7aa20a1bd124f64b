-- +goose Up
-- API tokens. A token is shown once, when `swarmkey tokens add` creates it;
-- the table keeps only its SHA-256 hash, so a copy of the database does not
-- hold a usable token. A revoked token keeps its row (revoked_at, revoked_by)
-- for the record, and its name may be reused.
CREATE TABLE tokens (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL CHECK (name <> ''),
    scope      text NOT NULL CHECK (scope IN ('admin', 'runner')),
    -- runner: the policies (or tag:NAME) it may lease and read; admin: none.
    grants     text[] NOT NULL DEFAULT '{}',
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    revoked_by text,
    CHECK (scope <> 'runner' OR cardinality(grants) > 0),
    CHECK (scope <> 'admin' OR cardinality(grants) = 0),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

-- The token through which a lease was taken over the API, so a runner can
-- heartbeat and end only its own leases (by id: a name may be reused after
-- a revoke). NULL for leases taken directly in the database (`swarmkey
-- exec` with database access).
ALTER TABLE leases ADD COLUMN token_id bigint REFERENCES tokens (id);

-- +goose Down
ALTER TABLE leases DROP COLUMN token_id;
DROP TABLE tokens;
