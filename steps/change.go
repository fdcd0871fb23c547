package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// The instance-change lifecycle, written once: find the instances, answer
// those whose state makes the action moot, apply the policy (refuse, or park
// for an approval), take the instances' locks, look again after any wait,
// act, wait for the end state and report. The built-in commands (/ec2 start
// tools, the "instances" step) and the workflow steps start, stop, reboot
// and terminate both run it; they differ only in how they report: a command
// answers in the channel, a workflow step leaves outputs for later steps
// and fails into on_error.

// Start, Stop, Reboot and Terminate change instances from a workflow; with
// wait, they park the run until the instances reach the end state.
var (
	Start     = changeStep(switchboard.ActionStart)
	Stop      = changeStep(switchboard.ActionStop)
	Reboot    = changeStep(switchboard.ActionReboot)
	Terminate = changeStep(actionTerminate)
)

const actionTerminate = "terminate"

func changeStep(action string) switchboard.StepType {
	return switchboard.StepType{
		Kind:    action,
		OnCloud: true,
		Targets: []string{"instance", "instances", "tags"},
		Params:  []switchboard.Param{instanceParam, instancesParam, tagsParam, cloudParam, {Name: "wait", Type: switchboard.TypeDuration}},
		Outputs: []switchboard.Output{{Name: "ids", Type: switchboard.TypeStrings}, {Name: "states", Type: switchboard.TypeTags}},
		RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
			var p targetParams
			cloud, name, ok := paramsWithCloud(s, &p, &p.Cloud)
			if !ok {
				return nil
			}
			run := s.Run()
			cmd := switchboard.InstanceCommand{Command: run.Workflow, Action: action, Policy: s.Step().Policy}
			switch {
			case p.Instance != "":
				cmd.Targets = []switchboard.Target{{Text: p.Instance, ID: p.Instance}}
			case len(p.Instances) > 0:
				for _, id := range p.Instances {
					cmd.Targets = append(cmd.Targets, switchboard.Target{Text: id, ID: id})
				}
			default:
				cmd.Targets = []switchboard.Target{{Text: switchboard.TagText(p.Tags), Tags: p.Tags}}
			}
			c := &change{s: s, cmd: cmd, cloud: cloud, cloudName: name, workflow: true, within: time.Duration(p.Wait),
				what: p.text(), approvalID: fmt.Sprintf("%s-%d-policy", run.ID, run.Cursor)}
			return c.run(ctx)
		},
	}
}

// Instances carries out a built-in instance command (/ec2 status|start|
// stop|reboot|list): its parameters are a switchboard.InstanceCommand, and
// it answers in the channel with state-aware texts.
var Instances = InstancesWithin(5*time.Minute, 10*time.Minute)

// InstancesWithin is Instances waiting at most start for running and stop
// for stopped.
func InstancesWithin(start, stop time.Duration) switchboard.StepType {
	return switchboard.StepType{
		Kind:     "instances",
		Raw:      true,
		Internal: true,
		RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
			run := s.Run()
			var cmd switchboard.InstanceCommand
			if err := json.Unmarshal(s.Step().With, &cmd); err != nil {
				return s.Abort(fmt.Sprintf("Run %s has a broken instances step (%v); nothing was done.", run.ID, err))
			}
			cloud, name, ok := s.Cloud("")
			if !ok {
				return s.Abort(fmt.Sprintf("The cloud %q is not configured any more; nothing was done.", name))
			}
			within := start
			if cmd.Action == switchboard.ActionStop {
				within = stop
			}
			c := &change{s: s, cmd: cmd, cloud: cloud, cloudName: name, within: within, approvalID: run.ID + "-policy"}
			return c.run(ctx)
		},
	}
}

// changeProgress is the lifecycle's own progress, saved before each cloud
// mutation.
type changeProgress struct {
	Phase string `json:"phase"` // "" → (approval) → acting → waiting
	// Outcomes are the instances already decided (already running, not
	// found, failed...), for the answer.
	Outcomes []Outcome `json:"outcomes,omitempty"`
	// Acting are the instances the step started, stopped or rebooted.
	Acting   []switchboard.Instance `json:"acting,omitempty"`
	Deadline time.Time              `json:"deadline,omitzero"`
	// WaitingFor is the run holding a lock we want, once we told the
	// channel about it.
	WaitingFor string `json:"waiting_for,omitempty"`
	// Failed counts instances the cloud refused; the run fails if any did.
	Failed int `json:"failed,omitempty"`
	// Pending are the instances waiting for the approval policy asked for.
	Pending []switchboard.Instance `json:"pending,omitempty"`
	// Settled are instances a workflow step found already where it
	// wanted them (or on their way): not acted on, but waited for and
	// reported in its outputs.
	Settled []switchboard.Instance `json:"settled,omitempty"`
	// ApprovedBy says who approved what the policy held back ("approved
	// by <@U0OPS2>"), so the action right after says so at once.
	ApprovedBy string `json:"approved_by,omitempty"`
}

// change is one pass of the lifecycle.
type change struct {
	s         switchboard.StepRun
	cmd       switchboard.InstanceCommand
	cloud     switchboard.Provider
	cloudName string
	// workflow is set for a workflow step: outputs instead of an answer,
	// no scope, and anything that keeps an instance from its end state
	// fails the step.
	workflow bool
	// within bounds the wait for the end state; a workflow step with 0
	// does not wait.
	within time.Duration
	// what names the targets as the step's parameters did.
	what       string
	approvalID string
	p          changeProgress
}

func (c *change) run(ctx context.Context) error {
	if err := c.s.Progress(&c.p); err != nil {
		return err
	}
	switch c.p.Phase {
	case "":
		return c.decide(ctx)
	case "approval":
		return c.approved(ctx)
	case "acting":
		return c.act(ctx)
	case "waiting":
		return c.check(ctx)
	}
	return c.s.Abort(fmt.Sprintf("Run %s is in an unknown phase %q; nothing more was done.", c.s.Run().ID, c.p.Phase))
}

// cloudFailure handles a failed cloud call: throttling parks the run, a
// transient failure is returned for the caller to retry, and anything the
// cloud refused is final (final is true): a command's run fails, a workflow
// step fails into on_error.
func (c *change) cloudFailure(err error, what string) (final bool, _ error) {
	wait, transient := switchboard.Retryable(err)
	final = wait == 0 && !transient
	if c.workflow {
		return final, c.s.CloudError(err, what)
	}
	switch {
	case wait > 0:
		c.s.Wait(wait)
		return false, nil
	case transient:
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return true, c.s.Abort(fmt.Sprintf("Could not %s: %s", what, switchboard.ErrorMessage(err)))
}

// decide describes the targets, answers status and list right away, and for
// the changes sorts the instances into those to act on and those whose
// state already says what to answer.
func (c *change) decide(ctx context.Context) error {
	found, outs, err := c.resolve(ctx)
	if err != nil {
		_, err := c.cloudFailure(err, "look up "+c.targetText())
		return err
	}
	switch c.cmd.Action {
	case switchboard.ActionStatus:
		for _, inst := range found {
			outs = append(outs, c.statusOutcome(inst))
		}
		return c.finish(outs)
	case switchboard.ActionList:
		for _, inst := range found {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: string(inst.State), Text: listLine(inst)})
		}
		if len(found) == 0 {
			outs = append(outs, Outcome{Result: "no match", Text: "No instances match."})
		}
		return c.finish(outs)
	}
	if c.workflow && len(outs) > 0 {
		return c.s.Fail(Summary(outs), false)
	}
	if c.workflow && len(found) == 0 {
		return c.s.Fail(fmt.Sprintf("No instance matches %s in cloud %s.", c.what, c.cloudName), false)
	}

	acting, outs, err := c.sort(ctx, found, outs)
	if err != nil || len(acting) == 0 {
		return err
	}
	free, pending, rule, refused, err := c.applyPolicy(acting)
	if err != nil {
		if c.workflow {
			return c.s.Fail("The policy could not be checked: "+err.Error(), false)
		}
		return c.s.Abort("The policy of " + c.cmd.Command + " could not be checked: " + err.Error())
	}
	if c.workflow && len(refused) > 0 {
		return c.s.Fail(refused[0].Text, false)
	}
	outs = append(outs, refused...)
	if c.cmd.DryRun {
		return c.dryRun(ctx, append(free, pending...), outs)
	}
	if len(pending) > 0 {
		c.p.Phase, c.p.Outcomes, c.p.Acting, c.p.Pending = "approval", outs, free, pending
		if !c.s.ApprovalsAvailable() {
			if c.workflow {
				return c.s.Fail("The policy asks for an approval, and approvals are not available here.", false)
			}
			return c.s.Abort("The policy of " + c.cmd.Command + " asks for an approval, and approvals are not available here.")
		}
		text := fmt.Sprintf("%s wants to %s %s; the policy of %s asks for an approval.", switchboard.Mention(c.s.Run().Request.UserID), c.cmd.Action, labels(pending), c.cmd.Command)
		if c.workflow {
			text = fmt.Sprintf("Workflow %s wants to %s %s; its policy asks for an approval.", c.cmd.Command, c.cmd.Action, labels(pending))
		}
		if err := c.s.OpenApproval(ctx, c.approvalID, text, *rule); err != nil {
			return err
		}
		return c.s.Stage(c.p)
	}
	return c.proceed(ctx, free, outs, false)
}

// sort splits found into the instances to act on and the outcomes of those
// whose state makes the action moot or impossible. For a workflow step, an
// instance already where the step wants it is settled, and one that cannot
// get there fails the step (then acting is empty and the error is nil).
func (c *change) sort(ctx context.Context, found []switchboard.Instance, outs []Outcome) ([]switchboard.Instance, []Outcome, error) {
	var acting []switchboard.Instance
	for _, inst := range found {
		o, blocked := c.blocked(inst)
		switch {
		case !blocked:
			acting = append(acting, inst)
		case c.workflow && c.moot(inst):
			c.p.Settled = append(c.p.Settled, inst)
		case c.workflow:
			return nil, nil, c.s.Fail(o.Text, false)
		default:
			outs = append(outs, o)
		}
	}
	if len(acting) == 0 {
		if c.workflow {
			return nil, nil, c.waitOrDone(ctx, nil)
		}
		return nil, nil, c.finish(outs)
	}
	return acting, outs, nil
}

// moot reports whether inst is already in, or on its way to, the state
// the action would bring it to.
func (c *change) moot(inst switchboard.Instance) bool {
	switch c.cmd.Action {
	case switchboard.ActionStart:
		return inst.State == switchboard.StateRunning || inst.State == switchboard.StatePending
	case switchboard.ActionStop:
		return inst.State == switchboard.StateStopped || inst.State == switchboard.StateStopping
	case actionTerminate:
		return inst.State == switchboard.StateTerminated || inst.State == switchboard.StateShuttingDown
	}
	return false
}

// approved goes on once the approval policy asked for is decided: the
// instances it covered join the others, or are reported as not approved.
func (c *change) approved(ctx context.Context) error {
	ap, ok, err := c.s.AwaitApproval(ctx, c.approvalID)
	if err != nil || ap == nil {
		return err
	}
	acting, outs := c.p.Acting, c.p.Outcomes
	if ok {
		acting = append(acting, c.p.Pending...)
		c.p.ApprovedBy = ap.Decided()
	} else if c.workflow {
		return c.s.Fail(fmt.Sprintf("Not %s %s: %s.", gerund(c.cmd.Action), strings.Join(idsOf(c.p.Pending), ", "), ap.Decided()), false)
	} else {
		for _, inst := range c.p.Pending {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "not approved", Detail: ap.DecisionText(),
				Text: fmt.Sprintf("Not %s %s: %s.", gerund(c.cmd.Action), inst.Label(), ap.Decided())})
		}
	}
	if len(acting) == 0 {
		return c.finish(outs)
	}
	// The wait for the approval may have been long: look again before
	// acting.
	return c.proceed(ctx, acting, outs, true)
}

// proceed takes the instances' locks (or parks the run behind the run
// holding one), checkpoints and acts. With recheck, it first looks at the
// instances again once it holds their locks, since another run may have
// changed them while this one waited: what is now already stopped (or
// running...) is answered as such, not acted on.
func (c *change) proceed(ctx context.Context, acting []switchboard.Instance, outs []Outcome, recheck bool) error {
	keys := make([]string, len(acting))
	for i, inst := range acting {
		keys[i] = c.cloudName + "/" + inst.ID
	}
	holder, err := c.s.Lock(ctx, keys)
	if err != nil {
		return fmt.Errorf("lock instances: %w", err)
	}
	if holder != "" {
		if c.p.WaitingFor == "" {
			// Said once per run, and kept with the run in the same commit
			// as the message, so a crash cannot lose or repeat it.
			c.p.WaitingFor = holder
			c.s.Say("lock", fmt.Sprintf("Another run (%s) is working on %s; I'll go on when it is done.", holder, labels(acting)))
		}
		if err := c.s.Stage(c.p); err != nil {
			return err
		}
		c.s.Wait(c.s.PollInterval())
		return nil
	}
	if recheck {
		fresh, err := c.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: idsOf(acting)})
		if err != nil {
			_, err := c.cloudFailure(err, "look again at "+labels(acting))
			return err
		}
		if acting, outs, err = c.sort(ctx, fresh, outs); err != nil || len(acting) == 0 {
			return err
		}
	}
	c.p.Phase, c.p.Outcomes, c.p.Acting, c.p.Pending = "acting", outs, acting, nil
	if err := c.s.Checkpoint(ctx, c.p); err != nil {
		return err
	}
	return c.act(ctx)
}

// act makes the cloud call. It may run twice for one run (a crash after the
// checkpoint): start, stop and terminate are no-ops on an instance already
// on its way, and a second reboot is harmless.
func (c *change) act(ctx context.Context) error {
	ids := idsOf(c.p.Acting)
	var err error
	switch c.cmd.Action {
	case switchboard.ActionStart:
		_, err = c.cloud.StartInstances(ctx, ids)
	case switchboard.ActionStop:
		_, err = c.cloud.StopInstances(ctx, ids, switchboard.StopOptions{})
	case switchboard.ActionReboot:
		err = c.cloud.RebootInstances(ctx, ids)
	case actionTerminate:
		_, err = c.cloud.TerminateInstances(ctx, ids)
	}
	subject := c.cmd.Action + " " + strings.Join(ids, ",")
	var partial *switchboard.PartialError
	if errors.As(err, &partial) {
		// Some instances failed and the rest worked: report each failure
		// and carry on with the others.
		var worked []switchboard.Instance
		for _, inst := range c.p.Acting {
			ferr, failed := partial.Failed[inst.ID]
			if !failed {
				worked = append(worked, inst)
				continue
			}
			c.p.Outcomes = append(c.p.Outcomes, Outcome{ID: inst.ID, Label: inst.Label(), Result: ResultFailed, Detail: Reason(ferr),
				Text: fmt.Sprintf("Could not %s %s: %s", c.cmd.Action, inst.Label(), switchboard.ErrorMessage(ferr))})
			c.p.Failed++
			c.s.Audit(switchboard.AuditAction, c.cmd.Action+" "+inst.ID, "failed", switchboard.ErrorMessage(ferr))
		}
		c.p.Acting, err = worked, nil
		if len(worked) == 0 {
			return c.report(c.p.Outcomes)
		}
		subject = c.cmd.Action + " " + strings.Join(idsOf(worked), ",")
	}
	if err != nil {
		what := c.cmd.Action + " " + labels(c.p.Acting)
		if c.workflow {
			what = c.cmd.Action + " " + strings.Join(ids, ", ")
		}
		if final, ferr := c.cloudFailure(err, what); !final || ferr != nil {
			return ferr
		}
		c.s.Audit(switchboard.AuditAction, subject, "failed", switchboard.ErrorMessage(err))
		return nil
	}
	c.s.Audit(switchboard.AuditAction, subject, "ok", "")
	if by := c.approvedJustBefore(); by != "" {
		// The people waiting on the decision hear at once that it goes on,
		// rather than nothing until the instances get there.
		c.s.Say("approved", fmt.Sprintf("%s — %s %s…", strings.ToUpper(by[:1])+by[1:], gerund(c.cmd.Action), labels(c.p.Acting)))
	}
	if c.cmd.Action == switchboard.ActionReboot && !c.workflow {
		outs := c.p.Outcomes
		for _, inst := range c.p.Acting {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "rebooted",
				Text: inst.Label() + " was rebooted; it will be back in a minute or two."})
		}
		return c.report(outs)
	}
	return c.waitOrDone(ctx, c.p.Acting)
}

// approvedJustBefore says who approved this change ("approved by
// <@U0OPS2>") when an approval came right before it: the policy's, or in a
// workflow an approval step with no other change between it and this step.
func (c *change) approvedJustBefore() string {
	if c.p.ApprovedBy != "" || !c.workflow {
		return c.p.ApprovedBy
	}
	run := c.s.Run()
	for i := run.Cursor - 1; i >= 0 && i < len(run.Plan); i-- {
		st := run.Plan[i]
		switch st.Kind {
		case switchboard.ActionStart, switchboard.ActionStop, switchboard.ActionReboot, actionTerminate:
			return ""
		case Approval.Kind:
			var out struct {
				Approved bool     `json:"approved"`
				By       []string `json:"by"`
			}
			if st.ID == "" || json.Unmarshal(run.Vars[st.ID], &out) != nil || !out.Approved || len(out.By) == 0 {
				return ""
			}
			mentions := make([]string, len(out.By))
			for j, u := range out.By {
				mentions[j] = switchboard.Mention(u)
			}
			return "approved by " + strings.Join(mentions, ", ")
		}
	}
	return ""
}

// waitOrDone parks the run until the instances reach the end state, or
// ends the step now when there is nothing to wait for.
func (c *change) waitOrDone(ctx context.Context, acting []switchboard.Instance) error {
	if c.workflow && (c.within <= 0 || c.want() == "") {
		return c.outputs()
	}
	c.p.Phase, c.p.Acting, c.p.Deadline = "waiting", acting, c.s.Now().Add(c.within)
	if err := c.s.Checkpoint(ctx, c.p); err != nil {
		return err
	}
	return c.check(ctx)
}

// want is the state the action ends in; "" for a reboot.
func (c *change) want() switchboard.InstanceState {
	switch c.cmd.Action {
	case switchboard.ActionStart:
		return switchboard.StateRunning
	case switchboard.ActionStop:
		return switchboard.StateStopped
	case actionTerminate:
		return switchboard.StateTerminated
	}
	return ""
}

// outputs ends a workflow step that does not wait with the ids it
// covered.
func (c *change) outputs() error {
	ids := append(idsOf(c.p.Acting), idsOf(c.p.Settled)...)
	return c.s.Done(map[string]any{"ids": ids, "states": map[string]string{}})
}

// check looks at the instances acted on; when they all reached the state
// asked for (or the deadline passed) it reports, otherwise it parks the run.
func (c *change) check(ctx context.Context) error {
	ids := idsOf(c.p.Acting)
	if c.workflow {
		ids = append(ids, idsOf(c.p.Settled)...)
		return until(ctx, c.s, c.cloud, ids, c.want(), c.p.Deadline, c.within, nil)
	}
	current, err := c.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
	// An instance that is gone fails the whole describe on EC2 (the fleet
	// layer narrows that to the missing ids): report it as gone.
	var partial *switchboard.PartialError
	if errors.As(err, &partial) || (switchboard.ErrorCode(err) == switchboard.ENOTFOUND && len(ids) == 1) {
		err = nil
	}
	if err != nil {
		_, err := c.cloudFailure(err, "check "+labels(c.p.Acting))
		return err
	}
	want := c.want()
	byID := map[string]switchboard.Instance{}
	for _, inst := range current {
		byID[inst.ID] = inst
	}
	settled := true
	for _, id := range ids {
		inst, ok := byID[id]
		if ok && inst.State != want && inst.State != switchboard.StateTerminated {
			settled = false
		}
	}
	timedOut := !c.s.Now().Before(c.p.Deadline)
	if !settled && !timedOut {
		c.s.Wait(c.s.PollInterval())
		return nil
	}

	outs := c.p.Outcomes
	for _, acted := range c.p.Acting {
		inst, ok := byID[acted.ID]
		o := Outcome{ID: acted.ID, Label: acted.Label()}
		switch {
		case !ok:
			o.Result, o.Detail, o.Text = "disappeared", "gone from the cloud", acted.Label()+" has disappeared from the cloud."
			c.p.Failed++
		case inst.State == want && want == switchboard.StateRunning:
			line, err := c.attachAddress(ctx, inst)
			if err != nil {
				return err
			}
			if line == "" {
				return nil // throttled: try the address again later
			}
			o.Result, o.Text = "started", line
		case inst.State == want:
			o.Result, o.Text = "stopped", inst.Label()+" is now stopped."
		case inst.State == switchboard.StateTerminated:
			o.Result, o.Detail = "terminated", "terminated while waiting"
			o.Text = fmt.Sprintf("%s was terminated before it was %s.", inst.Label(), want)
			c.p.Failed++
		default:
			o.Result, o.Detail = "still "+string(inst.State), fmt.Sprintf("check it with `%s status %s`", c.cmd.Command, acted.ID)
			o.Text = fmt.Sprintf("%s is still %s after %s; check it with `%s status %s`.", inst.Label(), inst.State, c.within, c.cmd.Command, acted.ID)
			c.p.Failed++
		}
		outs = append(outs, o)
	}
	return c.report(outs)
}

// report ends the step with the lines for the channel: a failed run when any
// instance failed, a finished one otherwise.
func (c *change) report(outs []Outcome) error {
	if c.p.Failed > 0 {
		if c.workflow {
			return c.s.Fail(Summary(outs), false)
		}
		text := Summary(outs)
		return c.s.Abort(text)
	}
	return c.finish(outs)
}

// finish posts the answer and ends the step; a workflow step ends with its
// outputs instead.
func (c *change) finish(outs []Outcome) error {
	if c.workflow {
		return c.outputs()
	}
	text := Summary(outs)
	c.s.Say("answer", text)
	c.s.Run().Outcome = c.outcome(outs)
	return c.s.Succeed(text)
}

// outcome says how a command that changes instances ended when it changed
// none: refused (out of scope, by policy, not approved) or nothing to do
// (already so, in a state the action cannot apply to, not found). It is empty when
// any instance changed, and for reads and dry runs.
func (c *change) outcome(outs []Outcome) string {
	switch c.cmd.Action {
	case switchboard.ActionStatus, switchboard.ActionList:
		return ""
	}
	if c.cmd.DryRun {
		return ""
	}
	refused := false
	for _, o := range outs {
		switch o.Result {
		case "started", "stopped", "rebooted":
			return ""
		case "out of scope", "no match", "refused by policy", "not approved":
			refused = true
		}
	}
	if refused {
		return switchboard.OutcomeRefused
	}
	return switchboard.OutcomeNoop
}

// attachAddress associates the Elastic IP configured for a started instance
// and says where it runs. It returns "" when the run was parked.
func (c *change) attachAddress(ctx context.Context, inst switchboard.Instance) (string, error) {
	eip := c.elasticIP(inst.ID)
	if eip == "" || inst.PublicIP == eip {
		return runningLine(inst, inst.PublicIP), nil
	}
	if err := c.cloud.AssociateAddress(ctx, inst.ID, eip); err != nil {
		wait, transient := switchboard.Retryable(err)
		switch {
		case wait > 0:
			c.s.Wait(wait)
			return "", nil
		case transient:
			return "", fmt.Errorf("associate %s with %s: %w", eip, inst.ID, err)
		}
		// The start itself worked: report it, and the address problem.
		c.s.Audit(switchboard.AuditAction, "associate "+eip+" "+inst.ID, "failed", switchboard.ErrorMessage(err))
		return runningLine(inst, inst.PublicIP) + fmt.Sprintf(" I could not attach %s: %s", eip, switchboard.ErrorMessage(err)), nil
	}
	c.s.Audit(switchboard.AuditAction, "associate "+eip+" "+inst.ID, "ok", "")
	return runningLine(inst, eip), nil
}

func runningLine(inst switchboard.Instance, ip string) string {
	if ip == "" {
		return inst.Label() + " is now running."
	}
	return inst.Label() + " is now running at " + ip + "."
}

func (c *change) elasticIP(id string) string {
	for _, t := range c.cmd.Targets {
		if t.ID == id && t.ElasticIP != "" {
			return t.ElasticIP
		}
	}
	for _, s := range c.cmd.Scope {
		if s.ID == id {
			return s.ElasticIP
		}
	}
	return ""
}

// blocked says, for an instance whose state makes the action moot or
// impossible, what to answer instead.
func (c *change) blocked(inst switchboard.Instance) (Outcome, bool) {
	l := inst.Label()
	o := func(result, text string) (Outcome, bool) {
		return Outcome{ID: inst.ID, Label: l, Result: result, Text: text}, true
	}
	switch c.cmd.Action {
	case switchboard.ActionStart:
		switch inst.State {
		case switchboard.StateRunning:
			return o("already running", l+" is already running"+at(inst)+".")
		case switchboard.StatePending:
			return o("still booting", l+" is still booting (pending); it will be running shortly.")
		case switchboard.StateStopping:
			return o("stopping", l+" is stopping; start it again once it has stopped.")
		case switchboard.StateShuttingDown, switchboard.StateTerminated:
			return o("terminated", l+" is terminated and cannot be started.")
		}
	case switchboard.ActionStop:
		switch inst.State {
		case switchboard.StateStopped:
			return o("already stopped", l+" is already stopped.")
		case switchboard.StateStopping:
			return o("already stopping", l+" is already stopping.")
		case switchboard.StatePending:
			return o("still booting", l+" is still booting (pending); stop it once it is running.")
		case switchboard.StateShuttingDown, switchboard.StateTerminated:
			return o("terminated", l+" is terminated.")
		}
	case switchboard.ActionReboot:
		if inst.State != switchboard.StateRunning {
			return o("not running", fmt.Sprintf("%s is %s; only a running instance can be rebooted.", l, inst.State))
		}
	case actionTerminate:
		switch inst.State {
		case switchboard.StateShuttingDown, switchboard.StateTerminated:
			return o("already terminated", l+" is already terminated.")
		}
	}
	return Outcome{}, false
}

// dryRun asks the cloud whether the action would be allowed, and changes
// nothing.
func (c *change) dryRun(ctx context.Context, acting []switchboard.Instance, outs []Outcome) error {
	ids := idsOf(acting)
	err := c.cloud.DryRun(ctx, c.cmd.Action, ids)
	if err != nil && switchboard.ErrorCode(err) != switchboard.EFORBIDDEN {
		_, err := c.cloudFailure(err, "check permission to "+c.cmd.Action+" "+labels(acting))
		return err
	}
	for _, inst := range acting {
		o := Outcome{ID: inst.ID, Label: inst.Label(), Result: "would " + c.cmd.Action,
			Text: fmt.Sprintf("Dry run: I would %s %s, and the cloud says that is allowed; nothing was changed.", c.cmd.Action, inst.Label())}
		if err != nil {
			o.Result, o.Detail = "not allowed", Reason(err)
			o.Text = fmt.Sprintf("Dry run: the cloud would refuse to %s %s: %s Nothing was changed.", c.cmd.Action, inst.Label(), switchboard.ErrorMessage(err))
		}
		outs = append(outs, o)
	}
	return c.finish(outs)
}

func (c *change) statusOutcome(inst switchboard.Instance) Outcome {
	l := inst.Label()
	alias := inst.ID
	for _, t := range c.cmd.Targets {
		if t.ID == inst.ID && t.Alias != "" {
			alias = t.Alias
		}
	}
	o := Outcome{ID: inst.ID, Label: l, Result: string(inst.State)}
	switch inst.State {
	case switchboard.StateRunning:
		o.Text = l + " is running" + at(inst) + "."
	case switchboard.StateStopped:
		o.Text = fmt.Sprintf("%s is stopped. To start it: `%s start %s`", l, c.cmd.Command, alias)
	case switchboard.StatePending:
		o.Text = l + " is starting (pending); check back in a minute."
	case switchboard.StateStopping:
		o.Text = l + " is stopping; check back in a minute."
	default:
		o.Text = fmt.Sprintf("%s is %s.", l, inst.State)
	}
	return o
}

func listLine(inst switchboard.Instance) string {
	parts := []string{"• " + inst.Label(), string(inst.State)}
	if inst.Type != "" {
		parts = append(parts, inst.Type)
	}
	if inst.PublicIP != "" {
		parts = append(parts, inst.PublicIP)
	}
	if len(inst.Tags) > 0 {
		tags := maps.Clone(inst.Tags)
		delete(tags, "Name")
		if len(tags) > 0 {
			parts = append(parts, switchboard.EscapeText(switchboard.TagText(tags)))
		}
	}
	return strings.Join(parts, " — ")
}

func at(inst switchboard.Instance) string {
	if inst.PublicIP == "" {
		return ""
	}
	return " at " + inst.PublicIP
}

func (c *change) targetText() string {
	ls := make([]string, len(c.cmd.Targets))
	for i, t := range c.cmd.Targets {
		ls[i] = t.Label()
	}
	return strings.Join(ls, ", ")
}

// resolve describes the targets and keeps the instances the command may
// touch, in the order they were named. Lines for targets that matched nothing
// or are out of scope come back as outcomes. A workflow step has no scope:
// it may touch any instance of its cloud.
func (c *change) resolve(ctx context.Context) ([]switchboard.Instance, []Outcome, error) {
	var found []switchboard.Instance
	var outs []Outcome
	seen := map[string]bool{}
	for _, t := range c.cmd.Targets {
		f := switchboard.Filter{Tags: t.Tags}
		if t.ID != "" {
			f = switchboard.Filter{IDs: []string{t.ID}}
		}
		insts, err := c.cloud.DescribeInstances(ctx, f)
		if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
			outs = append(outs, Outcome{ID: t.ID, Label: t.Label(), Result: "not found", Detail: "not in cloud " + c.cloudName,
				Text: fmt.Sprintf("%s was not found in cloud %s.", t.Label(), c.cloudName)})
			continue
		} else if err != nil {
			return nil, nil, err
		}
		matched := 0
		for _, inst := range insts {
			if !c.workflow && !switchboard.InScope(c.cmd.Scope, inst) {
				if t.ID != "" {
					outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "out of scope", Detail: "not covered by " + c.cmd.Command,
						Text: fmt.Sprintf("%s may not touch %s.", c.cmd.Command, inst.Label())})
				}
				continue
			}
			matched++
			if !seen[inst.ID] {
				seen[inst.ID] = true
				found = append(found, inst)
			}
		}
		if matched == 0 && t.ID == "" && !c.workflow {
			outs = append(outs, Outcome{Label: t.Label(), Result: "no match",
				Text: fmt.Sprintf("%s matches no instance %s may touch.", t.Label(), c.cmd.Command)})
		}
	}
	return found, outs, nil
}

// applyPolicy sorts the instances an action would change: refused by a
// rule (an outcome each), waiting for an approval (with the first approval
// rule that asked for it), or free to go.
func (c *change) applyPolicy(acting []switchboard.Instance) (free, needApproval []switchboard.Instance, rule *switchboard.ApprovalRule, outs []Outcome, err error) {
	if len(c.cmd.Policy) == 0 {
		return acting, nil, nil, nil, nil
	}
	req := c.s.Run().Request
	for _, inst := range acting {
		r, err := c.s.Policy(c.cmd.Policy, switchboard.PolicyInput{Action: c.cmd.Action, User: req.UserID, Channel: req.ChannelID,
			Command: c.cmd.Command, Instance: inst})
		switch {
		case err != nil:
			return nil, nil, nil, nil, err
		case r == nil:
			free = append(free, inst)
		case r.Deny != "":
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "refused by policy", Detail: r.Deny,
				Text: fmt.Sprintf("Not %s %s: %s", gerund(c.cmd.Action), inst.Label(), r.Deny)})
			c.s.Audit(switchboard.AuditDecision, c.cmd.Action+" "+inst.ID, "refused", "policy: "+r.Deny)
		case r.Approval != nil:
			needApproval = append(needApproval, inst)
			if rule == nil {
				rule = r.Approval
			}
		default:
			free = append(free, inst)
		}
	}
	return free, needApproval, rule, outs, nil
}
