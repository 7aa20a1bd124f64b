package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default limits of credential reads per token (Options.ReadLimit and
// ReadBurst). 100 at once and 20 a second on average serve 100 Locust
// processes × policies reading through one token: the plugin reads each
// policy once per process at start, then at most once per cache TTL (5s by
// default). A loop that reads without caching gets 429 instead of costing a
// store call each time.
const (
	DefaultReadLimit rate.Limit = 20
	DefaultReadBurst int        = 100
)

// limiters holds one token bucket per API token (by id).
type limiters struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	byID  map[int64]*limiter
	swept time.Time
}

type limiter struct {
	*rate.Limiter
	used time.Time
}

func newLimiters(limit rate.Limit, burst int) *limiters {
	if limit == 0 {
		limit = DefaultReadLimit
	}
	if burst <= 0 {
		burst = DefaultReadBurst
	}
	return &limiters{limit: limit, burst: burst, byID: map[int64]*limiter{}}
}

// allow takes n reads from token id's bucket; when it holds fewer it takes
// none and returns false and how long until n would be allowed.
func (l *limiters) allow(id int64, now time.Time, n int) (bool, time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	lim, ok := l.byID[id]
	if !ok {
		lim = &limiter{Limiter: rate.NewLimiter(l.limit, l.burst)}
		l.byID[id] = lim
	}
	lim.used = now
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return false, time.Hour
	}
	if d := r.DelayFrom(now); d > 0 {
		// Refused: the read is not taken from the bucket.
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets, at most once a minute, the buckets that have been full
// again for a while: a new bucket starts full, so nothing changes for their
// tokens, and the map does not grow with every token ever seen.
func (l *limiters) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	refill := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	idle := max(refill, 0) + time.Minute
	for id, lim := range l.byID {
		if now.Sub(lim.used) > idle {
			delete(l.byID, id)
		}
	}
}

// retryAfter is d as a Retry-After header value: whole seconds, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
