package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/swarmkey/swarmkey/state"
)

// ExportAudit writes every audit entry older than before to w, one JSON
// object per line (state.ExportedEntry: id, at, actor, policy, rotation,
// action, detail), ordered by time, and returns how many it wrote. Entries
// hold no value, so neither does the export. Once every line is written it
// appends audit.exported (actor, before, entries): the record that
// swarmkey_drop_audit_partition requires before it drops a month. before
// must not be in the future (entries are still being written before it): an
// InputError.
func (s *Session) ExportAudit(ctx context.Context, before time.Time, w io.Writer, actor string) (int, error) {
	if before.After(time.Now()) {
		return 0, Inputf("--before %s is in the future: entries are still being written before it; give a time in the past",
			before.UTC().Format(time.RFC3339))
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	n, err := s.DB.ExportAudit(ctx, before, func(e state.ExportedEntry) error { return enc.Encode(e) })
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("export the audit log (%d entries written; not recorded as exported): %w", n, err)
	}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: actor, Action: "audit.exported",
		Detail: map[string]any{"before": before.UTC().Format(time.RFC3339Nano), "entries": n}}); err != nil {
		return n, fmt.Errorf("the audit log was exported (%d entries), but the export could not be recorded, so no month can be dropped for it: %w", n, err)
	}
	return n, nil
}
