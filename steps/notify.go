package steps

import (
	"context"
	"fmt"

	"github.com/switchboardhq/switchboard"
)

// Notify posts a message to the run's channel (in the thread of its first
// message with thread) or to another channel.
var Notify = switchboard.StepType{
	Kind: "notify",
	Params: []switchboard.Param{
		{Name: "text", Required: true, Hint: "what to post, like text: 'Restarting {{ steps.inst.name }}'"},
		{Name: "channel", Channel: true},
		{Name: "thread", Type: switchboard.TypeBool},
	},
	Outputs: []switchboard.Output{{Name: "ts", Type: switchboard.TypeText}},
	RunFunc: func(_ context.Context, s switchboard.StepRun) error {
		var p struct {
			Text    string `json:"text"`
			Channel string `json:"channel"`
			Thread  bool   `json:"thread"`
		}
		if !s.Params(&p) {
			return nil
		}
		run := s.Run()
		m := s.Say(fmt.Sprintf("notify%d", run.Cursor), p.Text)
		if p.Channel != "" && p.Channel != run.Request.ChannelID {
			// Only the run's own channel gets its response_url.
			m.ChannelID, m.ResponseURL = p.Channel, ""
		}
		m.Thread = p.Thread && p.Channel == ""
		return s.Done(map[string]any{"ts": ""})
	},
}
