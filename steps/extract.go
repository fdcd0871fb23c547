package steps

import (
	"context"
	"fmt"
	"regexp"

	"github.com/switchboardhq/switchboard"
)

// Extract finds a regular expression in a text; its named groups are the
// step's outputs.
var Extract = switchboard.StepType{
	Kind: "extract",
	Params: []switchboard.Param{
		{Name: "from", Required: true, Hint: "the text to search, like from: '{{ event.body }}'"},
		{Name: "pattern", Required: true, Pattern: true, Hint: "a regular expression with named groups, like pattern: '(?P<instance>i-[0-9a-f]{8,17})'"},
		{Name: "required", Type: switchboard.TypeBool},
	},
	OutputsFunc: func(params map[string]any) ([]switchboard.Output, error) {
		pattern, _ := params["pattern"].(string)
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, fmt.Errorf("pattern: %w", err)
		}
		var outs []switchboard.Output
		for _, name := range re.SubexpNames() {
			if name != "" {
				outs = append(outs, switchboard.Output{Name: name, Type: switchboard.TypeText})
			}
		}
		return outs, nil
	},
	RunFunc: func(_ context.Context, s switchboard.StepRun) error {
		var p struct {
			From     string `json:"from"`
			Pattern  string `json:"pattern"`
			Required *bool  `json:"required"`
		}
		if !s.Params(&p) {
			return nil
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			return s.Fail(fmt.Sprintf("extract: %v", err), false)
		}
		m := re.FindStringSubmatch(p.From)
		out := map[string]any{}
		for i, name := range re.SubexpNames() {
			if name == "" {
				continue
			}
			out[name] = ""
			if m != nil {
				out[name] = m[i]
			}
		}
		if m == nil && (p.Required == nil || *p.Required) {
			return s.Fail(fmt.Sprintf("Found nothing matching %s in %q.", p.Pattern, clip(p.From, 120)), false)
		}
		return s.Done(out)
	},
}
