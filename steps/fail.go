package steps

import (
	"context"

	"github.com/switchboardhq/switchboard"
)

// Fail ends the run as failed with a message (the channel is not told when
// quiet).
var Fail = switchboard.StepType{
	Kind: "fail",
	Params: []switchboard.Param{
		{Name: "message", Required: true, Hint: "why the run fails, like message: '{{ steps.ok.decision }}'"},
		{Name: "quiet", Type: switchboard.TypeBool},
	},
	RunFunc: func(_ context.Context, s switchboard.StepRun) error {
		var p struct {
			Message string `json:"message"`
			Quiet   bool   `json:"quiet"`
		}
		if !s.Params(&p) {
			return nil
		}
		return s.Fail(p.Message, p.Quiet)
	},
}
