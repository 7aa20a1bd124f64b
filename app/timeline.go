package app

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/timeline"
)

// ServeStatus serves what ServeHealth serves and, on every other path, the
// read-only timeline pages of the policies policies returns (called per
// request, so a reload shows at once): loopback clients as they are, any
// other client with an admin token (see timeline.Handler). Times are shown
// in the daemon host's zone.
func (s *Session) ServeStatus(addr string, t api.Timeouts, reg *prometheus.Registry, policies func() *daemon.PolicySet) (func(), error) {
	return s.serveHTTP(addr, t, reg, s.TimelineHandler(policies))
}

// TimelineHandler is the timeline pages over the session's database.
func (s *Session) TimelineHandler(policies func() *daemon.PolicySet) http.Handler {
	return timeline.Handler(timeline.HandlerOptions{DB: s.DB, Policies: policies, Location: time.Local, Logger: s.Logger})
}
