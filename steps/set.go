package steps

import (
	"context"
	"slices"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// Set names values for later steps: set: { host: '{{ steps.inst.public_ip }}' }
// leaves steps.ID.host.
var Set = switchboard.StepType{
	Kind: "set",
	Free: true,
	OutputsFunc: func(params map[string]any) ([]switchboard.Output, error) {
		var outs []switchboard.Output
		for name := range params {
			outs = append(outs, switchboard.Output{Name: name, Type: switchboard.TypeText})
		}
		slices.SortFunc(outs, func(a, b switchboard.Output) int { return strings.Compare(a.Name, b.Name) })
		return outs, nil
	},
	RunFunc: func(_ context.Context, s switchboard.StepRun) error {
		var p map[string]any
		if !s.Params(&p) {
			return nil
		}
		out := map[string]any{}
		for k, v := range p {
			out[k] = switchboard.FormatValue(v)
		}
		return s.Done(out)
	},
}
