-- +goose Up
-- Each planning tick reads the policies whose next check has come and the
-- runs and leases added, cancelled or ended since the planner's last tick
-- (their policies are planned again at once; others wait for their next
-- check, up to an hour). These indexes keep the second read from scanning
-- runs and leases, which keep every row for the record, every two seconds.
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_cancelled ON runs (cancelled_at) WHERE cancelled_at IS NOT NULL;
CREATE INDEX leases_started ON leases (started_at);

-- +goose Down
DROP INDEX leases_started;
DROP INDEX runs_cancelled;
DROP INDEX runs_created;
