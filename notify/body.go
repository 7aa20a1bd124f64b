package notify

import (
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// WebhookBody is the JSON a webhook sink receives: the Event itself.
func WebhookBody(e Event) ([]byte, error) { return json.Marshal(e) }

// slackMessage is an incoming-webhook message: text is what every
// Slack-compatible receiver (Slack, Mattermost, Rocket.Chat) shows; blocks
// are Slack's richer layout of the same.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks,omitempty"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// SlackBody is the incoming-webhook message of e: the summary as text, and
// the event's fields as a section and a context line.
func SlackBody(e Event) ([]byte, error) {
	var lines []string
	add := func(name, value string) {
		if value != "" {
			lines = append(lines, "*"+name+":* "+slackEscape(value))
		}
	}
	add("event", string(e.Kind))
	add("policy", e.Policy)
	add("policies", strings.Join(e.Policies, ", "))
	add("rotation", e.Rotation)
	add("outcome", e.Outcome)
	add("reason", e.Reason)
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, e.Detail[k])
	}
	msg := slackMessage{
		Text: slackEscape(e.Summary()),
		Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: slackEscape(e.Summary())}},
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: strings.Join(lines, "\n")}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: e.At.UTC().Format(time.RFC3339) + " · notification " + e.ID}}},
		},
	}
	return json.Marshal(msg)
}

// slackEscape escapes the three characters Slack's mrkdwn reserves, so a
// reason text cannot turn into a link or a mention.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
