package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// Details reads what the console's run detail and approvals inbox show:
// one run with its messages, approvals and audit lines, and the approvals
// pending and decided.
type Details interface {
	GetRun(ctx context.Context, id string) (*switchboard.Run, error)
	RunMessages(ctx context.Context, runID string) ([]switchboard.MessageRecord, error)
	RunApprovals(ctx context.Context, runID string) ([]switchboard.Approval, error)
	RunAudit(ctx context.Context, runID string) ([]switchboard.AuditEvent, error)
	ListApprovals(ctx context.Context, state string, limit int) ([]switchboard.Approval, error)
	ApprovalsByID(ctx context.Context, ids []string) ([]switchboard.Approval, error)
}

// Fleet describes each cloud's instances, with the commands that may touch
// them, for the console's fleet view.
type Fleet interface {
	Describe(ctx context.Context) []switchboard.FleetCloud
}

// Namer gives the names the console shows for user and channel ids; an id
// it does not know is left out.
type Namer interface {
	Names(ctx context.Context, ids []string) map[string]string
}

// runDetail is everything the console shows about one run.
type runDetail struct {
	Run       *switchboard.Run            `json:"run"`
	Messages  []switchboard.MessageRecord `json:"messages"`
	Approvals []switchboard.Approval      `json:"approvals"`
	Audit     []switchboard.AuditEvent    `json:"audit"`
}

// handleRun answers one run with its steps, the messages it sent, its
// approvals and who decided them, and its audit lines.
func handleRun(details Details, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if details == nil {
			writeError(w, r, logger, switchboard.Errorf(switchboard.ENOTFOUND, "Run details are not available."))
			return
		}
		id := r.PathValue("id")
		ctx := r.Context()
		run, err := details.GetRun(ctx, id)
		if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
			writeError(w, r, logger, switchboard.Errorf(switchboard.ENOTFOUND, "There is no run %s.", id))
			return
		} else if err != nil {
			writeError(w, r, logger, fmt.Errorf("read run %s: %w", id, err))
			return
		}
		d := runDetail{Run: run}
		if d.Messages, err = details.RunMessages(ctx, id); err == nil {
			if d.Approvals, err = details.RunApprovals(ctx, id); err == nil {
				d.Audit, err = details.RunAudit(ctx, id)
			}
		}
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read run %s: %w", id, err))
			return
		}
		d.Messages, d.Approvals, d.Audit = orEmpty(d.Messages), orEmpty(d.Approvals), orEmpty(d.Audit)
		writeJSON(w, http.StatusOK, d)
	})
}

// handleApprovals answers the approvals inbox: every pending approval and
// the newest decided ones; with ?ids=A,B, just those approvals.
func handleApprovals(details Details, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if details == nil {
			writeJSON(w, http.StatusOK, map[string]any{"pending": []switchboard.Approval{}, "decided": []switchboard.Approval{}})
			return
		}
		if v := r.URL.Query().Get("ids"); v != "" {
			// The approvals the playground shows, to update their buttons.
			ids := strings.Split(v, ",")
			if len(ids) > maxNames {
				writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "Ask for at most %d approvals at once, not %d.", maxNames, len(ids)))
				return
			}
			aps, err := details.ApprovalsByID(r.Context(), ids)
			if err != nil {
				writeError(w, r, logger, fmt.Errorf("read approvals: %w", err))
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"approvals": orEmpty(aps)})
			return
		}
		limit, err := parseLimit(r.URL.Query().Get("limit"), 50, 500)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		pending, err := details.ListApprovals(r.Context(), switchboard.ApprovalPending, 500)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list pending approvals: %w", err))
			return
		}
		all, err := details.ListApprovals(r.Context(), "", limit+len(pending))
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list approvals: %w", err))
			return
		}
		decided := []switchboard.Approval{}
		for _, ap := range all {
			if ap.State != switchboard.ApprovalPending && len(decided) < limit {
				decided = append(decided, ap)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"pending": orEmpty(pending), "decided": decided})
	})
}

// handleFleet answers each cloud's instances with the commands that may
// touch them.
func handleFleet(fleet Fleet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clouds := []switchboard.FleetCloud{}
		if fleet != nil {
			clouds = fleet.Describe(r.Context())
		}
		writeJSON(w, http.StatusOK, map[string]any{"clouds": clouds})
	})
}

// maxNames bounds the ids one names request may ask about.
const maxNames = 100

// handleNames answers the names of user and channel ids:
// GET /console/api/names?ids=U0OPS1,C0OPS.
func handleNames(names Namer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ids []string
		for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		if len(ids) > maxNames {
			writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "Ask for at most %d names at once, not %d.", maxNames, len(ids)))
			return
		}
		out := map[string]string{}
		if names != nil && len(ids) > 0 {
			out = names.Names(r.Context(), ids)
		}
		writeJSON(w, http.StatusOK, map[string]any{"names": out})
	})
}

// transcriptLine is a transcript line as the console gets it: an approval
// request carries its approval as it stands now, so a decided one shows
// who decided and when after any reload, to everyone.
type transcriptLine struct {
	switchboard.TranscriptLine
	Approval *switchboard.Approval `json:"approval,omitempty"`
}

// withApprovals attaches their approvals to the lines that asked for one.
func withApprovals(ctx context.Context, details Details, lines []switchboard.TranscriptLine) ([]transcriptLine, error) {
	out := make([]transcriptLine, len(lines))
	var ids []string
	for i, l := range lines {
		out[i].TranscriptLine = l
		if l.ApprovalID != "" {
			ids = append(ids, l.ApprovalID)
		}
	}
	if details == nil || len(ids) == 0 {
		return out, nil
	}
	aps, err := details.ApprovalsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := map[string]*switchboard.Approval{}
	for i := range aps {
		byID[aps[i].ID] = &aps[i]
	}
	for i := range out {
		out[i].Approval = byID[out[i].ApprovalID]
	}
	return out, nil
}

// orEmpty makes a nil slice an empty one, so JSON says [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
