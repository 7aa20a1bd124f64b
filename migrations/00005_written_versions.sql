-- +goose Up
-- What each rotation wrote to its store: the version id that its PutPending
-- produced, recorded as soon as the store answers. With the token (recorded
-- before anything is written) it is how swarmkey knows which versions are
-- its own: a pending version is swarmkey's only when a rotation of the
-- policy holds its token and, once recorded, its version id. The token a
-- store reports is only the store's claim (any writer chooses an AWS
-- version id, or a GCP annotation). Never a value.
ALTER TABLE rotations ADD COLUMN pending_version text;

-- +goose Down
ALTER TABLE rotations DROP COLUMN pending_version;
