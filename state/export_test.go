package state

import "github.com/jackc/pgx/v5/pgxpool"

// Pool gives the package's external tests the pool, for checks in plain SQL.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// The SQL of the reads every rotation makes, for the tests of their plans.
const (
	OpenRotationsQuery = openRotationsQuery
	SettledByKeyQuery  = settledByKeyQuery
	ByKeyQuery         = byKeyQuery
)
