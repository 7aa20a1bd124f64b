// Package pglogin is the canary the benchmarks' baselines run: a new
// connection that logs in with SCRAM-SHA-256 as a role and runs SELECT 1,
// the same proof the postgres target's test step makes.
package pglogin

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/swarmkey/swarmkey/secret"
)

// SelectOne logs in to dbName on 127.0.0.1:port as role with password
// (SCRAM only, as swarmkey's logins are), runs SELECT 1 and hangs up.
func SelectOne(ctx context.Context, port int, dbName, role string, password secret.Secret) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s sslmode=disable require_auth=scram-sha-256", port, dbName))
	if err != nil {
		return err
	}
	cfg.User, cfg.Password = role, password.RevealString()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}
