-- +goose Up
-- How often each API token read each version of a policy's credential,
-- under which lease. The first read of a (token, lease, policy, version)
-- appends one credential.read entry to audit_log; later reads only count
-- here, so a runner that reads in a loop adds no audit entries, and
-- audit_log stays append-only (nothing there is updated). lease is the
-- token's live lease that covered the policy at the read, '' for none.
-- Never a value.
CREATE TABLE credential_reads (
    token_id bigint NOT NULL REFERENCES tokens (id),
    lease    text NOT NULL DEFAULT '',
    policy   text NOT NULL,
    version  text NOT NULL,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL,
    count    bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (token_id, lease, policy, version)
);
-- The summary appended when a lease ends.
CREATE INDEX credential_reads_by_lease ON credential_reads (lease) WHERE lease <> '';

-- +goose Down
DROP TABLE credential_reads;
