package config

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swarmkey/swarmkey/notify"
)

// A main file's notifications: block says which events go to which sinks:
//
//	notifications:
//	  deferral_threshold: 6h    # notify a deferral that pushes a rotation back more (default 6h)
//	  attempts: 10              # tries per delivery before it is given up (default 10)
//	  sinks:
//	    - name: oncall
//	      kind: webhook         # JSON, signed with HMAC-SHA256
//	      url: https://hooks.example.com/swarmkey
//	      secret: env:SWARMKEY_WEBHOOK_KEY   # the HMAC key, a reference
//	    - name: team-chat
//	      kind: slack
//	      url: file:/etc/swarmkey/slack-url  # Slack's URL holds its token: a reference
//	  routes:
//	    - policies: [checkout-db]  # and/or tags: [payments]; neither: every policy
//	      events: [needs_attention, failed]  # default: every event
//	      sinks: [oncall, team-chat]

// Defaults of the notifications: block.
const (
	DefaultDeferralThreshold    = 6 * time.Hour
	DefaultNotificationAttempts = notify.DefaultMaxAttempts
)

type rawNotifications struct {
	DeferralThreshold string     `yaml:"deferral_threshold"`
	Attempts          *int       `yaml:"attempts"`
	Sinks             []rawSink  `yaml:"sinks"`
	Routes            []rawRoute `yaml:"routes"`
}

type rawSink struct {
	Name   string `yaml:"name"`
	Kind   string `yaml:"kind"`
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
}

type rawRoute struct {
	Policies []string `yaml:"policies"`
	Tags     []string `yaml:"tags"`
	Events   []string `yaml:"events"`
	Sinks    []string `yaml:"sinks"`
}

// Notifications is the checked notifications: block.
type Notifications struct {
	DeferralThreshold time.Duration
	Attempts          int
	Sinks             []NotificationSink
	// Routes name sinks and policies that exist; Kinds are known.
	Routes []notify.Route
}

// NotificationSink is one sink. Credential refers to a webhook's HMAC key,
// or to a Slack sink's whole URL (it holds Slack's token).
type NotificationSink struct {
	Name       string
	Kind       notify.SinkKind
	URL        string
	Credential Reference
	File       string
	Line       int
}

// notifications checks the notifications: block of the main file that gives
// it, once every policy is known (routes name policies).
func (l *loader) notifications(cfg *Config) {
	s := l.notificationsFrom
	if s == nil || s.suppressed("notifications") {
		return
	}
	c := check{l: l, src: s, prefix: "notifications"}
	r := valueOf(s.raw.Notifications)
	n := &Notifications{
		DeferralThreshold: c.duration("deferral_threshold", r.DeferralThreshold, DefaultDeferralThreshold),
		Attempts:          c.count("attempts", r.Attempts, DefaultNotificationAttempts, 1, 100),
	}
	before := len(l.errs)
	sinks := map[string]bool{}
	for i, rs := range r.Sinks {
		sc := c.sub("sinks[" + strconv.Itoa(i) + "]")
		sink := NotificationSink{Name: rs.Name, Kind: notify.SinkKind(rs.Kind), URL: rs.URL, File: s.file, Line: s.line(sc.prefix)}
		switch {
		case rs.Name == "":
			sc.errf("name", "required: a name that routes use")
		case !nameRE().MatchString(rs.Name):
			sc.errf("name", "%q is not a valid sink name: use 1 to 63 of a-z 0-9 . _ - starting with a letter or digit", rs.Name)
		case sinks[rs.Name]:
			sc.errf("name", "sink %q is given twice", rs.Name)
		}
		sinks[rs.Name] = true
		switch sink.Kind {
		case notify.Webhook:
			sc.webhookURL(rs.URL)
			ref, given := sc.reference(cfg, "secret")
			if !given {
				sc.errf("secret", "required: a reference to the HMAC key that signs the webhook's requests: %s", referenceForms)
			}
			sink.Credential = ref
		case notify.Slack:
			sink.URL = ""
			ref, given := sc.reference(cfg, "url")
			if !given {
				sc.errf("url", "required: a reference to the incoming-webhook URL, which holds Slack's token: %s", referenceForms)
			}
			sink.Credential = ref
			if rs.Secret != "" {
				sc.errf("secret", "a slack sink takes no secret: its URL is its credential")
			}
		case "":
			sc.errf("kind", "required: webhook or slack")
		default:
			sc.errf("kind", "unknown sink kind %q: use webhook or slack", rs.Kind)
		}
		n.Sinks = append(n.Sinks, sink)
	}
	for i, rr := range r.Routes {
		rc := c.sub("routes[" + strconv.Itoa(i) + "]")
		route := notify.Route{Policies: rr.Policies, Tags: rr.Tags, Sinks: rr.Sinks}
		if len(rr.Sinks) == 0 {
			rc.errf("sinks", "required: the names of the sinks that get these events")
		}
		for j, name := range rr.Sinks {
			if !sinks[name] {
				rc.errf("sinks["+strconv.Itoa(j)+"]", "no sink is called %q: name one under notifications.sinks", name)
			}
		}
		for j, p := range rr.Policies {
			if _, ok := cfg.Policy(p); !ok && !l.incomplete {
				rc.errf("policies["+strconv.Itoa(j)+"]", "no policy is called %q", p)
			}
		}
		for j, t := range rr.Tags {
			if strings.TrimSpace(t) == "" {
				rc.errf("tags["+strconv.Itoa(j)+"]", "empty tag")
			}
		}
		for j, e := range rr.Events {
			k, ok := notify.ParseKind(e)
			switch {
			case !ok:
				rc.errf("events["+strconv.Itoa(j)+"]", "unknown event %q: use %s", e, notify.KindNames())
			case slices.Contains(route.Kinds, k):
				rc.errf("events["+strconv.Itoa(j)+"]", "event %q is given twice", e)
			default:
				route.Kinds = append(route.Kinds, k)
			}
		}
		n.Routes = append(n.Routes, route)
	}
	if len(l.errs) == before {
		cfg.Notifications = n
	}
}

// webhookURL checks a webhook sink's url: http or https with a host, and
// https unless the host is loopback (the signed body is not a secret, but a
// receiver on another machine should not be spoofable on the path).
// Messages never quote the URL: its query may hold a token.
func (c check) webhookURL(raw string) {
	if strings.TrimSpace(raw) == "" {
		c.errf("url", "required: the https URL the webhook posts to")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		c.errf("url", "not an http(s) URL with a host; give one such as https://hooks.example.com/swarmkey")
		return
	}
	if u.User != nil {
		c.errf("url", "credentials in the URL are not allowed: the request is signed with secret:")
		return
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			c.errf("url", "plain http is allowed only to a loopback host; use https")
		}
	}
}
