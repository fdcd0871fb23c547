package slack

import (
	"context"
	"fmt"
	"log/slog"

	goslack "github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard"
)

// Approver takes decisions on approval requests (the engine's Approvals).
type Approver interface {
	Decide(ctx context.Context, id, user string, approve bool, source string) (*switchboard.Approval, string, error)
}

// ApprovalButtons handles clicks on the Approve and Deny buttons of an
// approval request: the decision goes to the Approver (which checks who may
// answer, and audits every refusal); once the request is decided, the
// message is replaced by its text and the decision, buttons gone; a click
// that is refused gets an answer only the clicker sees.
type ApprovalButtons struct {
	Approver  Approver
	Messenger *Messenger
	Logger    *slog.Logger
}

var _ InteractionHandler = (*ApprovalButtons)(nil)

// HandleInteraction acts on the approve and deny actions of a block_actions
// payload and ignores anything else.
func (a *ApprovalButtons) HandleInteraction(ctx context.Context, in Interaction) error {
	cb := in.Callback
	for _, act := range cb.ActionCallback.BlockActions {
		if act == nil || act.ActionID != "approve" && act.ActionID != "deny" {
			continue
		}
		approve := act.ActionID == "approve"
		ap, text, err := a.Approver.Decide(ctx, act.Value, cb.User.ID, approve, in.Source)
		if err != nil {
			return fmt.Errorf("decide approval %s: %w", act.Value, err)
		}
		if cb.ResponseURL == "" || a.Messenger == nil {
			continue
		}
		reply := switchboard.Message{ResponseURL: cb.ResponseURL, ChannelID: cb.Channel.ID, Text: text}
		if decidedBy(ap, cb.User.ID) {
			// Decided: the request itself now says how, for everyone.
			reply.Text, reply.Replace = ap.Text+"\n"+decisionLine(ap), true
		} else {
			reply.Ephemeral = true
		}
		if _, err := a.Messenger.Post(ctx, reply); err != nil && a.Logger != nil {
			a.Logger.Warn("answer approval click", "approval", act.Value, "err", err)
		}
	}
	return nil
}

// decidedBy reports whether user's answer decided the approval (so the
// request is replaced for everyone), rather than a click refused after it.
func decidedBy(ap *switchboard.Approval, user string) bool {
	if ap == nil || ap.State == switchboard.ApprovalPending || ap.State == switchboard.ApprovalTimedOut || len(ap.Decisions) == 0 {
		return false
	}
	return ap.Decisions[len(ap.Decisions)-1].User == user
}

// UpdateApproval rewrites an approval request once it is decided, however
// it was decided (a button in Slack or the console), so that everyone in
// the channel sees who decided and when, and the buttons are gone: with
// chat.update when the request was posted with chat.postMessage (it has a
// ts), otherwise through the request's response_url with replace_original.
// A request posted to an incoming webhook cannot be changed; nothing is
// done. Nor for a decision made with the buttons in Slack: ApprovalButtons
// replaced the request through the click's response_url already.
func (m *Messenger) UpdateApproval(ctx context.Context, posted switchboard.MessageRecord, ap *switchboard.Approval) error {
	if ap == nil || ap.State == switchboard.ApprovalPending {
		return nil
	}
	if n := len(ap.Decisions); n > 0 && ap.State != switchboard.ApprovalTimedOut && (ap.Decisions[n-1].Source == sourceHTTP || ap.Decisions[n-1].Source == sourceSocket) {
		return nil
	}
	text := ap.Text + "\n" + decisionLine(ap)
	switch {
	case posted.Ref != "" && posted.ChannelID != "" && m.BotToken != "":
		api := goslack.New(m.BotToken, goslack.OptionAPIURL(apiBaseURL(m.APIURL)), goslack.OptionHTTPClient(m.client()))
		// Blocks are sent again: without them chat.update keeps the old
		// ones, buttons included.
		block := goslack.NewSectionBlock(goslack.NewTextBlockObject(goslack.MarkdownType, text, false, false), nil, nil)
		_, _, _, err := api.UpdateMessageContext(ctx, posted.ChannelID, posted.Ref, goslack.MsgOptionText(text, false), goslack.MsgOptionBlocks(block))
		if err != nil {
			return postMessageError(ctx, posted.ChannelID, err)
		}
		return nil
	case posted.ResponseURL != "" && posted.Via == viaResponseURL:
		return m.postResponseURL(ctx, switchboard.Message{ResponseURL: posted.ResponseURL, ChannelID: posted.ChannelID, Text: text, Replace: true})
	}
	return nil
}

// decisionLine says how an approval was decided and when, for the replaced
// message.
func decisionLine(ap *switchboard.Approval) string {
	when := ""
	if !ap.DecidedAt.IsZero() {
		when = " at " + ap.DecidedAt.UTC().Format("15:04 UTC")
	}
	var by string
	for _, d := range ap.Decisions {
		if d.Approve == (ap.State == switchboard.ApprovalApproved) {
			if by != "" {
				by += ", "
			}
			by += "<@" + d.User + ">"
		}
	}
	switch ap.State {
	case switchboard.ApprovalApproved:
		return "✅ Approved by " + by + when
	case switchboard.ApprovalDenied:
		return "❌ Denied by " + by + when
	}
	if ap.State == switchboard.ApprovalTimedOut {
		counts := "denied"
		if ap.OnTimeout == "approve" {
			counts = "approved"
		}
		return "⏱ Nobody answered in time" + when + "; it counts as " + counts + "."
	}
	return "⏱ " + ap.State + when
}
