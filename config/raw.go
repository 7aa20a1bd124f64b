package config

import (
	"errors"

	"go.yaml.in/yaml/v3"

	"github.com/swarmkey/swarmkey/providers/aws"
	"github.com/swarmkey/swarmkey/providers/azure"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/providers/gcp"
	"github.com/swarmkey/swarmkey/providers/ssm"
	"github.com/swarmkey/swarmkey/providers/vault"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/httpkey"
	"github.com/swarmkey/swarmkey/targets/mysql"
	"github.com/swarmkey/swarmkey/targets/postgres"
	"github.com/swarmkey/swarmkey/targets/redis"
)

// The raw types mirror the file format one to one; decoding is strict (see
// decode.go). The store and target blocks decode straight into the Options
// of their provider or target, whose yaml tags are the file's keys and
// whose Validate holds their rules; config adds only what the file format
// itself means (relative paths, references, defaults the file documents).
// The policy's own fields are config's: durations and references stay
// strings here so that their errors can say which field and line, and
// counts are pointers so that "not given" (default) differs from an
// explicit 0 (an error).

type rawFile struct {
	Database string      `yaml:"database"`
	Stores   rawStores   `yaml:"stores"`
	Include  []string    `yaml:"include"`
	Deny     []rawDeny   `yaml:"deny"`
	Policies rawPolicies `yaml:"policies"`
	// Notifications is a main file's notifications: block (notifications.go).
	Notifications *rawNotifications `yaml:"notifications"`
}

type rawStores struct {
	File  *file.Options  `yaml:"file"`
	AWS   *aws.Options   `yaml:"aws"`
	GCP   *gcp.Options   `yaml:"gcp"`
	Vault *vault.Options `yaml:"vault"`
	SSM   *ssm.Options   `yaml:"ssm"`
	Azure *azure.Options `yaml:"azure"`
}

type rawDeny struct {
	Name     string `yaml:"name"`
	Cron     string `yaml:"cron"`
	Duration string `yaml:"duration"`
	Timezone string `yaml:"timezone"`
}

// rawPolicies decodes each entry on its own, as a cut file's entries are
// (split.go), so that entry i is always Policies[i]: yaml.v3 leaves out of
// a slice an element it cannot decode or that is null, which would shift
// every later policy onto the wrong entry's lines.
type rawPolicies []rawPolicy

func (p *rawPolicies) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		var plain []rawPolicy // yaml.v3's own error, as for any list
		err := n.Decode(&plain)
		*p = plain
		return err
	}
	*p = make(rawPolicies, len(n.Content))
	var msgs []string
	for i, item := range n.Content {
		err := item.Decode(&(*p)[i])
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			msgs = append(msgs, te.Errors...)
		case err != nil:
			return err
		}
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

type rawPolicy struct {
	Name             string      `yaml:"name"`
	Strategy         string      `yaml:"strategy"`
	Store            string      `yaml:"store"`
	Secret           string      `yaml:"secret"`
	Tags             []string    `yaml:"tags"`
	Target           rawTarget   `yaml:"target"`
	Password         rawPassword `yaml:"password"`
	Schedule         string      `yaml:"schedule"`
	Timezone         string      `yaml:"timezone"`
	Window           string      `yaml:"window"`
	ExpectedDuration string      `yaml:"expected_duration"`
	GuardBefore      string      `yaml:"guard_before"`
	GuardAfter       string      `yaml:"guard_after"`
	MaxAge           string      `yaml:"max_age"`
	OnOverdue        string      `yaml:"on_overdue"`
	Missed           string      `yaml:"missed"`
	Grace            string      `yaml:"grace"`
	MaxAttempts      *int        `yaml:"max_attempts"`
	Canary           rawCanary   `yaml:"canary"`
	Deny             []rawDeny   `yaml:"deny"`
}

type rawTarget struct {
	Postgres  *postgres.Options  `yaml:"postgres"`
	HTTP      *httpkey.Options   `yaml:"http"`
	Generated *generated.Options `yaml:"generated"`
	MySQL     *mysql.Options     `yaml:"mysql"`
	Redis     *redis.Options     `yaml:"redis"`
}

type rawPassword struct {
	Length     *int   `yaml:"length"`
	Alphabet   string `yaml:"alphabet"`
	Characters string `yaml:"characters"`
}

type rawCanary struct {
	Attempts *int   `yaml:"attempts"`
	Interval string `yaml:"interval"`
}
