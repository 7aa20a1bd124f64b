package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/swarmkey/swarmkey/providers"
)

// Another writer's label changes on an AWS secret, made straight against
// moto between two of swarmkey's calls. Each leaves the secret valid at the
// moment it is made (every label it sets names a credential that logs in,
// or a pending version nobody applied), so a broken invariant afterwards is
// swarmkey's doing.
const (
	// WriterDropPending removes AWSPENDING from its version (a clean-up
	// tool discarding what it takes for a stale pending version).
	WriterDropPending = "drop AWSPENDING"
	// WriterStrayPending writes a version of its own as AWSPENDING (a
	// second rotator that starts and never applies it), which takes the
	// label from swarmkey's pending version.
	WriterStrayPending = "stray AWSPENDING"
	// WriterRollBack moves AWSCURRENT back to AWSPREVIOUS's version, when
	// that credential logs in (an operator's roll-back; alternating).
	WriterRollBack = "roll AWSCURRENT back"
	// WriterForeignLabel moves a label of another tool onto the current
	// version.
	WriterForeignLabel = "foreign label"
)

// writerActions lists the actions for a strategy.
func writerActions(strategy string) []string {
	if strategy == Alternating {
		return []string{WriterDropPending, WriterStrayPending, WriterRollBack, WriterForeignLabel}
	}
	return []string{WriterDropPending, WriterStrayPending, WriterForeignLabel}
}

// anotherWriter does action on p's secret and returns what it did ("" when
// there was nothing to do it to; a roll-back whose previous does not log in
// becomes a foreign label).
func (h *Harness) anotherWriter(p *Policy, action string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := h.aws.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(p.SecretID)})
	if err != nil {
		return ""
	}
	holder := map[string]string{}
	for v, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			holder[l] = v
		}
	}
	move := func(label, to, from string) bool {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: awsv2.String(p.SecretID), VersionStage: awsv2.String(label)}
		if to != "" {
			in.MoveToVersionId = awsv2.String(to)
		}
		if from != "" {
			in.RemoveFromVersionId = awsv2.String(from)
		}
		_, err := h.aws.UpdateSecretVersionStage(ctx, in)
		return err == nil
	}
	switch action {
	case WriterDropPending:
		if v := holder["AWSPENDING"]; v != "" && v != holder["AWSCURRENT"] && move("AWSPENDING", "", v) {
			return action
		}
		return ""
	case WriterStrayPending:
		role := p.Role
		if p.Strategy == Alternating {
			if cur, ok, err := h.Stage(ctx, p, providers.StageCurrent); err == nil && ok && cur.Username == p.Role {
				role = p.Alternate()
			}
		}
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		doc, _ := json.Marshal(map[string]any{"engine": "postgres", "host": "127.0.0.1", "port": h.PG.Port, "dbname": stateDB,
			"username": role, "password": hex.EncodeToString(pw)})
		_, err := h.aws.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awsv2.String(p.SecretID),
			ClientRequestToken: awsv2.String(uuid.NewString()), SecretString: awsv2.String(string(doc)),
			VersionStages: []string{"AWSPENDING"}})
		if err != nil {
			return ""
		}
		h.NoteStray(p)
		return action
	case WriterRollBack:
		cur, prev := holder["AWSCURRENT"], holder["AWSPREVIOUS"]
		if cur != "" && prev != "" && prev != placeholder {
			if l, ok, err := h.Stage(ctx, p, providers.StagePrevious); err == nil && ok && h.LogsIn(ctx, l) == nil {
				if move("AWSCURRENT", prev, cur) {
					h.NoteRollBack(p)
					return action
				}
				return ""
			}
		}
		action = WriterForeignLabel
		fallthrough
	case WriterForeignLabel:
		cur := holder["AWSCURRENT"]
		if cur == "" {
			return ""
		}
		if holder["OTHERTOOL"] == cur {
			if move("OTHERTOOL", "", cur) {
				return action
			}
			return ""
		}
		if move("OTHERTOOL", cur, holder["OTHERTOOL"]) {
			return action
		}
	}
	return ""
}
