-- +goose Up
-- What the daemon has notified once and must not notify again, whichever
-- replica plans next and however often it plans.
--
-- leases.expiry_reported_at: when the planner reported that the lease had
-- expired without an end (audited as lease.expired, notified as
-- lease_expired). Leases that had already expired before this migration are
-- marked as reported: they are old news, and an upgrade must not page
-- anyone about each of them.
ALTER TABLE leases ADD COLUMN expiry_reported_at timestamptz;
UPDATE leases SET expiry_reported_at = now()
    WHERE ended_at IS NULL AND last_heartbeat + ttl <= now();

-- policy_state.overdue_reported: the overdue-since instant (rotated_at +
-- max_age) last reported as rotation.overdue; a new credential has a new
-- instant, so each credential is reported at most once.
ALTER TABLE policy_state ADD COLUMN overdue_reported timestamptz;

-- +goose Down
ALTER TABLE policy_state DROP COLUMN overdue_reported;
ALTER TABLE leases DROP COLUMN expiry_reported_at;
