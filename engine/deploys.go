package engine

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// A deploy command (/deploy) is planned into the deploy step types: a
// lookup, a launch, a health check and an announcement for a branch; one
// step each for list, terminate, pin and unpin. Its scheduled teardown and
// sweep are workflows of one step that config makes from the same spec.

// deployRequest is a parsed deploy command.
type deployRequest struct {
	action string // deploy | list | terminate | pin | unpin
	query  string
	all    bool
	pinFor time.Duration
	until  time.Time
	reason string
}

// DeployHelp is the sentence that tells a user what a deploy command can
// do.
func DeployHelp(spec switchboard.DeploySpec, lead string) string {
	s := fmt.Sprintf("Try `%[1]s <branch, ticket or PR>`, `%[1]s list`, `%[1]s terminate <branch|all>`, `%[1]s pin <branch> [for 4h | until 2026-12-24] [reason]` or `%[1]s unpin <branch>`.", spec.Command)
	if lead != "" {
		return lead + " " + s
	}
	return s
}

var untilDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?$`)

// parseDeploy reads the words after a deploy command. terminate is set
// when the command was the spec's terminate command.
func parseDeploy(spec switchboard.DeploySpec, text string, terminate bool, now time.Time) (deployRequest, *switchboard.Error) {
	fields := strings.Fields(text)
	if terminate {
		fields = append([]string{"terminate"}, fields...)
	}
	if len(fields) == 0 || fields[0] == "help" {
		return deployRequest{}, switchboard.Errorf(switchboard.EINVALID, "%s", DeployHelp(spec, ""))
	}
	r := deployRequest{action: strings.ToLower(fields[0])}
	rest := fields[1:]
	switch r.action {
	case "list":
		if len(rest) > 0 {
			return r, switchboard.Errorf(switchboard.EINVALID, "`%s list` takes nothing after it.", spec.Command)
		}
	case "terminate":
		if len(rest) != 1 {
			return r, switchboard.Errorf(switchboard.EINVALID, "Which environment? Try `%s terminate <branch>` or `%s terminate all`.", spec.Command, spec.Command)
		}
		r.query, r.all = rest[0], strings.EqualFold(rest[0], "all")
	case "unpin":
		if len(rest) != 1 {
			return r, switchboard.Errorf(switchboard.EINVALID, "Which environment? Try `%s unpin <branch>`.", spec.Command)
		}
		r.query = rest[0]
	case "pin":
		if len(rest) == 0 {
			return r, switchboard.Errorf(switchboard.EINVALID, "Which environment? Try `%s pin <branch> for 4h [reason]`.", spec.Command)
		}
		r.query, rest = rest[0], rest[1:]
		r.pinFor = spec.PinMax
		if len(rest) >= 2 && (rest[0] == "for" || rest[0] == "until") {
			switch rest[0] {
			case "for":
				d, err := time.ParseDuration(rest[1])
				if err != nil || d <= 0 {
					return r, switchboard.Errorf(switchboard.EINVALID, "%q is not a duration; write it like 4h or 90m.", rest[1])
				}
				r.pinFor = d
			case "until":
				if !untilDate.MatchString(rest[1]) {
					return r, switchboard.Errorf(switchboard.EINVALID, "%q is not a date; write it like 2026-12-24 or 2026-12-24T18:00Z.", rest[1])
				}
				t, err := parseUntil(rest[1])
				if err != nil {
					return r, switchboard.Errorf(switchboard.EINVALID, "%q is not a date; write it like 2026-12-24 or 2026-12-24T18:00Z.", rest[1])
				}
				r.until, r.pinFor = t, 0
			}
			rest = rest[2:]
		}
		r.reason = strings.Join(rest, " ")
		if ceiling := now.Add(spec.PinMax); r.until.After(ceiling) || r.pinFor > spec.PinMax {
			return r, switchboard.Errorf(switchboard.EINVALID, "A pin lasts at most %s here; ask for less.", switchboard.Humanize(spec.PinMax))
		}
	default:
		// A query may be several words of a pull request's title.
		r.action, r.query = "deploy", strings.Join(fields, " ")
	}
	return r, nil
}

func parseUntil(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05Z", "2006-01-02T15:04Z", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if layout == "2006-01-02" {
				t = t.Add(24*time.Hour - time.Second) // to the end of that day
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date")
}

// planDeploy makes the plan of a parsed deploy command, and says what to
// ack.
func planDeploy(spec switchboard.DeploySpec, r deployRequest) ([]switchboard.Step, string) {
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"deploy": spec.Command}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	switch r.action {
	case "list":
		return []switchboard.Step{mustStep("deploy_list", "", with(nil))}, fmt.Sprintf("Listing the environments of %s — I'll report back here.", spec.Command)
	case "terminate":
		w := with(map[string]any{"query": r.query, "all": r.all})
		ack := fmt.Sprintf("Terminating the environment of %s — I'll report back here.", r.query)
		if r.all {
			ack = fmt.Sprintf("Terminating every unpinned environment of %s — I'll report back here.", spec.Command)
			if spec.TerminateAll != nil {
				w["approval"] = spec.TerminateAll
				ack = fmt.Sprintf("Terminating every unpinned environment of %s needs an approval — I'll ask here.", spec.Command)
			}
		}
		return []switchboard.Step{mustStep("deploy_terminate", "", w)}, ack
	case "pin", "unpin":
		w := with(map[string]any{"query": r.query, "max": spec.PinMax.String(), "reason": r.reason, "unpin": r.action == "unpin"})
		if r.pinFor > 0 {
			w["for"] = r.pinFor.String()
		}
		if !r.until.IsZero() {
			w["until"] = r.until
		}
		ack := fmt.Sprintf("Pinning %s — I'll report back here.", r.query)
		if r.action == "unpin" {
			ack = fmt.Sprintf("Unpinning %s — I'll report back here.", r.query)
		}
		return []switchboard.Step{mustStep("deploy_pin", "", w)}, ack
	}
	return deployLaunchPlan(spec, r.query), fmt.Sprintf("Looking for %q among the open pull requests and branches — I'll report back here.", r.query)
}

// deployLaunchPlan is the plan of `/deploy QUERY`: find the branch, launch
// its environment, check its health when configured, announce it.
func deployLaunchPlan(spec switchboard.DeploySpec, query string) []switchboard.Step {
	l := spec.Launch
	plan := []switchboard.Step{
		mustStep("deploy_find", "branch", map[string]any{"deploy": spec.Command, "query": query}),
		mustStep("deploy_launch", "env", map[string]any{
			"deploy": spec.Command, "branch": "{{ steps.branch.name }}", "commit": "{{ steps.branch.commit }}", "pr": "{{ steps.branch.pr }}",
			"image": l.Image, "type": l.Type, "subnet": l.Subnet, "security_groups": l.SecurityGroups, "key": l.Key,
			"user_data": l.UserData, "tags": l.Tags, "wait": l.Wait.String(), "lifetime": spec.Lifetime.String(),
			"redeploy": spec.Redeploy, "per_user": spec.PerUser, "total": spec.Total,
		}),
	}
	if h := spec.Health; h != nil {
		plan = append(plan, mustStep("deploy_health", "health", map[string]any{
			"deploy": spec.Command, "url": h.URL, "timeout": h.Timeout.String(), "expect": h.Expect, "on_failure": h.OnFailure, "id": "{{ steps.env.id }}",
		}))
	}
	return append(plan, mustStep("deploy_announce", "", map[string]any{
		"deploy": spec.Command, "branch": "{{ steps.branch.name }}", "id": "{{ steps.env.id }}", "old": "{{ steps.env.replaces }}",
	}))
}

func mustStep(kind, id string, with map[string]any) switchboard.Step {
	b, err := json.Marshal(with)
	if err != nil {
		// Strings, numbers, times and lists of them always encode.
		panic("engine: encode deploy step: " + err.Error())
	}
	return switchboard.Step{Kind: kind, ID: id, With: b}
}

// CheckDeploy compiles the templates of a deploy's launch plan (user data,
// tags, health URL) against what they can see, and reports each problem
// at the deploy's line.
func CheckDeploy(reg *switchboard.Registry, spec switchboard.DeploySpec) []Problem {
	plan := deployLaunchPlan(spec, "q")
	var problems []Problem
	for i, s := range plan {
		if _, err := compileStep(reg, plan, i); err != nil {
			key := "deploys." + spec.Command + ".launch"
			if s.Kind == "deploy_health" {
				key = "deploys." + spec.Command + ".health"
			}
			problems = append(problems, Problem{Line: spec.Line, Key: key, Msg: err.Error()})
		}
	}
	return problems
}
