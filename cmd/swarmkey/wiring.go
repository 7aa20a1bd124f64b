package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// storeOpeners opens each provider from its settings: a new provider is one
// folder plus one line here (and its settings block in config).
var storeOpeners = map[string]func(ctx context.Context, s config.Stores) (providers.Store, error){
	config.ProviderFile: func(_ context.Context, s config.Stores) (providers.Store, error) {
		return file.Open(file.Options{Dir: s.File.Dir, KeyFile: s.File.KeyFile})
	},
	config.ProviderAWS: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return aws.New(ctx, aws.Options{Region: s.AWS.Region, EndpointURL: s.AWS.EndpointURL, Create: s.AWS.Create,
			KMSKeyID: s.AWS.KMSKeyID, Description: s.AWS.Description, Tags: s.AWS.Tags})
	},
	config.ProviderGCP: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return gcp.New(ctx, gcp.Options{Project: s.GCP.Project, Endpoint: s.GCP.Endpoint, DestroyRetired: s.GCP.DestroyRetired})
	},
}

// environment opens stores on first use and closes them at the end.
type environment struct {
	cfg    *config.Config
	logger *slog.Logger
	// mu guards stores: the daemon's workers open policies concurrently.
	mu     sync.Mutex
	stores map[string]providers.Store
}

func newEnvironment(cfg *config.Config, logger *slog.Logger) *environment {
	return &environment{cfg: cfg, logger: logger, stores: map[string]providers.Store{}}
}

func (env *environment) Close() {
	env.mu.Lock()
	defer env.mu.Unlock()
	for _, s := range env.stores {
		_ = s.Close()
	}
}

func (env *environment) store(ctx context.Context, name string) (providers.Store, error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	if s, ok := env.stores[name]; ok {
		return s, nil
	}
	open, ok := storeOpeners[name]
	if !ok || !env.cfg.Stores.Configured(name) {
		return nil, usageError("store %q is not configured: add a stores.%s block to the config", name, name)
	}
	s, err := open(ctx, env.cfg.Stores)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", name, err)
	}
	env.stores[name] = s
	return s, nil
}

// readStore resolves store: references: the current version of a secret.
func (env *environment) readStore(ctx context.Context, provider, secretID string) (secret.Secret, error) {
	if env == nil {
		return secret.Secret{}, errors.New("store references are not available here")
	}
	s, err := env.store(ctx, provider)
	if err != nil {
		return secret.Secret{}, err
	}
	v, err := s.Get(ctx, secretID, providers.StageCurrent)
	if err != nil {
		return secret.Secret{}, err
	}
	return v.Value, nil
}

// policy opens what a policy needs: its store and its target. The caller
// closes the target.
func (env *environment) policy(ctx context.Context, name string) (rotator.Credential, error) {
	p, ok := env.cfg.Policy(name)
	if !ok {
		return rotator.Credential{}, usageError("unknown policy %q: `swarmkey status` lists the policies of %v", name, env.cfg.Files)
	}
	return env.openPolicy(ctx, p)
}

func (env *environment) openPolicy(ctx context.Context, p *config.Policy) (rotator.Credential, error) {
	s, err := env.store(ctx, p.Store)
	if err != nil {
		return rotator.Credential{}, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
	}
	target, err := env.target(ctx, p)
	if err != nil {
		return rotator.Credential{}, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
	}
	return rotator.Credential{
		Name:     p.Name,
		Strategy: p.Strategy,
		Store:    s,
		SecretID: p.SecretID,
		Target:   target,
		Password: rotator.PasswordRules{Length: p.Password.Length, Characters: p.Password.Characters},
		Grace:    p.Grace,
		Canary:   rotator.CanaryRetry{Attempts: p.Canary.Attempts, Interval: p.Canary.Interval},
		DestroyRetired: env.cfg.Stores.GCP != nil && env.cfg.Stores.GCP.DestroyRetired &&
			p.Store == config.ProviderGCP,
	}, nil
}

func (env *environment) target(ctx context.Context, p *config.Policy) (targets.Target, error) {
	switch {
	case p.Target.Postgres != nil:
		pg := p.Target.Postgres
		var admin secret.Secret
		if !pg.Admin.IsZero() {
			var err error
			if admin, err = pg.Admin.Resolve(ctx, env.readStore); err != nil {
				return nil, fmt.Errorf("target.postgres.admin: %w", err)
			}
		}
		return postgres.New(ctx, postgres.Options{
			Host: pg.Host, Port: pg.Port, DBName: pg.DBName, SSLMode: pg.SSLMode,
			Username: pg.Username, AlternateUsername: pg.AlternateUsername, GroupRole: pg.GroupRole,
			Admin: admin, CanaryQuery: pg.CanaryQuery, RetireNoLogin: pg.RetireNoLogin,
		})
	case p.Target.HTTP != nil:
		opts := p.Target.HTTP.Options
		if ref := p.Target.HTTP.AuthSecret; !ref.IsZero() {
			var err error
			if opts.Auth.Secret, err = ref.Resolve(ctx, env.readStore); err != nil {
				return nil, fmt.Errorf("target.http.auth.secret: %w", err)
			}
		}
		opts.Logger = env.logger
		return httpkey.New(opts)
	case p.Target.Generated != nil:
		return generated.New(generated.Options{Policy: p.Name, Field: p.Target.Generated.Field})
	}
	return nil, errors.New("target: no supported target configured")
}
