package config

import (
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// The target blocks decode into their target's Options; each target's
// Validate owns its rules, and these functions add what the file format
// means (references, relative paths, the policy's name and strategy) and
// report each problem at its field and line. Each runs on the check of its
// block (target.postgres, target.http, target.generated).

// postgresTarget checks target.postgres against postgres.Options'
// ValidateDeclared for the policy's strategy.
func (c check) postgresTarget(cfg *Config, given *postgres.Options, strategy targets.Strategy) *PostgresTarget {
	o := valueOf(given)
	if o.Port == 0 {
		o.Port = postgres.DefaultPort // not given: checkTree refuses an explicit 0
	}
	t := &PostgresTarget{}
	admin, adminGiven := c.reference(cfg, "admin")
	t.Admin = admin
	// Every rule of the target depends on the strategy; an unknown one is
	// reported at strategy, and its checks are skipped rather than guessed.
	if strategy != "" {
		v, missing := o, []string{"admin"}
		if adminGiven {
			v.Admin, missing = unresolved, nil
		}
		c.report(v.ValidateDeclared(strategy), missing, nil)
	}
	t.Options = o.ForStrategy(strategy)
	return t
}

// httpTarget checks target.http against httpkey.Options.Validate, which
// parses templates with missingkey=error and renders them against sample
// data, so a misspelt field fails at load, not at the first rotation.
func (c check) httpTarget(cfg *Config, given *httpkey.Options, policy string) *HTTPTarget {
	o := valueOf(given)
	o.Policy = policy
	o.TLS.CAFile, o.TLS.CertFile, o.TLS.KeyFile = c.src.abs(o.TLS.CAFile), c.src.abs(o.TLS.CertFile), c.src.abs(o.TLS.KeyFile)
	t := &HTTPTarget{}
	authSecret, secretGiven := c.reference(cfg, "auth.secret")
	t.AuthSecret = authSecret
	o = o.WithDefaults()
	v, missing := o, []string{"auth.secret"}
	if secretGiven {
		v.Auth.Secret, missing = unresolved, nil
	}
	// A missing or invalid name is reported at the policy's name.
	c.report(v.Validate(), missing, []string{"policy"})
	t.Options = o
	return t
}

// generatedTarget checks target.generated against
// generated.Options.Validate.
func (c check) generatedTarget(given *generated.Options, policy string) *generated.Options {
	o := valueOf(given)
	o.Policy = policy
	c.report(o.Validate(), nil, nil)
	o = o.WithDefaults()
	return &o
}

// mysqlTarget checks target.mysql against mysql.Options.Validate for the
// policy's strategy, after its defaults.
func (c check) mysqlTarget(cfg *Config, given *mysql.Options, strategy targets.Strategy) *MySQLTarget {
	o := valueOf(given).WithDefaults(strategy)
	t := &MySQLTarget{}
	admin, adminGiven := c.reference(cfg, "admin")
	t.Admin = admin
	// An unknown strategy is reported at strategy; its checks are skipped.
	if strategy != "" {
		v, missing := o, []string{"admin"}
		if adminGiven {
			v.Admin, missing = unresolved, nil
		}
		c.report(v.Validate(strategy), missing, nil)
	}
	t.Options = o
	return t
}

// redisTarget checks target.redis against redis.Options.Validate for the
// policy's strategy, after its defaults.
func (c check) redisTarget(cfg *Config, given *redis.Options, strategy targets.Strategy) *RedisTarget {
	o := valueOf(given).WithDefaults(strategy)
	t := &RedisTarget{}
	admin, adminGiven := c.reference(cfg, "admin")
	t.Admin = admin
	// An unknown strategy is reported at strategy; its checks are skipped.
	if strategy != "" {
		v, missing := o, []string{"admin"}
		if adminGiven {
			v.Admin, missing = unresolved, nil
		}
		c.report(v.Validate(strategy), missing, nil)
	}
	t.Options = o
	return t
}
