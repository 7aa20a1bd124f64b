package app

import (
	"context"

	"github.com/swarmkey/swarmkey/notify"
	"github.com/swarmkey/swarmkey/secret"
)

// NotifyConfig turns the config's notifications: block into the notifier's
// configuration; empty (nothing is sent) when there is none. Sink
// credentials are resolved at each delivery attempt, through the runtime's
// stores, so the key or URL never sits in memory longer than a request.
func (r *Runtime) NotifyConfig() notify.Config {
	n := r.Config.Notifications
	if n == nil {
		return notify.Config{}
	}
	cfg := notify.Config{DeferralThreshold: n.DeferralThreshold, MaxAttempts: n.Attempts, Routes: n.Routes}
	for _, s := range n.Sinks {
		ref := s.Credential
		cfg.Sinks = append(cfg.Sinks, notify.Sink{Name: s.Name, Kind: s.Kind, URL: s.URL,
			Credential: func(ctx context.Context) (secret.Secret, error) { return r.resolve(ctx, ref) }})
	}
	return cfg
}
