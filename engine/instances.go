package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// instancesProgress is the "instances" step's own progress, saved before each
// cloud mutation.
type instancesProgress struct {
	Phase string `json:"phase"` // "" → acting → waiting
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
}

func (sc *stepContext) instances(ctx context.Context, with json.RawMessage) error {
	var cmd InstanceCommand
	if err := json.Unmarshal(with, &cmd); err != nil {
		return sc.fail(fmt.Sprintf("Run %s has a broken instances step (%v); nothing was done.", sc.run.ID, err))
	}
	provider, ok := sc.runner.Providers[sc.run.Cloud]
	if !ok {
		return sc.fail(fmt.Sprintf("The cloud %q is not configured any more; nothing was done.", sc.run.Cloud))
	}
	var p instancesProgress
	if err := sc.loadScratch(&p); err != nil {
		return err
	}
	st := &instancesStep{stepContext: sc, cmd: cmd, cloud: provider, p: &p}
	switch p.Phase {
	case "":
		return st.decide(ctx)
	case "approval":
		return st.approved(ctx)
	case "acting":
		return st.act(ctx)
	case "waiting":
		return st.check(ctx)
	}
	return sc.fail(fmt.Sprintf("Run %s is in an unknown phase %q; nothing more was done.", sc.run.ID, p.Phase))
}

type instancesStep struct {
	*stepContext
	cmd   InstanceCommand
	cloud switchboard.Provider
	p     *instancesProgress
}

// decide describes the targets, answers status and list right away, and for
// start/stop/reboot sorts the instances into those to act on and those whose
// state already says what to answer.
func (st *instancesStep) decide(ctx context.Context) error {
	found, outs, err := st.resolve(ctx)
	if err != nil {
		if final, ferr := st.cloudFailure(err, "look up "+st.targetText()); !final {
			return ferr
		}
		return nil
	}
	switch st.cmd.Action {
	case switchboard.ActionStatus:
		for _, inst := range found {
			outs = append(outs, st.statusOutcome(inst))
		}
		return st.finish(outs)
	case switchboard.ActionList:
		for _, inst := range found {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: string(inst.State), Text: listLine(inst)})
		}
		if len(found) == 0 {
			outs = append(outs, Outcome{Result: "no match", Text: "No instances match."})
		}
		return st.finish(outs)
	}

	var acting []switchboard.Instance
	for _, inst := range found {
		if o, ok := st.blocked(inst); ok {
			outs = append(outs, o)
		} else {
			acting = append(acting, inst)
		}
	}
	if len(acting) == 0 {
		return st.finish(outs)
	}
	free, pending, rule, refused, err := st.applyPolicy(acting)
	if err != nil {
		return st.fail("The policy of " + st.cmd.Command + " could not be checked: " + err.Error())
	}
	outs = append(outs, refused...)
	if st.cmd.DryRun {
		return st.dryRun(ctx, append(free, pending...), outs)
	}
	if len(pending) > 0 {
		st.p.Phase, st.p.Outcomes, st.p.Acting, st.p.Pending = "approval", outs, free, pending
		text := fmt.Sprintf("<@%s> wants to %s %s; the policy of %s asks for an approval.", st.run.Request.UserID, st.cmd.Action, labels(pending), st.cmd.Command)
		if st.runner.Approvals == nil {
			return st.fail("The policy of " + st.cmd.Command + " asks for an approval, and approvals are not available here.")
		}
		if err := st.openApproval(ctx, st.run.ID+"-policy", text, *rule); err != nil {
			return err
		}
		return st.stage(st.p)
	}
	return st.proceed(ctx, free, outs, false)
}

// approved goes on once the approval policy asked for is decided: the
// instances it covered join the others, or are reported as not approved.
func (st *instancesStep) approved(ctx context.Context) error {
	ap, ok, err := st.awaitApproval(ctx, st.run.ID+"-policy")
	if err != nil || ap == nil {
		return err
	}
	acting, outs := st.p.Acting, st.p.Outcomes
	if ok {
		acting = append(acting, st.p.Pending...)
	} else {
		for _, inst := range st.p.Pending {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "not approved", Detail: decisionText(ap),
				Text: fmt.Sprintf("Not %s %s: %s.", gerund(st.cmd.Action), inst.Label(), decidedText(ap))})
		}
	}
	if len(acting) == 0 {
		return st.finish(outs)
	}
	// The wait for the approval may have been long: look again before
	// acting.
	return st.proceed(ctx, acting, outs, true)
}

// proceed takes the instances' locks (or parks the run behind the run
// holding one), checkpoints and acts. With recheck, it first looks at the
// instances again once it holds their locks, since another run may have
// changed them while this one waited: what is now already stopped (or
// running...) is answered as such, not acted on.
func (st *instancesStep) proceed(ctx context.Context, acting []switchboard.Instance, outs []Outcome, recheck bool) error {
	if len(acting) == 0 {
		return st.finish(outs)
	}
	keys := make([]string, len(acting))
	for i, inst := range acting {
		keys[i] = st.run.Cloud + "/" + inst.ID
	}
	holder, err := st.runner.Locks.LockInstances(ctx, st.run.ID, keys)
	if err != nil {
		return fmt.Errorf("lock instances: %w", err)
	}
	if holder != "" {
		if st.p.WaitingFor == "" {
			// Said once per run, and kept with the run in the same commit
			// as the message, so a crash cannot lose or repeat it.
			st.p.WaitingFor = holder
			st.say("lock", fmt.Sprintf("Another run (%s) is working on %s; I'll go on when it is done.", holder, labels(acting)))
			if err := st.stage(st.p); err != nil {
				return err
			}
		}
		st.wait(st.runner.pollInterval())
		return nil
	}
	if recheck {
		ids := idsOf(acting)
		fresh, err := st.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
		if err != nil {
			if final, ferr := st.cloudFailure(err, "look again at "+labels(acting)); !final {
				return ferr
			}
			return nil
		}
		acting = acting[:0]
		for _, inst := range fresh {
			if o, blocked := st.blocked(inst); blocked {
				outs = append(outs, o)
			} else {
				acting = append(acting, inst)
			}
		}
		if len(acting) == 0 {
			return st.finish(outs)
		}
	}
	st.p.Phase, st.p.Outcomes, st.p.Acting, st.p.Pending = "acting", outs, acting, nil
	if err := st.checkpoint(ctx, st.p); err != nil {
		return err
	}
	return st.act(ctx)
}

// act makes the cloud call. It may run twice for one run (a crash after the
// checkpoint): start and stop are no-ops on an instance already on its way,
// and a second reboot is harmless.
func (st *instancesStep) act(ctx context.Context) error {
	ids := idsOf(st.p.Acting)
	var err error
	switch st.cmd.Action {
	case switchboard.ActionStart:
		_, err = st.cloud.StartInstances(ctx, ids)
	case switchboard.ActionStop:
		_, err = st.cloud.StopInstances(ctx, ids, switchboard.StopOptions{})
	case switchboard.ActionReboot:
		err = st.cloud.RebootInstances(ctx, ids)
	}
	subject := st.cmd.Action + " " + strings.Join(ids, ",")
	var partial *switchboard.PartialError
	if errors.As(err, &partial) {
		// Some instances failed and the rest worked: report each failure
		// and carry on with the others.
		var worked []switchboard.Instance
		for _, inst := range st.p.Acting {
			ferr, failed := partial.Failed[inst.ID]
			if !failed {
				worked = append(worked, inst)
				continue
			}
			st.p.Outcomes = append(st.p.Outcomes, Outcome{ID: inst.ID, Label: inst.Label(), Result: ResultFailed, Detail: Reason(ferr),
				Text: fmt.Sprintf("Could not %s %s: %s", st.cmd.Action, inst.Label(), switchboard.ErrorMessage(ferr))})
			st.p.Failed++
			st.audit(switchboard.AuditAction, st.cmd.Action+" "+inst.ID, "failed", switchboard.ErrorMessage(ferr))
		}
		st.p.Acting, err = worked, nil
		if len(worked) == 0 {
			return st.report(st.p.Outcomes)
		}
		ids = ids[:0]
		for _, inst := range worked {
			ids = append(ids, inst.ID)
		}
		subject = st.cmd.Action + " " + strings.Join(ids, ",")
	}
	if err != nil {
		if final, ferr := st.cloudFailure(err, st.cmd.Action+" "+labels(st.p.Acting)); !final {
			return ferr
		}
		st.audit(switchboard.AuditAction, subject, "failed", switchboard.ErrorMessage(err))
		return nil
	}
	st.audit(switchboard.AuditAction, subject, "ok", "")
	if st.cmd.Action == switchboard.ActionReboot {
		outs := st.p.Outcomes
		for _, inst := range st.p.Acting {
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "rebooted",
				Text: inst.Label() + " was rebooted; it will be back in a minute or two."})
		}
		return st.report(outs)
	}
	st.p.Phase, st.p.Deadline = "waiting", st.runner.now().Add(st.timeout())
	if err := st.checkpoint(ctx, st.p); err != nil {
		return err
	}
	return st.check(ctx)
}

// check looks at the instances acted on; when they all reached the state
// asked for (or the deadline passed) it reports, otherwise it parks the run.
func (st *instancesStep) check(ctx context.Context) error {
	ids := idsOf(st.p.Acting)
	current, err := st.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
	// An instance that is gone fails the whole describe on EC2 (the fleet
	// layer narrows that to the missing ids): report it as gone.
	var partial *switchboard.PartialError
	if errors.As(err, &partial) || (switchboard.ErrorCode(err) == switchboard.ENOTFOUND && len(ids) == 1) {
		err = nil
	}
	if err != nil {
		if final, ferr := st.cloudFailure(err, "check "+labels(st.p.Acting)); !final {
			return ferr
		}
		return nil
	}
	want := switchboard.StateRunning
	if st.cmd.Action == switchboard.ActionStop {
		want = switchboard.StateStopped
	}
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
	timedOut := !st.runner.now().Before(st.p.Deadline)
	if !settled && !timedOut {
		st.wait(st.runner.pollInterval())
		return nil
	}

	outs := st.p.Outcomes
	for _, acted := range st.p.Acting {
		inst, ok := byID[acted.ID]
		o := Outcome{ID: acted.ID, Label: acted.Label()}
		switch {
		case !ok:
			o.Result, o.Detail, o.Text = "disappeared", "gone from the cloud", acted.Label()+" has disappeared from the cloud."
			st.p.Failed++
		case inst.State == want && want == switchboard.StateRunning:
			line, err := st.attachAddress(ctx, inst)
			if err != nil {
				return err
			}
			if st.out.Wait > 0 {
				return nil // throttled: try the address again later
			}
			o.Result, o.Text = "started", line
		case inst.State == want:
			o.Result, o.Text = "stopped", inst.Label()+" is now stopped."
		case inst.State == switchboard.StateTerminated:
			o.Result, o.Detail = "terminated", "terminated while waiting"
			o.Text = fmt.Sprintf("%s was terminated before it was %s.", inst.Label(), want)
			st.p.Failed++
		default:
			o.Result, o.Detail = "still "+string(inst.State), fmt.Sprintf("check it with `%s status %s`", st.cmd.Command, acted.ID)
			o.Text = fmt.Sprintf("%s is still %s after %s; check it with `%s status %s`.", inst.Label(), inst.State, st.timeout(), st.cmd.Command, acted.ID)
			st.p.Failed++
		}
		outs = append(outs, o)
	}
	return st.report(outs)
}

// report ends the step with the lines for the channel: a failed run when any
// instance failed, a finished one otherwise.
func (st *instancesStep) report(outs []Outcome) error {
	if st.p.Failed > 0 {
		return st.fail(Summary(outs))
	}
	return st.finish(outs)
}

func (st *instancesStep) timeout() time.Duration {
	if st.cmd.Action == switchboard.ActionStop {
		return orDefault(st.runner.StopTimeout, 10*time.Minute)
	}
	return orDefault(st.runner.StartTimeout, 5*time.Minute)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// attachAddress associates the Elastic IP configured for a started instance
// and says where it runs.
func (st *instancesStep) attachAddress(ctx context.Context, inst switchboard.Instance) (string, error) {
	eip := st.elasticIP(inst.ID)
	if eip == "" || inst.PublicIP == eip {
		return runningLine(inst, inst.PublicIP), nil
	}
	if err := st.cloud.AssociateAddress(ctx, inst.ID, eip); err != nil {
		wait, transient := retryable(err)
		switch {
		case wait > 0:
			st.wait(wait)
			return "", nil
		case transient:
			return "", fmt.Errorf("associate %s with %s: %w", eip, inst.ID, err)
		}
		// The start itself worked: report it, and the address problem.
		st.audit(switchboard.AuditAction, "associate "+eip+" "+inst.ID, "failed", switchboard.ErrorMessage(err))
		return runningLine(inst, inst.PublicIP) + fmt.Sprintf(" I could not attach %s: %s", eip, switchboard.ErrorMessage(err)), nil
	}
	st.audit(switchboard.AuditAction, "associate "+eip+" "+inst.ID, "ok", "")
	return runningLine(inst, eip), nil
}

func runningLine(inst switchboard.Instance, ip string) string {
	if ip == "" {
		return inst.Label() + " is now running."
	}
	return inst.Label() + " is now running at " + ip + "."
}

func (st *instancesStep) elasticIP(id string) string {
	for _, t := range st.cmd.Targets {
		if t.ID == id && t.ElasticIP != "" {
			return t.ElasticIP
		}
	}
	for _, s := range st.cmd.Scope {
		if s.ID == id {
			return s.ElasticIP
		}
	}
	return ""
}

// blocked says, for an instance whose state makes the action moot or
// impossible, what to answer instead.
func (st *instancesStep) blocked(inst switchboard.Instance) (Outcome, bool) {
	l := inst.Label()
	o := func(result, text string) (Outcome, bool) {
		return Outcome{ID: inst.ID, Label: l, Result: result, Text: text}, true
	}
	switch st.cmd.Action {
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
	}
	return Outcome{}, false
}

// dryRun asks the cloud whether the action would be allowed, and changes
// nothing.
func (st *instancesStep) dryRun(ctx context.Context, acting []switchboard.Instance, outs []Outcome) error {
	ids := idsOf(acting)
	err := st.cloud.DryRun(ctx, st.cmd.Action, ids)
	if err != nil && switchboard.ErrorCode(err) != switchboard.EFORBIDDEN {
		if final, ferr := st.cloudFailure(err, "check permission to "+st.cmd.Action+" "+labels(acting)); !final {
			return ferr
		}
		return nil
	}
	for _, inst := range acting {
		o := Outcome{ID: inst.ID, Label: inst.Label(), Result: "would " + st.cmd.Action,
			Text: fmt.Sprintf("Dry run: I would %s %s, and the cloud says that is allowed; nothing was changed.", st.cmd.Action, inst.Label())}
		if err != nil {
			o.Result, o.Detail = "not allowed", Reason(err)
			o.Text = fmt.Sprintf("Dry run: the cloud would refuse to %s %s: %s Nothing was changed.", st.cmd.Action, inst.Label(), switchboard.ErrorMessage(err))
		}
		outs = append(outs, o)
	}
	return st.finish(outs)
}

func (st *instancesStep) statusOutcome(inst switchboard.Instance) Outcome {
	l := inst.Label()
	alias := inst.ID
	for _, t := range st.cmd.Targets {
		if t.ID == inst.ID && t.Alias != "" {
			alias = t.Alias
		}
	}
	o := Outcome{ID: inst.ID, Label: l, Result: string(inst.State)}
	switch inst.State {
	case switchboard.StateRunning:
		o.Text = l + " is running" + at(inst) + "."
	case switchboard.StateStopped:
		o.Text = fmt.Sprintf("%s is stopped. To start it: `%s start %s`", l, st.cmd.Command, alias)
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
			parts = append(parts, tagText(tags))
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

// finish posts the answer and ends the step.
func (st *instancesStep) finish(outs []Outcome) error {
	text := Summary(outs)
	st.say("answer", text)
	st.succeed(text)
	return nil
}

func (st *instancesStep) targetText() string {
	ls := make([]string, len(st.cmd.Targets))
	for i, t := range st.cmd.Targets {
		ls[i] = t.Label()
	}
	return strings.Join(ls, ", ")
}

// resolve describes the targets and keeps the instances the command may
// touch, in the order they were named. Lines for targets that matched nothing
// or are out of scope come back as outcomes.
func (st *instancesStep) resolve(ctx context.Context) ([]switchboard.Instance, []Outcome, error) {
	var found []switchboard.Instance
	var outs []Outcome
	seen := map[string]bool{}
	for _, t := range st.cmd.Targets {
		f := switchboard.Filter{Tags: t.Tags}
		if t.ID != "" {
			f = switchboard.Filter{IDs: []string{t.ID}}
		}
		insts, err := st.cloud.DescribeInstances(ctx, f)
		if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
			outs = append(outs, Outcome{ID: t.ID, Label: t.Label(), Result: "not found", Detail: "not in cloud " + st.run.Cloud,
				Text: fmt.Sprintf("%s was not found in cloud %s.", t.Label(), st.run.Cloud)})
			continue
		} else if err != nil {
			return nil, nil, err
		}
		matched := 0
		for _, inst := range insts {
			if !inScope(st.cmd.Scope, inst) {
				if t.ID != "" {
					outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "out of scope", Detail: "not covered by " + st.cmd.Command,
						Text: fmt.Sprintf("%s may not touch %s.", st.cmd.Command, inst.Label())})
				}
				continue
			}
			matched++
			if !seen[inst.ID] {
				seen[inst.ID] = true
				found = append(found, inst)
			}
		}
		if matched == 0 && t.ID == "" {
			outs = append(outs, Outcome{Label: t.Label(), Result: "no match",
				Text: fmt.Sprintf("%s matches no instance %s may touch.", t.Label(), st.cmd.Command)})
		}
	}
	return found, outs, nil
}

// inScope reports whether a command configured with scope may touch inst: its
// id is listed, or its tags include one of the configured selectors.
func inScope(scope []switchboard.TargetSpec, inst switchboard.Instance) bool {
	for _, s := range scope {
		if s.ID != "" && s.ID == inst.ID {
			return true
		}
		if s.ID == "" && len(s.Tags) > 0 && tagsMatch(s.Tags, inst.Tags) {
			return true
		}
	}
	return false
}

func tagsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func labels(insts []switchboard.Instance) string {
	ls := make([]string, len(insts))
	for i, inst := range insts {
		ls[i] = inst.Label()
	}
	slices.Sort(ls)
	return strings.Join(ls, ", ")
}

// idsOf lists the instances' ids.
func idsOf(insts []switchboard.Instance) []string {
	ids := make([]string, len(insts))
	for i, inst := range insts {
		ids[i] = inst.ID
	}
	return ids
}
