package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// This file decodes the deploys section: branch deploy commands (/deploy),
// each with its branch source, what it launches, its health check, its
// limits and its teardown. A deploy's scheduled teardown and its expiry
// sweep become workflows of one step, so schedules, runs and reports work
// for them as for any workflow.

// Deploy is one deploy command as configured.
type Deploy struct {
	switchboard.DeploySpec
	// Source is where its branches come from: GitHub or a local git
	// repository.
	Source BranchSource `json:"source"`
	// Teardown, when set, tears every unpinned environment down on a
	// schedule, Warn after a warning in the channel.
	Teardown *switchboard.ScheduleTrigger `json:"teardown,omitempty"`
	Warn     time.Duration                `json:"warn,omitempty"`
	// Sweep is how often expired environments are terminated.
	Sweep time.Duration `json:"sweep"`
}

// BranchSource is a deploy's branch source: exactly one of GitHub and Git.
type BranchSource struct {
	GitHub *GitHubSource `json:"github,omitempty"`
	Git    *GitSource    `json:"git,omitempty"`
}

// GitHubSource reads a repository's open pull requests and branches.
type GitHubSource struct {
	Repository string `json:"repository"` // owner/name
	Token      Secret `json:"token,omitempty"`
	APIURL     string `json:"api_url,omitempty"`
}

// GitSource reads a local repository's branches.
type GitSource struct {
	Path string `json:"path"`
	// Demo creates a small repository with a few branches at Path when
	// there is none, for the built-in demo.
	Demo bool `json:"demo,omitempty"`
}

// Deploy returns the deploy command called name.
func (c *Config) Deploy(name string) (Deploy, bool) {
	for _, d := range c.Deploys {
		if d.Command == name {
			return d, true
		}
	}
	return Deploy{}, false
}

// DeploySpecs lists the deploys' specs, for the engine.
func (c *Config) DeploySpecs() []switchboard.DeploySpec {
	out := make([]switchboard.DeploySpec, len(c.Deploys))
	for i, d := range c.Deploys {
		out[i] = d.DeploySpec
	}
	return out
}

var deployKeys = []string{"cloud", "terminate_command", "allow", "channel", "source", "launch", "health", "lifetime",
	"redeploy", "limits", "pin", "teardown", "sweep", "terminate_all"}

func (d *decoder) deploys(p pair, c *Config) []Deploy {
	if p.key == nil {
		return nil
	}
	var out []Deploy
	for _, dp := range d.pairs(p.val, p.path, p.line()) {
		out = append(out, d.deploy(dp, c))
	}
	return out
}

func (d *decoder) deploy(p pair, c *Config) Deploy {
	dep := Deploy{DeploySpec: switchboard.DeploySpec{Command: p.name, Line: p.key.Line, Lifetime: 8 * time.Hour,
		Redeploy: "replace", PinMax: 24 * time.Hour}, Sweep: time.Hour}
	if !commandName.MatchString(p.name) {
		d.add(p.key.Line, p.path, "a command name starts with / and has no spaces, like /deploy")
	}
	if _, taken := c.Command(p.name); taken {
		d.add(p.key.Line, p.path, "%s is already a command under commands", p.name)
	}
	f := d.fields(p.val, p.path, p.line(), deployKeys...)

	if q, ok := f["cloud"]; ok {
		if s, ok := d.str(q); ok {
			dep.Cloud = s
			if _, ok := c.Cloud(s); !ok {
				d.problemAt(q, "unknown cloud %s (%s)", d.show(q, s), defined("clouds", cloudNames(c.Clouds)))
			}
		}
	} else if len(c.Clouds) == 1 {
		dep.Cloud = c.Clouds[0].Name
	} else {
		d.add(p.key.Line, childPath(p.path, "cloud"), "is required: which cloud does it launch in? (%s)", defined("clouds", cloudNames(c.Clouds)))
	}
	if q, ok := f["terminate_command"]; ok {
		if s, ok := d.str(q); ok {
			if !commandName.MatchString(s) {
				d.problemAt(q, "a command name starts with / and has no spaces, like /napoteterminate")
			}
			dep.TerminateCommand = s
		}
	}
	dep.Access = d.access(f["allow"], p, c)
	if q, ok := f["channel"]; ok {
		if s, ok := d.str(q); ok {
			dep.Channel = d.channelTarget(q, s, c)
		}
	}
	dep.Source = d.branchSource(f["source"], p)
	dep.Launch = d.deployLaunch(f["launch"], p)
	if q, ok := f["health"]; ok {
		dep.Health = d.healthCheck(q)
	}
	if q, ok := f["lifetime"]; ok {
		dep.Lifetime, _ = d.positiveDuration(q)
	}
	if q, ok := f["redeploy"]; ok {
		if s, ok := d.str(q); ok {
			if s != "replace" && s != "refuse" {
				d.problemAt(q, "must be one of replace, refuse, got %s", d.show(q, s))
			}
			dep.Redeploy = s
		}
	}
	if q, ok := f["limits"]; ok {
		lf := d.fields(q.val, q.path, q.line(), "per_user", "total")
		if n, ok := lf["per_user"]; ok {
			dep.PerUser = d.count(n)
		}
		if n, ok := lf["total"]; ok {
			dep.Total = d.count(n)
		}
	}
	if q, ok := f["pin"]; ok {
		pf := d.fields(q.val, q.path, q.line(), "max")
		if m, ok := pf["max"]; ok {
			dep.PinMax, _ = d.positiveDuration(m)
		}
	}
	if q, ok := f["teardown"]; ok {
		var extra map[string]pair
		dep.Teardown, extra = d.scheduleWith(q, "warn")
		if w, ok := extra["warn"]; ok {
			dep.Warn, _ = d.positiveDuration(w)
		}
	}
	if q, ok := f["sweep"]; ok {
		if v, ok := d.positiveDuration(q); ok {
			if _, err := sweepCron(v); err != nil {
				d.problemAt(q, "%v", err)
			}
			dep.Sweep = v
		}
	}
	if q, ok := f["terminate_all"]; ok {
		dep.TerminateAll = d.policyApproval(q, c)
	}
	if dep.Channel == "" && d.problems.none(childPath(p.path, "channel")) {
		d.required(p, f, "channel", "where the teardowns and sweeps report: a channel id like C0DEPLOY or a Slack incoming webhook URL")
	}
	return dep
}

// deployWorkflows makes the workflows of each deploy's schedules: its
// teardown (when configured) and its sweep.
func deployWorkflows(deploys []Deploy) []switchboard.WorkflowSpec {
	var out []switchboard.WorkflowSpec
	step := func(kind string, with map[string]any) []switchboard.StepSpec {
		b, _ := json.Marshal(with)
		return []switchboard.StepSpec{{Kind: kind, With: b}}
	}
	for _, dep := range deploys {
		if t := dep.Teardown; t != nil {
			sched := *t
			sched.Lead = dep.Warn
			out = append(out, switchboard.WorkflowSpec{Name: dep.Command + ".teardown", Trigger: switchboard.TriggerSpec{Schedule: &sched},
				Cloud: dep.Cloud, Channel: dep.Channel, Line: dep.Line,
				Steps: step("deploy_teardown", map[string]any{"deploy": dep.Command, "warn": dep.Warn.String()})})
		}
		spec, _ := sweepCron(dep.Sweep)
		out = append(out, switchboard.WorkflowSpec{Name: dep.Command + ".sweep",
			Trigger: switchboard.TriggerSpec{Schedule: &switchboard.ScheduleTrigger{Cron: spec, Timezone: "UTC", Missed: "run_once"}},
			Cloud:   dep.Cloud, Channel: dep.Channel, Line: dep.Line,
			Steps: step("deploy_sweep", map[string]any{"deploy": dep.Command})})
	}
	return out
}

// sweepCron writes a sweep interval as a cron schedule: whole minutes that
// divide an hour, or whole hours that divide a day.
func sweepCron(every time.Duration) (string, error) {
	switch {
	case every >= time.Hour && every%time.Hour == 0 && 24%int(every/time.Hour) == 0:
		return fmt.Sprintf("0 */%d * * *", int(every/time.Hour)), nil
	case every >= time.Minute && every < time.Hour && every%time.Minute == 0 && 60%int(every/time.Minute) == 0:
		return fmt.Sprintf("*/%d * * * *", int(every/time.Minute)), nil
	}
	return "", fmt.Errorf("must be whole minutes that divide an hour (5m, 15m, 30m) or whole hours that divide a day (1h, 6h), got %s", every)
}

func (d *decoder) branchSource(p pair, deploy pair) BranchSource {
	var s BranchSource
	if p.key == nil {
		d.add(deploy.key.Line, childPath(deploy.path, "source"), "is required: where branches come from, like source: { github: { repository: acme/app } } or source: { git: { path: /srv/app.git } }")
		return s
	}
	f := d.fields(p.val, p.path, p.line(), "github", "git")
	if q, ok := f["github"]; ok {
		gf := d.fields(q.val, q.path, q.line(), "repository", "token", "api_url")
		g := &GitHubSource{}
		if r, ok := gf["repository"]; ok {
			if v, ok := d.str(r); ok {
				if parts := strings.Split(v, "/"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
					d.problemAt(r, "must be OWNER/NAME, like acme/app, got %s", d.show(r, v))
				}
				g.Repository = v
			}
		} else {
			d.required(q, gf, "repository", "the repository as OWNER/NAME, like repository: acme/app")
		}
		g.Token, _, _ = d.secret(gf, "token")
		if u, ok := gf["api_url"]; ok {
			if v, ok := d.str(u); ok {
				if msg := checkHTTPURL(v, "https://github.example.com/api/v3/"); msg != "" {
					d.problemAt(u, "%s", msg)
				}
				g.APIURL = v
			}
		}
		s.GitHub = g
	}
	if q, ok := f["git"]; ok {
		gf := d.fields(q.val, q.path, q.line(), "path", "demo")
		g := &GitSource{}
		if v, ok := gf["path"]; ok {
			g.Path, _ = d.str(v)
		} else {
			d.required(q, gf, "path", "the repository's directory, like path: /srv/app.git")
		}
		if v, ok := gf["demo"]; ok {
			g.Demo, _ = d.boolean(v)
		}
		s.Git = g
	}
	switch {
	case s.GitHub != nil && s.Git != nil:
		d.problemAt(p, "has both github and git; a deploy has one branch source")
	case s.GitHub == nil && s.Git == nil && d.problems.none(p.path):
		d.problemAt(p, "needs github or git")
	}
	return s
}

func (d *decoder) deployLaunch(p pair, deploy pair) switchboard.DeployLaunch {
	l := switchboard.DeployLaunch{Wait: 5 * time.Minute}
	if p.key == nil {
		d.add(deploy.key.Line, childPath(deploy.path, "launch"), "is required: what to launch, like launch: { image: ami-0123456789abcdef0, type: t3.small }")
		return l
	}
	f := d.fields(p.val, p.path, p.line(), "image", "type", "subnet", "security_groups", "key", "user_data", "tags", "wait")
	if q, ok := f["image"]; ok {
		l.Image, _ = d.str(q)
	} else {
		d.required(p, f, "image", "the image to launch, like image: ami-0123456789abcdef0")
	}
	if q, ok := f["type"]; ok {
		l.Type, _ = d.str(q)
	}
	if q, ok := f["subnet"]; ok {
		l.Subnet, _ = d.str(q)
	}
	if q, ok := f["security_groups"]; ok {
		l.SecurityGroups, _ = d.list(q, "sg-0abc, sg-0def")
	}
	if q, ok := f["key"]; ok {
		l.Key, _ = d.str(q)
	}
	if q, ok := f["user_data"]; ok {
		l.UserData, _ = d.str(q)
		if len(l.UserData) > 16384 {
			d.problemAt(q, "is %d bytes; EC2 takes at most 16384", len(l.UserData))
		}
	}
	if q, ok := f["tags"]; ok {
		l.Tags = d.strMap(q)
		for k := range l.Tags {
			if strings.HasPrefix(k, "switchboard:") {
				d.problemAt(q, "tag %q is Switchboard's own; pick another key", k)
			}
		}
	}
	if q, ok := f["wait"]; ok {
		l.Wait, _ = d.positiveDuration(q)
	}
	return l
}

func (d *decoder) healthCheck(p pair) *switchboard.HealthCheck {
	h := &switchboard.HealthCheck{Timeout: 5 * time.Minute, OnFailure: "terminate"}
	f := d.fields(p.val, p.path, p.line(), "url", "timeout", "expect", "on_failure")
	if q, ok := f["url"]; ok {
		h.URL, _ = d.str(q)
		if !templated(h.URL) {
			if msg := checkHTTPURL(h.URL, "http://{{ steps.env.address }}:8080/healthz"); msg != "" {
				d.problemAt(q, "%s", msg)
			}
		}
	} else {
		d.required(p, f, "url", "the URL to check, like url: 'http://{{ steps.env.address }}:8080/healthz'")
	}
	if q, ok := f["timeout"]; ok {
		h.Timeout, _ = d.positiveDuration(q)
	}
	if q, ok := f["expect"]; ok {
		h.Expect, _ = d.codes(q)
	}
	if q, ok := f["on_failure"]; ok {
		if s, ok := d.str(q); ok {
			if s != "terminate" && s != "keep" {
				d.problemAt(q, "must be one of terminate, keep, got %s", d.show(q, s))
			}
			h.OnFailure = s
		}
	}
	return h
}

// positiveDuration decodes a duration that must be more than zero.
func (d *decoder) positiveDuration(p pair) (time.Duration, bool) {
	v, ok := d.duration(p)
	if ok && v <= 0 {
		d.problemAt(p, "must be more than zero")
		return 0, false
	}
	return v, ok
}

// count decodes a whole number of zero or more.
func (d *decoder) count(p pair) int {
	s, ok := d.str(p)
	if !ok {
		return 0
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 || fmt.Sprint(n) != s {
		d.problemAt(p, "expected a whole number of zero or more, got %s", d.show(p, s))
		return 0
	}
	return n
}
