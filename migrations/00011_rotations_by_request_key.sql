-- +goose Up
-- Every rotation the daemon runs for a fire first asks whether its request
-- key already settled (state.SettledByKey): succeeded, or needs_attention
-- after its promote landed. rotations_request_key_once holds only running
-- and succeeded rows, so the needs_attention arm had no index, and
-- PostgreSQL read the whole table on every rotation: about 4,000 pages a
-- call at 70,000 rotations, most of the state database's CPU in a
-- 100,000-policy lag run. The daemon's ByKey reads (a fire's rotations of
-- every outcome) had the same hole. This index serves a key whatever the
-- outcome.
CREATE INDEX rotations_by_request_key ON rotations (request_key)
	WHERE request_key IS NOT NULL;

-- +goose Down
DROP INDEX rotations_by_request_key;
