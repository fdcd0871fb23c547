// Package engine is Switchboard's core logic: it turns a verified request
// into a durable run (parse, authorize, plan) and carries runs out step by
// step. It imports only the domain; storage, clouds and chat come in through
// the small interfaces declared here.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard"
)

// RunCreator writes a new run, its audit lines and the job that will carry it
// out, all in one transaction. When a run with the same delivery key exists
// already (a repeated delivery), it returns that run and created=false.
type RunCreator interface {
	CreateRun(ctx context.Context, run *switchboard.Run, audit []switchboard.AuditEvent) (existing *switchboard.Run, err error)
	Audit(ctx context.Context, ev switchboard.AuditEvent) error
}

// Commands answers slash commands: it implements switchboard.CommandHandler.
type Commands struct {
	Specs []switchboard.CommandSpec
	// Workflows are consulted for a command no spec has: a workflow whose
	// trigger is that command.
	Workflows []switchboard.WorkflowSpec
	Runs      RunCreator
	NowFunc   func() time.Time
	// Deploys are the branch deploy commands.
	Deploys []switchboard.DeploySpec
	// InstanceIDFunc reports whether s is an instance id of the named
	// cloud, as its provider writes them; nil means any id of the form
	// i-xxxxxxxx.
	InstanceIDFunc func(cloud, s string) bool
}

var _ switchboard.CommandHandler = (*Commands)(nil)

// NewRunID returns a new, time-ordered, unguessable run id like
// "r-01JD3…". Time first so ids sort by creation.
func NewRunID(now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("r-%011x%s", now.UnixMilli(), strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])))
}

func (c *Commands) now() time.Time {
	if c.NowFunc != nil {
		return c.NowFunc()
	}
	return time.Now()
}

func (c *Commands) spec(name string) (switchboard.CommandSpec, bool) {
	for _, s := range c.Specs {
		if s.Name == name {
			return s, true
		}
	}
	return switchboard.CommandSpec{}, false
}

// HandleCommand parses, authorizes and plans a command, writes the run and
// says what to answer right away. A refusal is audited and returned as an
// *switchboard.Error whose message is the sentence to show.
func (c *Commands) HandleCommand(ctx context.Context, req switchboard.Request) (switchboard.Ack, error) {
	if req.ReceivedAt.IsZero() {
		req.ReceivedAt = c.now()
	}
	subject := strings.TrimSpace(req.Command + " " + req.Text)
	audit := func(outcome, detail string) switchboard.AuditEvent {
		return switchboard.AuditEvent{Time: c.now(), Kind: switchboard.AuditDecision, Actor: req.UserID,
			Channel: req.ChannelID, Subject: subject, Outcome: outcome, Detail: detail}
	}
	refuse := func(err *switchboard.Error, detail string) (switchboard.Ack, error) {
		if aerr := c.Runs.Audit(ctx, audit("refused", detail)); aerr != nil {
			return switchboard.Ack{}, fmt.Errorf("audit refusal: %w", aerr)
		}
		return switchboard.Ack{}, err
	}
	// A NUL byte or invalid UTF-8 is refused before anything else: no
	// command holds one, and Postgres stores neither (the audit line keeps
	// the text with them replaced).
	if !readable(req.Command) || !readable(req.Text) {
		subject = strings.ToValidUTF8(strings.ReplaceAll(subject, "\x00", "\uFFFD"), "\uFFFD")
		return refuse(switchboard.Errorf(switchboard.EINVALID, "Your command holds characters Switchboard cannot read (a NUL byte or invalid UTF-8); type it again."), "unreadable text")
	}

	spec, ok := c.spec(req.Command)
	if d, terminate, isDeploy := c.deploy(req.Command); !ok && isDeploy {
		if ok, why := d.Access.Allows(req.UserID, req.ChannelID); !ok {
			return refuse(switchboard.Errorf(switchboard.EFORBIDDEN, "Sorry, you may not use %s here: %s.", req.Command, why), why)
		}
		r, perr := parseDeploy(d, req.Text, terminate, c.now())
		if perr != nil {
			return refuse(perr, "bad command: "+perr.Message)
		}
		plan, ack := planDeploy(d, r)
		return c.start(ctx, req, subject, "deploy."+r.action, d.Cloud, plan, ack, "allowed by "+d.Command+" allow list")
	}
	if wf, isWorkflow := c.workflow(req.Command); !ok && isWorkflow {
		if ok, why := wf.Access.Allows(req.UserID, req.ChannelID); !ok {
			return refuse(switchboard.Errorf(switchboard.EFORBIDDEN, "Sorry, you may not use %s here: %s.", req.Command, why), why)
		}
		return c.startWorkflow(ctx, wf, req, subject)
	}
	if !ok {
		return refuse(switchboard.Errorf(switchboard.EINVALID, "Switchboard has no %s command. Commands here: %s.", req.Command, c.commandNames()), "unknown command")
	}
	if ok, why := spec.Access.Allows(req.UserID, req.ChannelID); !ok {
		return refuse(switchboard.Errorf(switchboard.EFORBIDDEN, "Sorry, you may not use %s here: %s.", spec.Name, why), why)
	}
	isID := isInstanceID
	if c.InstanceIDFunc != nil {
		isID = func(s string) bool { return c.InstanceIDFunc(spec.Cloud, s) }
	}
	cmd, perr := parseCommand(spec, req.Text, isID)
	if perr != nil {
		return refuse(perr, "bad command: "+perr.Message)
	}

	with, err := json.Marshal(cmd)
	if err != nil {
		return switchboard.Ack{}, fmt.Errorf("encode plan: %w", err)
	}
	return c.start(ctx, req, subject, strings.TrimPrefix(spec.Name, "/")+"."+cmd.Action, spec.Cloud,
		[]switchboard.Step{{Kind: StepInstances, With: with}}, cmd.AckText(), "allowed by "+spec.Name+" allow list")
}

func (c *Commands) workflow(command string) (switchboard.WorkflowSpec, bool) {
	for _, wf := range c.Workflows {
		if wf.Trigger.Command != "" && wf.Trigger.Command == command {
			return wf, true
		}
	}
	return switchboard.WorkflowSpec{}, false
}

// startWorkflow writes a run of a workflow started by a command; the words
// after the command are its event.args.
func (c *Commands) startWorkflow(ctx context.Context, wf switchboard.WorkflowSpec, req switchboard.Request, subject string) (switchboard.Ack, error) {
	return c.start(ctx, req, subject, wf.Name, wf.Cloud, Plan(wf), "Started "+wf.Name+" — I'll report back here.", "allowed by workflow "+wf.Name)
}

// start writes a run of plan for a request, with the audit lines of its
// arrival and of the decision that allowed it, and returns the ack. A
// repeated delivery returns the first delivery's run.
func (c *Commands) start(ctx context.Context, req switchboard.Request, subject, workflow, cloud string, plan []switchboard.Step, ack, allowedBy string) (switchboard.Ack, error) {
	now := c.now()
	run := &switchboard.Run{ID: NewRunID(now), Workflow: workflow, Cloud: cloud, State: switchboard.RunQueued, Request: req,
		Plan: plan, CreatedAt: now, UpdatedAt: now}
	existing, err := c.Runs.CreateRun(ctx, run, []switchboard.AuditEvent{
		{Time: now, Kind: switchboard.AuditRequest, RunID: run.ID, Actor: req.UserID, Channel: req.ChannelID, Subject: subject, Outcome: "received", Detail: "via " + req.Source},
		{Time: now, Kind: switchboard.AuditDecision, RunID: run.ID, Actor: req.UserID, Channel: req.ChannelID, Subject: subject, Outcome: "allowed", Detail: allowedBy},
	})
	if err != nil {
		return switchboard.Ack{}, fmt.Errorf("create run: %w", err)
	}
	if existing != nil {
		run = existing
	}
	return switchboard.Ack{Text: ack, RunID: run.ID}, nil
}

// deploy returns the deploy command called command; terminate is set when
// it is the deploy's terminate command.
func (c *Commands) deploy(command string) (switchboard.DeploySpec, bool, bool) {
	for _, d := range c.Deploys {
		switch command {
		case d.Command:
			return d, false, true
		case d.TerminateCommand:
			return d, true, d.TerminateCommand != ""
		}
	}
	return switchboard.DeploySpec{}, false, false
}

// Names lists the slash commands: the built-in instance commands, then the
// workflows a command starts.
func (c *Commands) Names() []string {
	names := make([]string, 0, len(c.Specs))
	for _, s := range c.Specs {
		names = append(names, s.Name)
	}
	for _, wf := range c.Workflows {
		if wf.Trigger.Command != "" {
			names = append(names, wf.Trigger.Command)
		}
	}
	for _, d := range c.Deploys {
		names = append(names, d.Command)
		if d.TerminateCommand != "" {
			names = append(names, d.TerminateCommand)
		}
	}
	return names
}

// Help says what each command does, in the order Names lists them, for the
// Slack app manifest: a workflow's own description, or one made from what
// the command may do.
func (c *Commands) Help() []switchboard.CommandHelp {
	var out []switchboard.CommandHelp
	for _, s := range c.Specs {
		out = append(out, instanceCommandHelp(s))
	}
	for _, wf := range c.Workflows {
		if wf.Trigger.Command == "" {
			continue
		}
		h := switchboard.CommandHelp{Name: wf.Trigger.Command, Description: wf.Description, Usage: wf.Usage}
		if h.Description == "" {
			h.Description = "Run the " + wf.Name + " workflow"
			if slices.ContainsFunc(wf.Steps, func(st switchboard.StepSpec) bool { return st.Kind == "approval" }) {
				h.Description += " (it asks for an approval first)"
			}
		}
		out = append(out, h)
	}
	for _, d := range c.Deploys {
		out = append(out, switchboard.CommandHelp{Name: d.Command,
			Description: "Deploy a branch to a fresh instance; list, pin or terminate what is up",
			Usage:       "<branch, ticket or #PR> | list | pin <branch> [for 4h] | unpin <branch> | terminate <branch|all>"})
		if d.TerminateCommand != "" {
			out = append(out, switchboard.CommandHelp{Name: d.TerminateCommand,
				Description: "Terminate a branch's deploy (" + d.Command + " terminate)", Usage: "<branch|all>"})
		}
	}
	return out
}

// instanceCommandHelp describes an instance command by its actions and
// the aliases it may touch: "Start, stop, reboot, check or list instances:
// tools, web".
func instanceCommandHelp(s switchboard.CommandSpec) switchboard.CommandHelp {
	actions := s.Actions
	if len(actions) == 0 {
		actions = switchboard.AllActions
	}
	verbs := map[string]string{switchboard.ActionStart: "start", switchboard.ActionStop: "stop", switchboard.ActionReboot: "reboot",
		switchboard.ActionStatus: "check", switchboard.ActionList: "list"}
	var words []string
	for _, a := range []string{switchboard.ActionStart, switchboard.ActionStop, switchboard.ActionReboot, switchboard.ActionStatus, switchboard.ActionList} {
		if slices.Contains(actions, a) {
			words = append(words, verbs[a])
		}
	}
	desc := "Act on instances"
	if n := len(words); n > 0 {
		desc = strings.Join(words[:n-1], ", ")
		if n > 1 {
			desc += " or "
		}
		desc += words[n-1] + " instances"
		desc = strings.ToUpper(desc[:1]) + desc[1:]
	}
	var aliases []string
	for _, t := range s.Instances {
		if t.Alias != "" {
			aliases = append(aliases, t.Alias)
		}
	}
	if with := desc + ": " + strings.Join(aliases, ", "); len(aliases) > 0 && len(with) <= 100 {
		desc = with
	}
	return switchboard.CommandHelp{Name: s.Name, Description: desc, Usage: strings.Join(actions, " | ") + " [target]"}
}

func (c *Commands) commandNames() string {
	if names := c.Names(); len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return "none configured"
}

var (
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-z]{8,}$`)
	tagPattern        = regexp.MustCompile(`^[A-Za-z0-9_.:/+\-@]+=[A-Za-z0-9_.:/+\-@ ]*$`)
)

// ParseCommand reads "ACTION [TARGET...]" against a command's configuration.
// Its errors are sentences that say what would work.
func ParseCommand(spec switchboard.CommandSpec, text string) (switchboard.InstanceCommand, *switchboard.Error) {
	return parseCommand(spec, text, isInstanceID)
}

// maxTargets bounds the targets one command names: each is a lookup in the
// cloud, and a tag selector names many instances in one.
const maxTargets = 50

// readable reports whether s is text a command may hold: valid UTF-8
// without NUL bytes.
func readable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// isInstanceID recognizes an instance id when the cloud's own form is not
// known: i- and at least 8 lower-case letters or digits.
func isInstanceID(s string) bool { return instanceIDPattern.MatchString(s) }

func parseCommand(spec switchboard.CommandSpec, text string, isID func(string) bool) (switchboard.InstanceCommand, *switchboard.Error) {
	fields := strings.Fields(text)
	cmd := switchboard.InstanceCommand{Command: spec.Name, Scope: spec.Instances, Policy: spec.Policy}
	if len(fields) == 0 {
		return cmd, switchboard.Errorf(switchboard.EINVALID, "%s", Help(spec, ""))
	}
	cmd.Action = strings.ToLower(fields[0])
	if !slices.Contains(spec.Actions, cmd.Action) {
		if cmd.Action == "help" {
			return cmd, switchboard.Errorf(switchboard.EINVALID, "%s", Help(spec, ""))
		}
		return cmd, switchboard.Errorf(switchboard.EINVALID, "%s", Help(spec, fmt.Sprintf("I don't know %q.", fields[0])))
	}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		if f == "--dry-run" {
			cmd.DryRun = true
			continue
		}
		// The same target twice is one target.
		if key := strings.ToLower(f); seen[key] {
			continue
		} else {
			seen[key] = true
		}
		if len(cmd.Targets) == maxTargets {
			return cmd, switchboard.Errorf(switchboard.EINVALID, "At most %d targets in one command; name fewer, or select them with a tag like env=dev.", maxTargets)
		}
		t, err := parseTarget(spec, f, isID)
		if err != nil {
			return cmd, err
		}
		cmd.Targets = append(cmd.Targets, t)
	}
	if len(cmd.Targets) == 0 {
		switch cmd.Action {
		case switchboard.ActionStatus, switchboard.ActionList:
			for _, s := range spec.Instances {
				cmd.Targets = append(cmd.Targets, switchboard.Target{Text: s.Alias, Alias: s.Alias, ID: s.ID, Tags: s.Tags, ElasticIP: s.ElasticIP})
			}
		default:
			return cmd, switchboard.Errorf(switchboard.EINVALID, "Which instance? Try `%s %s %s`. Targets: %s.", spec.Name, cmd.Action, firstAlias(spec), targetNames(spec))
		}
	}
	return cmd, nil
}

func parseTarget(spec switchboard.CommandSpec, f string, isID func(string) bool) (switchboard.Target, *switchboard.Error) {
	for _, s := range spec.Instances {
		if strings.EqualFold(s.Alias, f) {
			return switchboard.Target{Text: f, Alias: s.Alias, ID: s.ID, Tags: s.Tags, ElasticIP: s.ElasticIP}, nil
		}
	}
	if isID(f) {
		t := switchboard.Target{Text: f, ID: f}
		for _, s := range spec.Instances {
			if s.ID == f {
				t.Alias, t.ElasticIP = s.Alias, s.ElasticIP
			}
		}
		// An id no alias names may still be covered by a tag selector; the
		// run checks it against the instance's tags.
		if t.Alias == "" && !hasTagScope(spec) {
			return t, switchboard.Errorf(switchboard.EINVALID, "%s may not touch %s. Targets: %s.", spec.Name, f, targetNames(spec))
		}
		return t, nil
	}
	if strings.Contains(f, "=") {
		tags := map[string]string{}
		for _, kv := range strings.Split(f, ",") {
			if !tagPattern.MatchString(kv) {
				return switchboard.Target{}, switchboard.Errorf(switchboard.EINVALID, "%q is not a tag selector; write it as key=value, e.g. env=dev or role=web,env=prod.", f)
			}
			k, v, _ := strings.Cut(kv, "=")
			tags[k] = v
		}
		return switchboard.Target{Text: f, Tags: tags}, nil
	}
	return switchboard.Target{}, switchboard.Errorf(switchboard.EINVALID, "I don't know the target %q. Targets: %s, an instance id, or a tag selector like env=dev.", f, targetNames(spec))
}

// resolveInstance lets a workflow step's instance: name what /ec2 takes:
// an instance id as it is, an alias of the instance commands on the
// step's cloud (tools: its id; web: its tag selector, when the step takes
// tags), or a tag selector (role=web,env=prod). Anything else is refused
// with the sentence /ec2 gives, not sent to the cloud as a malformed id.
func (r *Runner) resolveInstance(run *switchboard.Run, params json.RawMessage, takesTags bool) (json.RawMessage, *switchboard.Error) {
	var p map[string]any
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return params, nil
	}
	text, _ := p["instance"].(string)
	if text == "" {
		return params, nil
	}
	cloud, _ := p["cloud"].(string)
	if cloud == "" {
		cloud = run.Cloud
	}
	isID := isInstanceID
	if r.InstanceIDFunc != nil {
		isID = func(s string) bool { return r.InstanceIDFunc(cloud, s) }
	}
	if isID(text) {
		return params, nil
	}
	scope := switchboard.CommandSpec{}
	for _, c := range r.Commands {
		if c.Cloud == cloud {
			scope.Instances = append(scope.Instances, c.Instances...)
		}
	}
	t, perr := parseTarget(scope, strings.TrimSpace(text), isID)
	switch {
	case perr != nil:
		return nil, perr
	case t.ID != "":
		p["instance"] = t.ID
	case len(t.Tags) > 0 && takesTags:
		delete(p, "instance")
		p["tags"] = t.Tags
	default:
		return nil, switchboard.Errorf(switchboard.EINVALID, "%s names several instances (%s); this step takes one instance id.", text, switchboard.TagText(t.Tags))
	}
	out, err := json.Marshal(p)
	if err != nil {
		return params, nil
	}
	return out, nil
}

func hasTagScope(spec switchboard.CommandSpec) bool {
	for _, s := range spec.Instances {
		if len(s.Tags) > 0 {
			return true
		}
	}
	return false
}

// Help is the sentence that tells a user what a command can do.
func Help(spec switchboard.CommandSpec, lead string) string {
	var b strings.Builder
	if lead != "" {
		b.WriteString(lead + " ")
	}
	fmt.Fprintf(&b, "Try `%s %s [target]`. Targets: %s, an instance id, or a tag selector like env=dev.",
		spec.Name, strings.Join(spec.Actions, "|"), targetNames(spec))
	return b.String()
}

func targetNames(spec switchboard.CommandSpec) string {
	names := make([]string, len(spec.Instances))
	for i, s := range spec.Instances {
		names[i] = s.Alias
	}
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

func firstAlias(spec switchboard.CommandSpec) string {
	if len(spec.Instances) > 0 {
		return spec.Instances[0].Alias
	}
	return "i-0123456789abcdef0"
}
