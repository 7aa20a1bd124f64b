package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/app"
)

func newServeCommand(g *globals) *cobra.Command {
	var opts app.ServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the rotation daemon",
		Long: `serve applies the migrations, then plans and runs rotations on River until
SIGTERM. Several replicas on one database share the work; River elects the
leader that plans. SIGHUP reloads the config files: a bad file keeps the old
policies and logs why. SIGTERM drains: running rotations get --drain-timeout
to finish, then are cancelled, which leaves each resumable by another
replica. Under systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("log-level") {
				g.logLevel = "info"
			}
			app.TuneServeGC()
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			opts.API.Explicit = cmd.Flags().Changed("api-listen")
			opts.Reload = g.loadConfig
			return sess.Serve(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Daemon.Workers, "workers", 10, "rotations this process runs at once")
	cmd.Flags().DurationVar(&opts.Daemon.PlanInterval, "plan-interval", 2*time.Second,
		"how often the leader plans; jobs are inserted twice this ahead of their slot")
	cmd.Flags().DurationVar(&opts.Daemon.RescueAfter, "rescue-after", time.Minute,
		"resume a rotation whose replica died after this long (keep it above your longest canary)")
	cmd.Flags().DurationVar(&opts.DrainTimeout, "drain-timeout", 30*time.Second, "how long SIGTERM waits for running rotations")
	cmd.Flags().StringVar(&opts.Daemon.ID, "id", "", "this replica's name in River and logs (default: host and pid)")
	cmd.Flags().StringVar(&opts.API.Address, "api-listen", api.DefaultListen,
		`the HTTP API: unix:/path or tcp:HOST:PORT (TLS required unless HOST is loopback); "" serves none`)
	cmd.Flags().StringVar(&opts.API.TLSCert, "api-tls-cert", "", "TLS certificate (PEM) of a tcp: --api-listen")
	cmd.Flags().StringVar(&opts.API.TLSKey, "api-tls-key", "", "TLS private key (PEM) of --api-tls-cert")
	cmd.Flags().Float64Var(&opts.API.ReadLimit, "api-read-rate", float64(api.DefaultReadLimit),
		"credential reads a second one API token may make on average (429 with Retry-After beyond)")
	cmd.Flags().IntVar(&opts.API.ReadBurst, "api-read-burst", api.DefaultReadBurst, "credential reads one API token may make at once")
	cmd.Flags().StringVar(&opts.HealthListen, "http-listen", "", "address for /metrics, /healthz, /readyz and the timeline page at / (e.g. 127.0.0.1:9184); off by default")
	return cmd
}
