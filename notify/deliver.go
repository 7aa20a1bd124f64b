package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/riverqueue/river"

	"github.com/swarmkey/swarmkey/secret"
)

// Queue is the River queue deliveries run in, apart from rotations so that
// a slow receiver never takes a rotation's worker.
const Queue = "swarmkey_notify"

// QueueWorkers is how many deliveries one process attempts at once.
const QueueWorkers = 5

// DeliveryArgs is the River job of one event to one sink. It holds the
// sink's name, not its URL or key: those are read from the configuration
// when the delivery is attempted, and never stored in the database.
type DeliveryArgs struct {
	Sink  string `json:"sink"`
	Event Event  `json:"event"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return "swarmkey_notify" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeliveryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Queue} }

// AddWorker registers the delivery worker of n with workers; the client
// must also run Queue (see QueueWorkers).
func (n *Notifier) AddWorker(workers *river.Workers) {
	river.AddWorker(workers, &deliveryWorker{n: n})
}

type deliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	n *Notifier
}

// refusedError is a delivery the receiver refused for good (a 4xx other
// than 408 and 429, a redirect): retrying the same request cannot help.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	n := w.n
	cfg := n.cfg.Load()
	a := job.Args
	log := n.logger.With("sink", a.Sink, "event", string(a.Event.Kind), "policy", a.Event.Policy, "notification", a.Event.ID)
	sink, ok := cfg.sink(a.Sink)
	if !ok {
		n.undelivered.WithLabelValues(a.Sink, "sink_removed").Inc()
		log.Error("notification not delivered: its sink is no longer configured")
		return river.JobCancel(fmt.Errorf("sink %q is no longer configured", a.Sink))
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	err := n.deliver(ctx, sink, a.Event)
	if err == nil {
		n.deliveries.WithLabelValues(a.Sink, "delivered").Inc()
		log.Info("notification delivered", "attempt", job.Attempt)
		return nil
	}
	n.deliveries.WithLabelValues(a.Sink, "failed").Inc()
	var refused *refusedError
	switch {
	case errors.As(err, &refused):
		n.undelivered.WithLabelValues(a.Sink, "refused").Inc()
		log.Error("notification not delivered: the receiver refused it; giving up", "attempt", job.Attempt, "error", err)
		return river.JobCancel(err)
	case job.Attempt >= job.MaxAttempts:
		n.undelivered.WithLabelValues(a.Sink, "attempts_exhausted").Inc()
		log.Error("notification not delivered; giving up", "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", err)
		return err
	}
	log.Warn("notification delivery failed; will retry", "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", err)
	return err
}

// NextRetry is exponential backoff with jitter: RetryBase·2^(attempt−1),
// at most RetryCap, each delay drawn from [½·d, d].
func (w *deliveryWorker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	cfg := w.n.cfg.Load()
	d := cfg.RetryBase << min(max(job.Attempt-1, 0), 30)
	if d <= 0 || d > cfg.RetryCap {
		d = cfg.RetryCap
	}
	d = d/2 + rand.N(d/2+1)
	return time.Now().Add(d)
}

// Timeout leaves the attempt its own Timeout, with room to record it.
func (w *deliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return w.n.cfg.Load().Timeout + 5*time.Second
}

// maxAnswer bounds what is read of a receiver's answer (to reuse the
// connection); it is never logged.
const maxAnswer = 64 << 10

// deliver posts e to sink once. Its error names the sink and what went
// wrong, never the sink's URL or key: a Slack URL is a credential, and
// any URL may carry a token in its query.
func (n *Notifier) deliver(ctx context.Context, sink Sink, e Event) error {
	var body []byte
	var err error
	switch sink.Kind {
	case Slack:
		body, err = SlackBody(e)
	default:
		body, err = WebhookBody(e)
	}
	if err != nil {
		return fmt.Errorf("sink %q: encode: %w", sink.Name, err)
	}
	cred, err := sink.Credential(ctx)
	if err != nil {
		return fmt.Errorf("sink %q: %w", sink.Name, err)
	}
	scrub := secret.NewScrubber(cred)
	target := sink.URL
	if sink.Kind == Slack {
		target = cred.RevealString()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// url.Parse quotes the URL: say only that it is not one.
		return &refusedError{msg: fmt.Sprintf("sink %q: the configured URL is not a valid URL", sink.Name)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "swarmkey")
	req.Header.Set("Swarmkey-Event", string(e.Kind))
	req.Header.Set("Swarmkey-Notification", e.ID)
	if sink.Kind != Slack {
		req.Header.Set(SignatureHeader, Sign(cred.Reveal(), body, n.now()))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("sink %q: post: %s", sink.Name, scrub.Text(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("sink %q answered %s", sink.Name, resp.Status)
	default:
		return &refusedError{msg: fmt.Sprintf("sink %q answered %s", sink.Name, resp.Status)}
	}
}
