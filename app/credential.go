package app

import (
	"context"
	"errors"
	"fmt"

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

// Credential opens what the step machine needs of the policy called name:
// its store and its target. The caller closes the target.
func (r *Runtime) Credential(ctx context.Context, name string) (rotator.Credential, error) {
	p, err := r.Policy(name)
	if err != nil {
		return rotator.Credential{}, err
	}
	return r.OpenCredential(ctx, p)
}

// OpenCredential opens p's store and target. The caller closes the target.
func (r *Runtime) OpenCredential(ctx context.Context, p *config.Policy) (rotator.Credential, error) {
	s, err := r.Store(ctx, p.Store)
	if err != nil {
		return rotator.Credential{}, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
	}
	target, err := r.target(ctx, p)
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
		DestroyRetired: r.Config.Stores.GCP != nil && r.Config.Stores.GCP.DestroyRetired &&
			p.Store == config.ProviderGCP,
	}, nil
}

func (r *Runtime) target(ctx context.Context, p *config.Policy) (targets.Target, error) {
	switch {
	case p.Target.Postgres != nil:
		pg := p.Target.Postgres
		var admin secret.Secret
		if !pg.Admin.IsZero() {
			var err error
			if admin, err = pg.Admin.Resolve(ctx, r.ReadStore); err != nil {
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
			if opts.Auth.Secret, err = ref.Resolve(ctx, r.ReadStore); err != nil {
				return nil, fmt.Errorf("target.http.auth.secret: %w", err)
			}
		}
		opts.Logger = r.Logger
		return httpkey.New(opts)
	case p.Target.Generated != nil:
		return generated.New(generated.Options{Policy: p.Name, Field: p.Target.Generated.Field})
	}
	return nil, errors.New("target: no supported target configured")
}

// RefusedError is a stored credential that the target refused.
type RefusedError struct {
	Policy    string
	Stage     providers.Stage
	VersionID string
	Err       error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s %s credential is refused: %v", e.Policy, e.Stage, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Verify reads the policy's version at stage and runs the target's canary
// with it. It returns the version id it checked; a *RefusedError when the
// target refused the credential.
func (r *Runtime) Verify(ctx context.Context, name string, stage providers.Stage) (string, error) {
	p, err := r.Credential(ctx, name)
	if err != nil {
		return "", err
	}
	defer p.Target.Close()
	v, err := p.Store.Get(ctx, p.SecretID, stage)
	if err != nil {
		return "", fmt.Errorf("%s: read %s version: %w", p.Name, stage, err)
	}
	if err := p.Target.Verify(ctx, targets.VerifyRequest{Credential: v.Value, Canary: true}); err != nil {
		return v.ID, &RefusedError{Policy: p.Name, Stage: stage, VersionID: v.ID, Err: err}
	}
	return v.ID, nil
}
