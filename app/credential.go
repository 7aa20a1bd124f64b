package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/azure"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/providers/ssm"
	"github.com/swarmkey/swarmkey/providers/vault"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// storeOpeners opens each provider from its Options, as config decoded and
// checked them: a new provider is one folder plus one line here (and its
// field in config.Stores).
var storeOpeners = map[string]func(ctx context.Context, s config.Stores) (providers.Store, error){
	config.ProviderFile: func(_ context.Context, s config.Stores) (providers.Store, error) {
		return file.Open(*s.File)
	},
	config.ProviderAWS: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return aws.New(ctx, *s.AWS)
	},
	config.ProviderGCP: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return gcp.New(ctx, *s.GCP)
	},
	config.ProviderVault: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return vault.New(ctx, *s.Vault)
	},
	config.ProviderSSM: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return ssm.New(ctx, *s.SSM)
	},
	config.ProviderAzure: func(ctx context.Context, s config.Stores) (providers.Store, error) {
		return azure.New(ctx, *s.Azure)
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
		Password: p.Password.PasswordRules,
		Grace:    p.Grace,
		Canary:   p.Canary,
		DestroyRetired: r.Config.Stores.GCP != nil && r.Config.Stores.GCP.DestroyRetired &&
			p.Store == config.ProviderGCP,
	}, nil
}

// target opens p's target from the Options config decoded, with the
// references it holds resolved.
func (r *Runtime) target(ctx context.Context, p *config.Policy) (targets.Target, error) {
	switch {
	case p.Target.Postgres != nil:
		opts := p.Target.Postgres.Options
		var err error
		if opts.Admin, err = r.resolveOptional(ctx, p.Target.Postgres.Admin); err != nil {
			return nil, fmt.Errorf("target.postgres.admin: %w", err)
		}
		opts.AdminPools = r.postgresAdmin
		return postgres.New(ctx, opts)
	case p.Target.HTTP != nil:
		opts := p.Target.HTTP.Options
		var err error
		if opts.Auth.Secret, err = r.resolveOptional(ctx, p.Target.HTTP.AuthSecret); err != nil {
			return nil, fmt.Errorf("target.http.auth.secret: %w", err)
		}
		opts.Logger = r.Logger
		return httpkey.New(opts)
	case p.Target.Generated != nil:
		return generated.New(*p.Target.Generated)
	case p.Target.MySQL != nil:
		opts := p.Target.MySQL.Options
		var err error
		if opts.Admin, err = r.resolveOptional(ctx, p.Target.MySQL.Admin); err != nil {
			return nil, fmt.Errorf("target.mysql.admin: %w", err)
		}
		return mysql.New(p.Strategy, opts)
	case p.Target.Redis != nil:
		opts := p.Target.Redis.Options
		var err error
		if opts.Admin, err = r.resolveOptional(ctx, p.Target.Redis.Admin); err != nil {
			return nil, fmt.Errorf("target.redis.admin: %w", err)
		}
		return redis.New(p.Strategy, opts)
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
// target refused the credential; an InputError when no version holds stage
// (nothing to verify yet: previous exists from the second rotation on,
// pending only during a rotation).
func (r *Runtime) Verify(ctx context.Context, name string, stage providers.Stage) (string, error) {
	p, err := r.Credential(ctx, name)
	if err != nil {
		return "", err
	}
	defer p.Target.Close()
	v, err := p.Store.Get(ctx, p.SecretID, stage)
	if errors.Is(err, providers.ErrNotFound) {
		return "", noVersion(p.Name, stage)
	}
	if err != nil {
		return "", fmt.Errorf("%s: read %s version: %w", p.Name, stage, err)
	}
	if err := p.Target.Verify(ctx, targets.VerifyRequest{Credential: v.Value, Canary: true}); err != nil {
		return v.ID, &RefusedError{Policy: p.Name, Stage: stage, VersionID: v.ID, Err: err}
	}
	return v.ID, nil
}

// noVersion is Verify's InputError for a stage that holds no version.
func noVersion(policy string, stage providers.Stage) error {
	switch stage {
	case providers.StageCurrent:
		return Inputf("%s has no current version yet, so there is nothing to verify: rotate it first (swarmkey rotate %s --local)", policy, policy)
	case providers.StagePrevious:
		return Inputf("%s has no previous version yet, so there is nothing to verify: previous is the version the last rotation replaced, there from the second rotation on (verify --stage current checks the one there is)", policy)
	}
	return Inputf("%s has no %s version, so there is nothing to verify: a pending version exists only while a rotation is between its create and promote steps", policy, stage)
}

// resolveOptional is resolve, with a zero ref (an optional credential the
// file leaves out) as the zero Secret.
func (r *Runtime) resolveOptional(ctx context.Context, ref config.Reference) (secret.Secret, error) {
	if ref.IsZero() {
		return secret.Secret{}, nil
	}
	return r.resolve(ctx, ref)
}

// resolve fetches the value ref points at. A reference that does not
// resolve (a variable unset or empty, a file missing, loose or empty, a
// secret or #field that is not there) is an InputError: the config or the
// environment must change, as the README's exit codes say. A store that
// fails otherwise (unreachable, refusing) is returned as it is: the input
// may be right.
func (r *Runtime) resolve(ctx context.Context, ref config.Reference) (secret.Secret, error) {
	var storeErr error
	v, err := ref.Resolve(ctx, func(ctx context.Context, provider, secretID string) (secret.Secret, error) {
		v, err := r.ReadStore(ctx, provider, secretID)
		var input *InputError
		if err != nil && !errors.Is(err, providers.ErrNotFound) && !errors.As(err, &input) {
			storeErr = err
		}
		return v, err
	})
	if err != nil && storeErr == nil {
		return secret.Secret{}, &InputError{Err: err}
	}
	return v, err
}
