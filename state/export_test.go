package state

import "github.com/jackc/pgx/v5/pgxpool"

// Pool gives the package's external tests the pool, for checks in plain SQL.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// OpenRotationsQuery is OpenRotationsOf's SQL, for the test of its plan.
const OpenRotationsQuery = openRotationsQuery
