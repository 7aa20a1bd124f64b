-- +goose Up
-- Rotation state. No column ever holds a credential value: values live only
-- in the secret stores.

-- One row per policy that has rotated at least once.
CREATE TABLE policy_state (
    policy          text PRIMARY KEY,
    strategy        text NOT NULL,
    store           text NOT NULL,
    secret_id       text NOT NULL,
    current_version text,
    current_token   uuid,
    principal       text,
    rotated_at      timestamptz,
    last_rotation   uuid,
    last_outcome    text,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per rotation, written before the target is touched. step is the
-- last step that completed ('' before create completes), so a resumed
-- rotation starts at the step after it.
CREATE TABLE rotations (
    token            uuid PRIMARY KEY,
    policy           text NOT NULL,
    strategy         text NOT NULL,
    store            text NOT NULL,
    secret_id        text NOT NULL,
    step             text NOT NULL DEFAULT ''
                     CHECK (step IN ('', 'create', 'set', 'test', 'promote', 'finish')),
    outcome          text NOT NULL DEFAULT 'running'
                     CHECK (outcome IN ('running', 'succeeded', 'failed', 'needs_attention')),
    principal        text,
    expected_current text NOT NULL DEFAULT '',
    error            text,
    rolled_back      boolean NOT NULL DEFAULT false,
    forced           boolean NOT NULL DEFAULT false,
    actor            text NOT NULL,
    resumes          integer NOT NULL DEFAULT 0,
    steps            jsonb NOT NULL DEFAULT '[]',
    retire_after     timestamptz,
    retired_at       timestamptz,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

-- At most one unfinished rotation per policy, whoever started it: the
-- advisory lock serialises rotations, this index makes a bug loud.
CREATE UNIQUE INDEX rotations_one_running_per_policy ON rotations (policy) WHERE outcome = 'running';
CREATE INDEX rotations_by_policy ON rotations (policy, started_at DESC);
CREATE INDEX rotations_retire_due ON rotations (retire_after) WHERE retired_at IS NULL AND retire_after IS NOT NULL;

-- Append-only audit log: who did what to which policy, never a value.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    policy   text,
    rotation uuid,
    action   text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_policy ON audit_log (policy, at);

-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE rotations;
DROP TABLE policy_state;
