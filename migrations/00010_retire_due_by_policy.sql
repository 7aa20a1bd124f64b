-- +goose Up
-- Every rotation starts by reading its policy's running rotation and the
-- rotations due to retire (state.OpenRotationsOf, one query with an OR).
-- Without statistics that know the table's size (a table that grew faster
-- than autoanalyze ran, or a plan cached while it was small), PostgreSQL
-- served the retire arm from rotations_retire_due, which holds every
-- policy's due rows: 20 to 50 ms a rotation at 100,000 policies, most of
-- the state database's work. Led by the policy, the arm reads only its own.
CREATE INDEX rotations_retire_due_by_policy ON rotations (policy, retire_after)
	WHERE retired_at IS NULL AND retire_after IS NOT NULL;

-- +goose Down
DROP INDEX rotations_retire_due_by_policy;
