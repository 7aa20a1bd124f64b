package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PreparedPlan returns the plan, as JSON, of sql prepared with the
// parameter types params and executed with the literal arguments args
// (EXPLAIN takes no bind parameters), under plan_cache_mode mode ("auto",
// or "force_generic_plan" for the plan a pooled connection may cache). The
// statement is deallocated on its session afterwards, even when the test
// fails, since a prepared statement outlives the transaction.
func PreparedPlan(t testing.TB, ctx context.Context, pool *pgxpool.Pool, mode, sql, params, args string) string {
	t.Helper()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("plan check: %v", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("plan check: %v", err)
	}
	defer func() {
		_ = tx.Rollback(ctx)
		_, _ = conn.Exec(ctx, `DEALLOCATE plan_check`)
	}()
	for _, q := range []string{
		`SET LOCAL plan_cache_mode = ` + mode,
		`PREPARE plan_check(` + params + `) AS ` + sql,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("plan check: %s: %v", q, err)
		}
	}
	var plan string
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE plan_check(`+args+`)`).Scan(&plan); err != nil {
		t.Fatalf("plan check: explain: %v", err)
	}
	return plan
}
