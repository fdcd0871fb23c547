package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"

	"github.com/switchboardhq/switchboard"
)

// The workflow step types (docs/workflows.md). Each runs against the run's
// plan; the ones that change a cloud checkpoint before the change, and the
// ones that wait park the run between checks.

// duration is a parameter written like "90s".
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("a duration is written like 90s or 5m")
		}
		*d = duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration is written like 90s or 5m, not %q", s)
	}
	*d = duration(v)
	return nil
}

type targetParams struct {
	Instance  string            `json:"instance"`
	Instances []string          `json:"instances"`
	Tags      map[string]string `json:"tags"`
	Cloud     string            `json:"cloud"`
	Wait      duration          `json:"wait"`
}

// workflowProgress is a workflow step's own progress.
type workflowProgress struct {
	Phase    string    `json:"phase"` // "" → acting → waiting
	IDs      []string  `json:"ids,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Outputs kept across the phases of one step (run's public IP...).
	Outputs map[string]any `json:"outputs,omitempty"`
	// Approved is set once the approval the policy asked for is given.
	Approved bool `json:"approved,omitempty"`
}

// workflowStep runs the step at the cursor.
func (sc *stepContext) workflowStep(ctx context.Context) error {
	step := sc.run.Plan[sc.run.Cursor]
	cs, err := compileStep(sc.run.Plan, sc.run.Cursor)
	if err != nil {
		return sc.stepFailed(fmt.Sprintf("Step %d (%s) cannot run: %v", sc.run.Cursor+1, step.Kind, err), false)
	}
	env, err := cs.envValue(sc.run)
	if err != nil {
		return sc.stepFailed(err.Error(), false)
	}
	var p workflowProgress
	if err := sc.loadScratch(&p); err != nil {
		return err
	}
	if cs.condition != nil && p.Phase == "" {
		ok, err := expr.Run(cs.condition, env)
		if err != nil {
			return sc.stepFailed(fmt.Sprintf("Step %d (%s): if: %v", sc.run.Cursor+1, step.Kind, err), false)
		}
		if ok != true {
			sc.setOutputs(step.ID, nil)
			sc.next()
			return nil
		}
	}
	// Render every {{ template }} of the parameters.
	var raw any
	if len(step.With) > 0 {
		if err := json.Unmarshal(step.With, &raw); err != nil {
			return sc.stepFailed(fmt.Sprintf("Step %d (%s): %v", sc.run.Cursor+1, step.Kind, err), false)
		}
	}
	rendered, err := renderStrings(raw, func(s string) (string, error) {
		if t := cs.templates[s]; t != nil {
			return t.render(env)
		}
		return s, nil
	})
	if err != nil {
		return sc.stepFailed(fmt.Sprintf("Step %d (%s): %v", sc.run.Cursor+1, step.Kind, err), false)
	}
	params, _ := json.Marshal(rendered)
	ws := &wfStep{stepContext: sc, step: step, params: params, p: &p}
	switch step.Kind {
	case "notify":
		return ws.notify()
	case "extract":
		return ws.extract()
	case "set":
		return ws.set()
	case "fail":
		return ws.fail()
	case "describe":
		return ws.describe(ctx)
	case "start", "stop", "reboot", "terminate":
		return ws.change(ctx)
	case "wait":
		return ws.waitFor(ctx)
	case "associate":
		return ws.associate(ctx)
	case "run":
		return ws.launch(ctx)
	case "http":
		return ws.http(ctx)
	case "approval":
		return ws.approval(ctx)
	}
	return sc.stepFailed(fmt.Sprintf("Step %d has an unknown type %q.", sc.run.Cursor+1, step.Kind), false)
}

type wfStep struct {
	*stepContext
	step   switchboard.Step
	params []byte
	p      *workflowProgress
}

// decode reads the step's rendered parameters into v. When they do not fit
// it fails the step and returns false: the caller returns nil.
func (ws *wfStep) decode(v any) bool {
	if err := json.Unmarshal(ws.params, v); err != nil {
		_ = ws.stepFailed(fmt.Sprintf("Step %d (%s): %v", ws.run.Cursor+1, ws.step.Kind, err), false)
		return false
	}
	return true
}

// decodeWithCloud is decode for steps that act on a cloud: cloud points
// into v at the cloud's name (empty: the run's cloud). It fails the step
// when the cloud is not configured.
func (ws *wfStep) decodeWithCloud(v any, cloud *string) (switchboard.Provider, string, bool) {
	if !ws.decode(v) {
		return nil, "", false
	}
	p, name, ok := ws.cloud(*cloud)
	if !ok {
		_ = ws.noCloud(name)
	}
	return p, name, ok
}

// done records the step's outputs and moves on.
func (ws *wfStep) done(outputs map[string]any) error {
	ws.setOutputs(ws.step.ID, outputs)
	ws.next()
	return nil
}

func (sc *stepContext) setOutputs(id string, outputs map[string]any) {
	if id == "" {
		return
	}
	if outputs == nil {
		outputs = map[string]any{}
	}
	b, _ := json.Marshal(outputs)
	if sc.run.Vars == nil {
		sc.run.Vars = map[string]json.RawMessage{}
	}
	sc.run.Vars[id] = b
}

// stepFailed ends the main steps with an error: the on_error steps run next
// when there are any (and quiet is false); otherwise the run fails and the
// channel is told.
func (sc *stepContext) stepFailed(msg string, quiet bool) error {
	sc.audit(switchboard.AuditAction, fmt.Sprintf("step %d %s", sc.run.Cursor+1, sc.run.Plan[sc.run.Cursor].Kind), "failed", msg)
	if sc.run.Plan[sc.run.Cursor].Section != sectionOnError {
		for i, s := range sc.run.Plan {
			if s.Section == sectionOnError {
				if quiet {
					break
				}
				sc.run.Error = msg
				sc.run.Cursor = i
				sc.run.Scratch = nil
				return nil
			}
		}
	}
	if quiet {
		sc.run.Error, sc.run.State, sc.run.Scratch = msg, switchboard.RunFailed, nil
		return nil
	}
	return sc.fail(msg)
}

func (ws *wfStep) notify() error {
	var p struct {
		Text    string `json:"text"`
		Channel string `json:"channel"`
		Thread  bool   `json:"thread"`
	}
	if !ws.decode(&p) {
		return nil
	}
	ws.sayIn(p.Channel, fmt.Sprintf("notify%d", ws.run.Cursor), p.Text)
	ws.out.Messages[len(ws.out.Messages)-1].Thread = p.Thread && p.Channel == ""
	return ws.done(map[string]any{"ts": ""})
}

func (ws *wfStep) extract() error {
	var p struct {
		From     string `json:"from"`
		Pattern  string `json:"pattern"`
		Required *bool  `json:"required"`
	}
	if !ws.decode(&p) {
		return nil
	}
	re, err := regexp.Compile(p.Pattern)
	if err != nil {
		return ws.stepFailed(fmt.Sprintf("extract: %v", err), false)
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
		return ws.stepFailed(fmt.Sprintf("Found nothing matching %s in %q.", p.Pattern, clip(p.From, 120)), false)
	}
	return ws.done(out)
}

func (ws *wfStep) set() error {
	var p map[string]any
	if !ws.decode(&p) {
		return nil
	}
	out := map[string]any{}
	for k, v := range p {
		out[k] = format(v)
	}
	return ws.done(out)
}

func (ws *wfStep) fail() error {
	var p struct {
		Message string `json:"message"`
		Quiet   bool   `json:"quiet"`
	}
	if !ws.decode(&p) {
		return nil
	}
	return ws.stepFailed(p.Message, p.Quiet)
}

// cloud returns the provider a step acts on.
func (ws *wfStep) cloud(name string) (switchboard.Provider, string, bool) {
	if name == "" {
		name = ws.run.Cloud
	}
	p, ok := ws.runner.Providers[name]
	return p, name, ok
}

func (ws *wfStep) noCloud(name string) error {
	return ws.stepFailed(fmt.Sprintf("The cloud %q is not configured.", name), false)
}

func (ws *wfStep) describe(ctx context.Context) error {
	var p targetParams
	cloud, name, ok := ws.decodeWithCloud(&p, &p.Cloud)
	if !ok {
		return nil
	}
	f := switchboard.Filter{Tags: p.Tags}
	if p.Instance != "" {
		f = switchboard.Filter{IDs: []string{p.Instance}}
	}
	insts, err := cloud.DescribeInstances(ctx, f)
	if err == nil && len(insts) == 0 {
		return ws.stepFailed(fmt.Sprintf("No instance matches %s in cloud %s.", targetText(p), name), false)
	}
	if err != nil {
		return ws.cloudError(err, "describe "+targetText(p))
	}
	inst := insts[0]
	return ws.done(map[string]any{"id": inst.ID, "name": inst.Name, "state": string(inst.State), "public_ip": inst.PublicIP,
		"private_ip": inst.PrivateIP, "type": inst.Type, "tags": inst.Tags})
}

// cloudError handles a failed cloud call in a workflow step: throttling
// parks the run, an outage is retried, anything else fails the step.
func (ws *wfStep) cloudError(err error, what string) error {
	wait, transient := retryable(err)
	switch {
	case wait > 0:
		ws.wait(wait)
		return nil
	case transient:
		return fmt.Errorf("%s: %w", what, err)
	}
	return ws.stepFailed(fmt.Sprintf("Could not %s: %s", what, switchboard.ErrorMessage(err)), false)
}

func targetText(p targetParams) string {
	switch {
	case p.Instance != "":
		return p.Instance
	case len(p.Instances) > 0:
		return strings.Join(p.Instances, ", ")
	}
	return tagText(p.Tags)
}

// ids resolves a step's targets to instance ids.
func (ws *wfStep) ids(ctx context.Context, cloud switchboard.Provider, p targetParams) ([]string, error) {
	switch {
	case p.Instance != "":
		return []string{p.Instance}, nil
	case len(p.Instances) > 0:
		return p.Instances, nil
	}
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{Tags: p.Tags})
	if err != nil {
		return nil, err
	}
	ids := idsOf(insts)
	return ids, nil
}

// change starts, stops, reboots or terminates instances, then (with wait)
// parks the run until they reach the end state.
func (ws *wfStep) change(ctx context.Context) error {
	var p targetParams
	cloud, name, ok := ws.decodeWithCloud(&p, &p.Cloud)
	if !ok {
		return nil
	}
	action := ws.step.Kind
	want := map[string]switchboard.InstanceState{"start": switchboard.StateRunning, "stop": switchboard.StateStopped,
		"terminate": switchboard.StateTerminated}[action]
	if ws.p.Phase == "approval" {
		ap, approved, err := ws.awaitApproval(ctx, fmt.Sprintf("%s-%d-policy", ws.run.ID, ws.run.Cursor))
		if err != nil || ap == nil {
			return err
		}
		if !approved {
			return ws.stepFailed(fmt.Sprintf("Not %s %s: %s.", gerund(action), strings.Join(ws.p.IDs, ", "), decidedText(ap)), false)
		}
		ws.p.Phase, ws.p.Approved = "", true
	}
	if ws.p.Phase == "" {
		ids := ws.p.IDs
		if len(ids) == 0 {
			var err error
			if ids, err = ws.ids(ctx, cloud, p); err != nil {
				return ws.cloudError(err, "find "+targetText(p))
			}
		}
		if len(ids) == 0 {
			return ws.stepFailed(fmt.Sprintf("No instance matches %s in cloud %s.", targetText(p), name), false)
		}
		if len(ws.step.Policy) > 0 && !ws.p.Approved {
			allowed, err := ws.policy(ctx, cloud, ids)
			if !allowed || err != nil {
				return err
			}
		}
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = name + "/" + id
		}
		holder, err := ws.runner.Locks.LockInstances(ctx, ws.run.ID, keys)
		if err != nil {
			return fmt.Errorf("lock instances: %w", err)
		}
		if holder != "" {
			ws.p.IDs = ids
			if err := ws.stage(ws.p); err != nil {
				return err
			}
			ws.wait(ws.runner.pollInterval())
			return nil
		}
		ws.p.Phase, ws.p.IDs = "acting", ids
		if err := ws.checkpoint(ctx, ws.p); err != nil {
			return err
		}
	}
	if ws.p.Phase == "acting" {
		var err error
		switch action {
		case "start":
			_, err = cloud.StartInstances(ctx, ws.p.IDs)
		case "stop":
			_, err = cloud.StopInstances(ctx, ws.p.IDs, switchboard.StopOptions{})
		case "reboot":
			err = cloud.RebootInstances(ctx, ws.p.IDs)
		case "terminate":
			_, err = cloud.TerminateInstances(ctx, ws.p.IDs)
		}
		if err != nil {
			return ws.cloudError(err, action+" "+strings.Join(ws.p.IDs, ", "))
		}
		ws.audit(switchboard.AuditAction, action+" "+strings.Join(ws.p.IDs, ","), "ok", "")
		if p.Wait <= 0 || want == "" {
			return ws.done(map[string]any{"ids": ws.p.IDs, "states": map[string]string{}})
		}
		ws.p.Phase, ws.p.Deadline = "waiting", ws.runner.now().Add(time.Duration(p.Wait))
		if err := ws.checkpoint(ctx, ws.p); err != nil {
			return err
		}
	}
	return ws.until(ctx, cloud, want, time.Duration(p.Wait))
}

// until checks the step's instances and moves on when all are in state
// want, fails the step at the deadline, and parks the run otherwise.
func (ws *wfStep) until(ctx context.Context, cloud switchboard.Provider, want switchboard.InstanceState, limit time.Duration) error {
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ws.p.IDs})
	if err != nil {
		return ws.cloudError(err, "check "+strings.Join(ws.p.IDs, ", "))
	}
	states := map[string]string{}
	var late []string
	for _, inst := range insts {
		states[inst.ID] = string(inst.State)
		if inst.State != want {
			late = append(late, fmt.Sprintf("%s is %s", inst.Label(), inst.State))
		}
	}
	if len(late) == 0 {
		out := map[string]any{"ids": ws.p.IDs, "states": states}
		for k, v := range ws.p.Outputs {
			out[k] = v
		}
		if len(ws.p.IDs) == 1 {
			out["state"] = states[ws.p.IDs[0]]
		}
		return ws.done(out)
	}
	if !ws.runner.now().Before(ws.p.Deadline) {
		slices.Sort(late)
		return ws.stepFailed(fmt.Sprintf("Waited %s for %s: %s.", limit, want, strings.Join(late, "; ")), false)
	}
	ws.wait(min(ws.runner.pollInterval(), max(ws.p.Deadline.Sub(ws.runner.now()), time.Millisecond)))
	return nil
}

func (ws *wfStep) waitFor(ctx context.Context) error {
	var p struct {
		targetParams
		State   string   `json:"state"`
		Timeout duration `json:"timeout"`
	}
	cloud, _, ok := ws.decodeWithCloud(&p, &p.Cloud)
	if !ok {
		return nil
	}
	limit := time.Duration(p.Timeout)
	if limit <= 0 {
		limit = 5 * time.Minute
	}
	if ws.p.Phase == "" {
		ids, err := ws.ids(ctx, cloud, p.targetParams)
		if err != nil {
			return ws.cloudError(err, "find "+targetText(p.targetParams))
		}
		ws.p.Phase, ws.p.IDs, ws.p.Deadline = "waiting", ids, ws.runner.now().Add(limit)
		if err := ws.stage(ws.p); err != nil {
			return err
		}
	}
	return ws.until(ctx, cloud, switchboard.InstanceState(p.State), limit)
}

func (ws *wfStep) associate(ctx context.Context) error {
	var p struct {
		Instance string `json:"instance"`
		Address  string `json:"address"`
		Cloud    string `json:"cloud"`
	}
	cloud, _, ok := ws.decodeWithCloud(&p, &p.Cloud)
	if !ok {
		return nil
	}
	if err := cloud.AssociateAddress(ctx, p.Instance, p.Address); err != nil {
		return ws.cloudError(err, "attach "+p.Address+" to "+p.Instance)
	}
	ws.audit(switchboard.AuditAction, "associate "+p.Address+" "+p.Instance, "ok", "")
	return ws.done(nil)
}

// launch runs instances. Its ClientToken comes from the run and the step,
// so a retried step finds the instances it launched instead of launching
// more.
func (ws *wfStep) launch(ctx context.Context) error {
	var p struct {
		Image          string            `json:"image"`
		Type           string            `json:"type"`
		Count          int               `json:"count"`
		Subnet         string            `json:"subnet"`
		SecurityGroups []string          `json:"security_groups"`
		Key            string            `json:"key"`
		UserData       string            `json:"user_data"`
		Tags           map[string]string `json:"tags"`
		Cloud          string            `json:"cloud"`
		Wait           duration          `json:"wait"`
	}
	cloud, _, ok := ws.decodeWithCloud(&p, &p.Cloud)
	if !ok {
		return nil
	}
	if ws.p.Phase == "" {
		insts, err := cloud.RunInstances(ctx, switchboard.LaunchSpec{ImageID: p.Image, Type: p.Type, Count: p.Count, SubnetID: p.Subnet,
			SecurityGroups: p.SecurityGroups, KeyName: p.Key, UserData: p.UserData, Tags: p.Tags,
			ClientToken: fmt.Sprintf("%s-%d", ws.run.ID, ws.run.Cursor)})
		if err != nil {
			return ws.cloudError(err, "launch "+p.Image)
		}
		ids := idsOf(insts)
		ws.audit(switchboard.AuditAction, "run "+strings.Join(ids, ","), "ok", p.Image)
		out := map[string]any{"ids": ids, "public_ip": ""}
		if len(insts) > 0 {
			out["public_ip"] = insts[0].PublicIP
		}
		if p.Wait <= 0 {
			return ws.done(out)
		}
		ws.p.Phase, ws.p.IDs, ws.p.Deadline, ws.p.Outputs = "waiting", ids, ws.runner.now().Add(time.Duration(p.Wait)), out
		if err := ws.checkpoint(ctx, ws.p); err != nil {
			return err
		}
	}
	return ws.until(ctx, cloud, switchboard.StateRunning, time.Duration(p.Wait))
}

func (ws *wfStep) http(ctx context.Context) error {
	var p struct {
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Timeout duration          `json:"timeout"`
		Expect  []int             `json:"expect"`
	}
	if !ws.decode(&p) {
		return nil
	}
	if p.Method == "" {
		p.Method = http.MethodGet
	}
	timeout := time.Duration(p.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(p.Method), p.URL, bytes.NewReader([]byte(p.Body)))
	if err != nil {
		return ws.stepFailed(fmt.Sprintf("http: %v", err), false)
	}
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ws.stepFailed(fmt.Sprintf("http %s %s: %v", req.Method, req.URL.Redacted(), err), false)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if len(p.Expect) > 0 {
		ok = slices.Contains(p.Expect, resp.StatusCode)
	}
	if !ok {
		return ws.stepFailed(fmt.Sprintf("http %s %s answered %s.", req.Method, req.URL.Redacted(), resp.Status), false)
	}
	var parsed any
	_ = json.Unmarshal(body, &parsed)
	return ws.done(map[string]any{"status": resp.StatusCode, "body": string(body), "json": parsed})
}

// sayIn posts text to channel, or to the run's channel when channel is
// empty; only the run's own channel gets its response_url.
func (sc *stepContext) sayIn(channel, name, text string) {
	sc.say(name, text)
	if channel != "" && channel != sc.run.Request.ChannelID {
		m := &sc.out.Messages[len(sc.out.Messages)-1]
		m.ChannelID, m.ResponseURL = channel, ""
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// policy applies the workflow's policy to the instances a step would
// change: a deny rule fails the step with its reason; an approval rule
// parks the run until the approval is decided (phase "approval"). It
// reports whether the step may go on now.
func (ws *wfStep) policy(ctx context.Context, cloud switchboard.Provider, ids []string) (bool, error) {
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
	if err != nil {
		return false, ws.cloudError(err, "look up "+strings.Join(ids, ", "))
	}
	req := ws.run.Request
	var pending []switchboard.Instance
	var rule *switchboard.ApprovalRule
	for _, inst := range insts {
		env := policyEnv{Action: ws.step.Kind, User: req.UserID, Channel: req.ChannelID, Command: ws.run.Workflow,
			Instance: instanceEnv{ID: inst.ID, Name: inst.Name, State: string(inst.State), Type: inst.Type, Tags: inst.Tags}}
		if env.Instance.Tags == nil {
			env.Instance.Tags = map[string]string{}
		}
		r, err := policyFor(ws.step.Policy, env)
		switch {
		case err != nil:
			return false, ws.stepFailed("The policy could not be checked: "+err.Error(), false)
		case r == nil:
		case r.Deny != "":
			ws.audit(switchboard.AuditDecision, ws.step.Kind+" "+inst.ID, "refused", "policy: "+r.Deny)
			return false, ws.stepFailed(fmt.Sprintf("Not %s %s: %s", gerund(ws.step.Kind), inst.Label(), r.Deny), false)
		case r.Approval != nil:
			pending = append(pending, inst)
			if rule == nil {
				rule = r.Approval
			}
		}
	}
	if len(pending) == 0 {
		return true, nil
	}
	if ws.runner.Approvals == nil {
		return false, ws.stepFailed("The policy asks for an approval, and approvals are not available here.", false)
	}
	id := fmt.Sprintf("%s-%d-policy", ws.run.ID, ws.run.Cursor)
	text := fmt.Sprintf("Workflow %s wants to %s %s; its policy asks for an approval.", ws.run.Workflow, ws.step.Kind, labels(pending))
	if err := ws.openApproval(ctx, id, text, *rule); err != nil {
		return false, err
	}
	ws.p.Phase, ws.p.IDs = "approval", ids
	return false, ws.stage(ws.p)
}
