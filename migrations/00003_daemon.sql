-- +goose Up
-- The daemon's planning state, and the key that makes one fire (or one
-- manual request) rotate at most once whoever runs it: a daemon replica's
-- River job, `run-due`, or a retry of either.

ALTER TABLE policy_state
    -- The last schedule fire the planner handled (a job inserted for it,
    -- or run-due rotated it).
    ADD COLUMN planned_fire timestamptz,
    -- When the planner looks at this policy again.
    ADD COLUMN next_check timestamptz,
    -- When the planner last recorded a deferral, so it is audited once.
    ADD COLUMN deferred_fire timestamptz;

CREATE INDEX policy_state_next_check ON policy_state (next_check);

ALTER TABLE rotations ADD COLUMN request_key text;
-- A key succeeds at most once and runs at most once at a time; failed
-- attempts of the same key are kept for the record.
CREATE UNIQUE INDEX rotations_request_key_once ON rotations (request_key)
    WHERE request_key IS NOT NULL AND outcome IN ('running', 'succeeded');

-- +goose Down
DROP INDEX rotations_request_key_once;
ALTER TABLE rotations DROP COLUMN request_key;
DROP INDEX policy_state_next_check;
ALTER TABLE policy_state DROP COLUMN deferred_fire, DROP COLUMN next_check, DROP COLUMN planned_fire;
