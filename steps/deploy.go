package steps

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Branch deploys, as step types: find the branch, launch its environment,
// check its health, announce it; list, terminate, pin and unpin
// environments; tear them down on a schedule and sweep the expired ones.
// A /deploy command is planned into these steps (engine/deploys.go); the
// state of every environment is in its instance's tags.

// Deploys returns the deploy step types, which find branch sources and
// schedules through rt.
func Deploys(rt switchboard.DeployRuntime) []switchboard.StepType {
	d := &deploys{rt: rt}
	types := []switchboard.StepType{
		{Kind: "deploy_find", Raw: true, RunFunc: d.find, Outputs: branchOutputs},
		{Kind: "deploy_launch", OnCloud: true, RunFunc: d.launch, Outputs: []switchboard.Output{
			{Name: "id", Type: switchboard.TypeText}, {Name: "address", Type: switchboard.TypeText}, {Name: "replaces", Type: switchboard.TypeStrings}}},
		{Kind: "deploy_health", RunFunc: d.health, Outputs: []switchboard.Output{{Name: "status", Type: switchboard.TypeInt}}},
		{Kind: "deploy_announce", RunFunc: d.announce},
		{Kind: "deploy_list", Raw: true, RunFunc: d.list},
		{Kind: "deploy_terminate", Raw: true, RunFunc: d.terminate},
		{Kind: "deploy_pin", Raw: true, RunFunc: d.pin},
		{Kind: "deploy_teardown", Raw: true, RunFunc: d.teardown},
		{Kind: "deploy_sweep", Raw: true, RunFunc: d.sweep},
	}
	for i := range types {
		types[i].Internal = true
	}
	return types
}

var (
	safeBranch = regexp.MustCompile(`^[A-Za-z0-9._/:+-]+$`)
	safeCommit = regexp.MustCompile(`^[0-9a-f]*$`)
)

var branchOutputs = []switchboard.Output{
	{Name: "name", Type: switchboard.TypeText}, {Name: "commit", Type: switchboard.TypeText},
	{Name: "short_commit", Type: switchboard.TypeText}, {Name: "pr", Type: switchboard.TypeInt},
	{Name: "title", Type: switchboard.TypeText}, {Name: "url", Type: switchboard.TypeText},
}

type deploys struct {
	rt switchboard.DeployRuntime
}

// deployParams are what every deploy step knows: the deploy command it
// belongs to, and for those acting on one environment the query naming it.
type deployParams struct {
	Deploy string `json:"deploy"`
	Query  string `json:"query,omitempty"`
}

// find looks the query up in the deploy's branch source; one branch goes
// on, anything else ends the run with the sentence that says why.
func (d *deploys) find(ctx context.Context, s switchboard.StepRun) error {
	var p deployParams
	if !s.Params(&p) {
		return nil
	}
	src, ok := d.rt.Source(p.Deploy)
	if !ok {
		return s.Abort(fmt.Sprintf("%s has no branch source configured any more; nothing was deployed.", p.Deploy))
	}
	matches, err := src.FindBranches(ctx, p.Query)
	if err != nil {
		// Never a guess: a source that could not be read deploys nothing.
		return s.Fail(switchboard.ErrorMessage(err)+" Nothing was deployed.", false)
	}
	b, err := switchboard.PickBranch(p.Query, matches)
	if err != nil {
		return s.Fail(switchboard.ErrorMessage(err), false)
	}
	// The branch name goes into user data that a shell may run, and a
	// branch (a fork's above all) is named by whoever pushed it: only
	// names that cannot break out of a word are deployed.
	if !safeBranch.MatchString(b.Name) || !safeCommit.MatchString(b.Commit) {
		s.Audit(switchboard.AuditDecision, "deploy "+b.Name, "refused", "unsafe branch name or commit")
		return s.Fail(fmt.Sprintf("I won't deploy %q: a branch name here may hold only letters, digits and . _ / : + -, since it goes into the instance's user data.", b.Name), false)
	}
	s.Audit(switchboard.AuditDecision, "deploy "+b.Name, "found", b.Label())
	return s.Done(map[string]any{"name": b.Name, "commit": b.Commit, "short_commit": b.ShortCommit(), "pr": b.PR, "title": b.Title, "url": b.URL})
}

// launchParams are the launch step's: the branch (rendered from the find
// step's outputs), what to launch, and the deploy's rules.
type launchParams struct {
	Deploy         string               `json:"deploy"`
	Branch         string               `json:"branch"`
	Commit         string               `json:"commit"`
	PR             string               `json:"pr"`
	Image          string               `json:"image"`
	Type           string               `json:"type"`
	Subnet         string               `json:"subnet"`
	SecurityGroups []string             `json:"security_groups"`
	Key            string               `json:"key"`
	UserData       string               `json:"user_data"`
	Tags           map[string]string    `json:"tags"`
	Wait           switchboard.Duration `json:"wait"`
	Lifetime       switchboard.Duration `json:"lifetime"`
	Redeploy       string               `json:"redeploy"`
	PerUser        int                  `json:"per_user"`
	Total          int                  `json:"total"`
}

type launchProgress struct {
	Phase    string    `json:"phase"` // "" → launching → waiting
	ID       string    `json:"id,omitempty"`
	Replaces []string  `json:"replaces,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Expires is the expiry chosen before the launch: a retried launch
	// asks for exactly the same, or the cloud would refuse its ClientToken
	// as used with different parameters.
	Expires time.Time `json:"expires,omitzero"`
}

// environments lists the live environments of a deploy command.
func environments(ctx context.Context, cloud switchboard.Provider, deploy string) ([]switchboard.Environment, error) {
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{Tags: map[string]string{switchboard.TagDeploy: deploy}})
	if err != nil {
		return nil, err
	}
	var envs []switchboard.Environment
	for _, inst := range insts {
		if e := switchboard.EnvironmentOf(inst); e.Live() && inst.Tags[switchboard.TagDeploy] == deploy {
			envs = append(envs, e)
		}
	}
	// By launch, then by branch: clouds give launch times to the second,
	// and a list must not change order from one look to the next.
	slices.SortFunc(envs, func(a, b switchboard.Environment) int {
		return cmp.Or(a.Instance.LaunchTime.Compare(b.Instance.LaunchTime), strings.Compare(a.Branch, b.Branch))
	})
	return envs, nil
}

// launch checks the caps and the branch's environment, then launches (with
// a ClientToken from the run, so a retried step launches nothing more) and
// parks until the instance runs.
func (d *deploys) launch(ctx context.Context, s switchboard.StepRun) error {
	var p launchParams
	cloud, cloudName, ok := paramsWithCloud(s, &p, new(string))
	if !ok {
		return nil
	}
	var pr launchProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	run := s.Run()
	user := run.Request.UserID
	if pr.Phase == "" {
		envs, err := environments(ctx, cloud, p.Deploy)
		if err != nil {
			return s.CloudError(err, "list the environments of "+p.Deploy)
		}
		var same, mine []switchboard.Environment
		for _, e := range envs {
			if e.Branch == p.Branch {
				same = append(same, e)
			}
			if e.Requester == user {
				mine = append(mine, e)
			}
		}
		if len(same) > 0 && p.Redeploy == "refuse" {
			return s.Fail(fmt.Sprintf("%s is already up at %s; terminate it first with `%s terminate %s`.", p.Branch, address(same[0].Instance), p.Deploy, p.Branch), false)
		}
		// A replaced environment leaves once its successor is healthy:
		// it does not count against the caps.
		if p.Total > 0 && len(envs)-len(same) >= p.Total {
			return s.Fail(fmt.Sprintf("All %d environments of %s are in use (%s); free one with `%s terminate <branch>`.", p.Total, p.Deploy, branchList(envs), p.Deploy), false)
		}
		if p.PerUser > 0 && len(mine)-countMine(same, user) >= p.PerUser {
			return s.Fail(fmt.Sprintf("You have %d environments up already, the most %s allows (%s); free one with `%s terminate <branch>`.", len(mine), p.Deploy, branchList(mine), p.Deploy), false)
		}
		now := s.Now()
		expires := now.Add(time.Duration(p.Lifetime))
		if next, ok := d.rt.NextTeardown(p.Deploy, now); ok && next.Before(expires) {
			expires = next
		}
		pr.Replaces = nil
		for _, e := range same {
			pr.Replaces = append(pr.Replaces, e.Instance.ID)
		}
		// Checkpointed before the launch (fix): a step retried after the
		// launch took effect but before its answer was recorded used to
		// start over, find its own new instance among the branch's
		// environments and then replace it (terminating what it had just
		// announced), refuse it, or relaunch with a later expiry that the
		// cloud refused as a reused ClientToken. From "launching" a retry
		// repeats the same launch, which the ClientToken makes one.
		pr.Phase, pr.Expires = "launching", expires
		if err := s.Checkpoint(ctx, pr); err != nil {
			return err
		}
	}
	// Said on every pass of the step once the launch may go ahead, under
	// one key that the store posts once: messages are written when the
	// advance ends, not with a checkpoint, so a retry after a crash that
	// lost the first (during the launch, or the health check after it)
	// still says it.
	prNum, _ := strconv.Atoi(p.PR)
	s.Say("deploying", fmt.Sprintf("Deploying %s — I'll post the address when it is up.", switchboard.Branch{Name: p.Branch, Commit: p.Commit, PR: prNum}.Label()))
	if pr.Phase == "launching" {
		tags := map[string]string{}
		for k, v := range p.Tags {
			tags[k] = v
		}
		for k, v := range map[string]string{
			"Name": switchboard.EnvironmentName(p.Branch), switchboard.TagDeploy: p.Deploy, switchboard.TagBranch: p.Branch,
			switchboard.TagCommit: p.Commit, switchboard.TagPR: p.PR, switchboard.TagRequester: user,
			switchboard.TagExpires: pr.Expires.UTC().Format(time.RFC3339),
		} {
			tags[k] = v
		}
		insts, err := cloud.RunInstances(ctx, switchboard.LaunchSpec{ImageID: p.Image, Type: p.Type, Count: 1, SubnetID: p.Subnet,
			SecurityGroups: p.SecurityGroups, KeyName: p.Key, UserData: p.UserData, Tags: tags,
			ClientToken: fmt.Sprintf("%s-%d", run.ID, run.Cursor)})
		if err != nil {
			return s.CloudError(err, "launch "+p.Image+" for "+p.Branch)
		}
		if len(insts) == 0 {
			return s.Fail("The cloud launched nothing for "+p.Branch+".", false)
		}
		pr.Phase, pr.ID, pr.Deadline = "waiting", insts[0].ID, s.Now().Add(max(time.Duration(p.Wait), time.Minute))
		s.Audit(switchboard.AuditAction, "launch "+pr.ID, "ok", p.Branch+" in "+cloudName)
		if err := s.Checkpoint(ctx, pr); err != nil {
			return err
		}
	}
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{pr.ID}})
	if err != nil && switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		return s.CloudError(err, "check "+pr.ID)
	}
	if len(insts) == 1 && insts[0].State == switchboard.StateRunning {
		// The address is the one the announcement gives: the public one,
		// else the private one (fix: it was the public one only, so in a
		// private subnet the health URL had no host and every check
		// failed).
		return s.Done(map[string]any{"id": pr.ID, "address": cmp.Or(insts[0].PublicIP, insts[0].PrivateIP), "replaces": pr.Replaces})
	}
	// Pending, or not found yet: EC2 may not know an instance by its id
	// for a few seconds after launching it, so until the deadline that is
	// waited out (fix: it failed the run at once as "gone", leaving the
	// instance up). A terminated instance stays visible for an hour, so
	// within the wait a not-found one has not left.
	if (len(insts) == 0 || len(insts) == 1 && insts[0].State == switchboard.StatePending) && s.Now().Before(pr.Deadline) {
		s.Wait(min(s.PollInterval(), max(pr.Deadline.Sub(s.Now()), time.Millisecond)))
		return nil
	}
	state := "gone"
	if len(insts) == 1 {
		state = string(insts[0].State)
	}
	return s.Fail(fmt.Sprintf("%s (%s) did not start: it is %s.", switchboard.EnvironmentName(p.Branch), pr.ID, state), false)
}

func countMine(envs []switchboard.Environment, user string) int {
	n := 0
	for _, e := range envs {
		if e.Requester == user {
			n++
		}
	}
	return n
}

func branchList(envs []switchboard.Environment) string {
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Branch
	}
	return strings.Join(names, ", ")
}

func address(inst switchboard.Instance) string {
	if inst.PublicIP != "" {
		return "http://" + inst.PublicIP + " (" + inst.ID + ")"
	}
	if inst.PrivateIP != "" {
		return "http://" + inst.PrivateIP + " (" + inst.ID + ")"
	}
	return inst.ID
}

// healthParams are the health step's; URL is rendered with the launch
// step's outputs.
type healthParams struct {
	Deploy    string               `json:"deploy"`
	URL       string               `json:"url"`
	Timeout   switchboard.Duration `json:"timeout"`
	Expect    []int                `json:"expect"`
	OnFailure string               `json:"on_failure"`
	ID        string               `json:"id"`
}

type healthProgress struct {
	Deadline time.Time `json:"deadline"`
	Last     string    `json:"last,omitempty"`
}

// healthClient bounds each check; redirects are not followed, so a check
// answers for the address it was given.
var healthClient = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// health checks the environment's URL until it answers as expected, parking
// between checks; at the deadline it reports the last answer and keeps or
// terminates the instance as configured.
func (d *deploys) health(ctx context.Context, s switchboard.StepRun) error {
	var p healthParams
	if !s.Params(&p) {
		return nil
	}
	var pr healthProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	if pr.Deadline.IsZero() {
		pr.Deadline = s.Now().Add(max(time.Duration(p.Timeout), time.Second))
	}
	status, last := check(ctx, p.URL)
	if status > 0 && (len(p.Expect) == 0 && status < 300 && status >= 200 || slices.Contains(p.Expect, status)) {
		return s.Done(map[string]any{"status": status})
	}
	pr.Last = last
	if s.Now().Before(pr.Deadline) {
		if err := s.Stage(pr); err != nil {
			return err
		}
		s.Wait(min(s.PollInterval(), max(pr.Deadline.Sub(s.Now()), time.Millisecond)))
		return nil
	}
	msg := fmt.Sprintf("%s did not pass its health check within %s: the last answer was %s.", p.URL, time.Duration(p.Timeout), pr.Last)
	if p.OnFailure == "keep" {
		return s.Fail(msg+" The instance is kept for a look: "+p.ID+".", false)
	}
	cloud, _, ok := s.Cloud("")
	if ok {
		if _, err := terminateIDs(ctx, cloud, []string{p.ID}); err != nil {
			return s.CloudError(err, "terminate "+p.ID)
		}
		s.Audit(switchboard.AuditAction, "terminate "+p.ID, "ok", "failed its health check")
	}
	return s.Fail(msg+" I terminated "+p.ID+".", false)
}

// check makes one health request and says what came back.
func check(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "an unusable URL"
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		var uerr interface{ Timeout() bool }
		if errors.As(err, &uerr) && uerr.Timeout() {
			return 0, "no answer in 5s"
		}
		return 0, "no answer (connection refused or unreachable)"
	}
	resp.Body.Close()
	return resp.StatusCode, "HTTP " + resp.Status
}

// announceParams are the announce step's.
type announceParams struct {
	Deploy string `json:"deploy"`
	Branch string `json:"branch"`
	ID     string `json:"id"`
	// Old lists the replaced instances, as the launch step's replaces
	// output renders: "i-1, i-2".
	Old string `json:"old"`
}

// announce says where the environment is and until when, then retires the
// environments it replaces.
func (d *deploys) announce(ctx context.Context, s switchboard.StepRun) error {
	var p announceParams
	if !s.Params(&p) {
		return nil
	}
	cloud, _, ok := s.Cloud("")
	if !ok {
		return s.Abort(fmt.Sprintf("The cloud %q is not configured any more.", s.Run().Cloud))
	}
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{p.ID}})
	if err != nil || len(insts) == 0 {
		return s.CloudError(cmpErr(err, p.ID), "look up "+p.ID)
	}
	e := switchboard.EnvironmentOf(insts[0])
	text := fmt.Sprintf("%s is up at %s, until %s.", p.Branch, address(e.Instance), clock(e.Expires, s.Now()))
	if old := strings.Fields(strings.ReplaceAll(p.Old, ",", " ")); len(old) > 0 {
		if _, err := terminateIDs(ctx, cloud, old); err != nil {
			return s.CloudError(err, "terminate the old environment of "+p.Branch)
		}
		s.Audit(switchboard.AuditAction, "terminate "+strings.Join(old, ","), "ok", "replaced by "+p.ID)
		text += fmt.Sprintf(" It replaces %s, which I terminated.", strings.Join(old, ", "))
	}
	s.Say("answer", text)
	return s.Succeed(text)
}

func cmpErr(err error, id string) error {
	if err != nil {
		return err
	}
	return switchboard.Errorf(switchboard.ENOTFOUND, "%s is gone", id)
}

// clock writes a time as the channel reads it: "17:00 UTC", with the date
// when it is not the day of now. now is the step's clock (fix: it was the
// machine's, time.Now, so a run on another clock, like the tests' or a
// replayed run's, wrote every time with a date).
func clock(t, now time.Time) string {
	if t.IsZero() {
		return "its teardown"
	}
	t = t.UTC()
	if y, m, dd := t.Date(); now.UTC().Format("2006-01-02") != fmt.Sprintf("%04d-%02d-%02d", y, m, dd) {
		return t.Format("Jan 2 15:04 UTC")
	}
	return t.Format("15:04 UTC")
}

// deployCloud is the run's cloud for the raw deploy steps, which do not go
// through paramsWithCloud. When the cloud has left the config the run ends
// with a sentence (fix: these steps used the nil provider and panicked).
func deployCloud(s switchboard.StepRun) (switchboard.Provider, bool) {
	cloud, name, ok := s.Cloud("")
	if !ok {
		_ = s.Abort(fmt.Sprintf("The cloud %q is not configured any more; nothing was done.", name))
	}
	return cloud, ok
}

// deployStart begins a deploy step that acts on the live environments:
// it decodes the step's parameters into p (whose Deploy field deploy
// points at) and lists the environments. When ok is false the step has
// been ended (parameters that do not fit, a cloud no longer configured) or
// err says what the cloud did.
func deployStart(ctx context.Context, s switchboard.StepRun, p any, deploy *string) (cloud switchboard.Provider, envs []switchboard.Environment, ok bool, err error) {
	if !s.Params(p) {
		return nil, nil, false, nil
	}
	if cloud, ok = deployCloud(s); !ok {
		return nil, nil, false, nil
	}
	envs, err = environments(ctx, cloud, *deploy)
	if err != nil {
		return nil, nil, false, s.CloudError(err, "list the environments of "+*deploy)
	}
	return cloud, envs, true, nil
}

// list answers /deploy list.
func (d *deploys) list(ctx context.Context, s switchboard.StepRun) error {
	var p deployParams
	_, envs, ok, err := deployStart(ctx, s, &p, &p.Deploy)
	if !ok {
		return err
	}
	if len(envs) == 0 {
		text := fmt.Sprintf("No environments are up. Deploy one with `%s <branch, ticket or PR>`.", p.Deploy)
		s.Say("answer", text)
		return s.Succeed(text)
	}
	now := s.Now()
	lines := []string{fmt.Sprintf("%d environment(s) of %s:", len(envs), p.Deploy)}
	for _, e := range envs {
		lines = append(lines, "• "+envLine(e, now))
	}
	text := strings.Join(lines, "\n")
	s.Say("answer", text)
	return s.Succeed(text)
}

// envLine is one environment for a list: branch, commit, owner, age,
// expiry, address, pin.
func envLine(e switchboard.Environment, now time.Time) string {
	parts := []string{e.Branch}
	if e.Commit != "" {
		parts[0] += " (" + short(e.Commit)
		if e.PR != "" && e.PR != "0" {
			parts[0] += ", PR #" + e.PR
		}
		parts[0] += ")"
	}
	if e.Requester != "" {
		parts = append(parts, "by "+switchboard.Mention(e.Requester))
	}
	if !e.Instance.LaunchTime.IsZero() {
		parts = append(parts, "up "+age(now.Sub(e.Instance.LaunchTime)))
	}
	if e.PinnedAt(now) {
		pin := "pinned until " + clock(e.Pinned, now)
		if e.PinReason != "" {
			pin += " (" + e.PinReason + ")"
		}
		parts = append(parts, pin)
	} else {
		parts = append(parts, "until "+clock(e.Expires, now))
	}
	if e.Instance.State != switchboard.StateRunning {
		parts = append(parts, string(e.Instance.State))
	}
	parts = append(parts, address(e.Instance))
	return strings.Join(parts, " — ")
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// age writes a duration the way people say it: 2h5m, 40m, 30s.
func age(d time.Duration) string {
	if d >= time.Minute {
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	return d.Truncate(time.Second).String()
}

// pick finds the environment a query names, by the branch rules: the query
// is matched against the environments' branches as against a source's.
func pick(envs []switchboard.Environment, query string) (switchboard.Environment, error) {
	var branches []switchboard.Branch
	byName := map[string]switchboard.Environment{}
	for _, e := range envs {
		pr, _ := strconv.Atoi(e.PR)
		branches = append(branches, switchboard.Branch{Name: e.Branch, Commit: e.Commit, PR: pr})
		byName[e.Branch] = e
	}
	b, err := switchboard.PickBranch(query, switchboard.MatchBranches(query, branches))
	if err != nil {
		if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
			return switchboard.Environment{}, switchboard.Errorf(switchboard.ENOTFOUND, "No environment is up for %q. `/deploy list` shows what is.", query)
		}
		return switchboard.Environment{}, err
	}
	return byName[b.Name], nil
}

// terminateParams are the terminate step's.
type terminateParams struct {
	Deploy   string                    `json:"deploy"`
	Query    string                    `json:"query,omitempty"`
	All      bool                      `json:"all,omitempty"`
	Approval *switchboard.ApprovalRule `json:"approval,omitempty"`
}

type terminateProgress struct {
	Phase string `json:"phase"` // "" → approval
}

// terminate ends one environment, or (with all) every unpinned one, after
// the approval the config asks for.
func (d *deploys) terminate(ctx context.Context, s switchboard.StepRun) error {
	var p terminateParams
	if !s.Params(&p) {
		return nil
	}
	cloud, ok := deployCloud(s)
	if !ok {
		return nil
	}
	var pr terminateProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	run := s.Run()
	approvalID := run.ID + "-terminate-all"
	if p.All && p.Approval != nil {
		if pr.Phase == "" {
			if !s.ApprovalsAvailable() {
				return s.Fail("Terminating every environment needs an approval, and approvals are not available here.", false)
			}
			text := fmt.Sprintf("%s wants to terminate every environment of %s. Approve?", switchboard.Mention(run.Request.UserID), p.Deploy)
			if err := s.OpenApproval(ctx, approvalID, text, *p.Approval); err != nil {
				return err
			}
			return s.Stage(terminateProgress{Phase: "approval"})
		}
		ap, ok, err := s.AwaitApproval(ctx, approvalID)
		if err != nil || ap == nil {
			return err
		}
		if !ok {
			return s.Fail(fmt.Sprintf("Not terminating the environments of %s: %s.", p.Deploy, ap.Decided()), false)
		}
	}
	envs, err := environments(ctx, cloud, p.Deploy)
	if err != nil {
		return s.CloudError(err, "list the environments of "+p.Deploy)
	}
	var doomed, kept []switchboard.Environment
	if p.All {
		for _, e := range envs {
			if e.PinnedAt(s.Now()) {
				kept = append(kept, e)
			} else {
				doomed = append(doomed, e)
			}
		}
	} else {
		e, err := pick(envs, p.Query)
		if err != nil {
			return s.Fail(switchboard.ErrorMessage(err), false)
		}
		doomed = []switchboard.Environment{e}
	}
	text, err := terminateEnvs(ctx, s, cloud, doomed, "terminated by "+switchboard.Mention(run.Request.UserID))
	if err != nil {
		return err
	}
	if len(doomed) == 0 {
		text = "No environments to terminate."
	}
	if len(kept) > 0 {
		text += " Kept, pinned: " + branchList(kept) + "."
	}
	s.Say("answer", text)
	return s.Succeed(text)
}

// terminateEnvs terminates environments (gone counts as done) and says
// which, and how long each ran.
func terminateEnvs(ctx context.Context, s switchboard.StepRun, cloud switchboard.Provider, envs []switchboard.Environment, why string) (string, error) {
	if len(envs) == 0 {
		return "", nil
	}
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.Instance.ID
	}
	if id, err := terminateIDs(ctx, cloud, ids); err != nil {
		return "", s.CloudError(err, "terminate "+cmp.Or(id, strings.Join(ids, ", ")))
	}
	now := s.Now()
	parts := make([]string, len(envs))
	for i, e := range envs {
		s.Audit(switchboard.AuditAction, "terminate "+e.Instance.ID, "ok", e.Branch+": "+why)
		parts[i] = e.Branch
		if !e.Instance.LaunchTime.IsZero() {
			parts[i] += " (ran " + age(now.Sub(e.Instance.LaunchTime)) + ")"
		}
	}
	return fmt.Sprintf("Terminated %d environment(s): %s.", len(envs), strings.Join(parts, ", ")), nil
}

// terminateIDs terminates instances; one already gone counts as done. A
// cloud answers a call naming a gone instance with ENOTFOUND for the whole
// call (EC2 does, and so does the simulator), having terminated none of
// the others: they are asked again without the ones it named (fix: the
// ENOTFOUND used to count as done for all of them, leaving the others up
// while reporting them terminated). The fleet layer answers the same case
// with a *switchboard.PartialError, whose ENOTFOUND failures count as done
// too. The error returned is the first that is not a gone instance, with
// the id it concerns when known.
func terminateIDs(ctx context.Context, cloud switchboard.Provider, ids []string) (string, error) {
	for len(ids) > 0 {
		_, err := cloud.TerminateInstances(ctx, ids)
		var partial *switchboard.PartialError
		var ce *switchboard.CloudError
		switch {
		case err == nil:
			return "", nil
		case errors.As(err, &partial):
			for _, id := range slices.Sorted(maps.Keys(partial.Failed)) {
				if ferr := partial.Failed[id]; switchboard.ErrorCode(ferr) != switchboard.ENOTFOUND {
					return id, ferr
				}
			}
			return "", nil
		case switchboard.ErrorCode(err) != switchboard.ENOTFOUND:
			return "", err
		case len(ids) == 1:
			return "", nil
		case errors.As(err, &ce) && slices.ContainsFunc(ce.IDs, func(id string) bool { return slices.Contains(ids, id) }):
			ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(ce.IDs, id) })
		default:
			// Gone, but which one is not said: one at a time.
			for _, id := range ids {
				if _, err := terminateIDs(ctx, cloud, []string{id}); err != nil {
					return id, err
				}
			}
			return "", nil
		}
	}
	return "", nil
}

// pinParams are the pin step's: For (a duration from now) or Until, and
// the ceiling; Unpin removes a pin.
type pinParams struct {
	Deploy string               `json:"deploy"`
	Query  string               `json:"query"`
	For    switchboard.Duration `json:"for,omitempty"`
	Until  time.Time            `json:"until,omitzero"`
	Reason string               `json:"reason,omitempty"`
	Max    switchboard.Duration `json:"max"`
	Unpin  bool                 `json:"unpin,omitempty"`
}

// pin keeps an environment past its expiry and the teardowns, within the
// configured ceiling, or (unpin) lets it go again.
func (d *deploys) pin(ctx context.Context, s switchboard.StepRun) error {
	var p pinParams
	cloud, envs, ok, err := deployStart(ctx, s, &p, &p.Deploy)
	if !ok {
		return err
	}
	e, err := pick(envs, p.Query)
	if err != nil {
		return s.Fail(switchboard.ErrorMessage(err), false)
	}
	now := s.Now()
	tags := map[string]string{}
	var text string
	if p.Unpin {
		text = fmt.Sprintf("%s is no longer pinned; it goes at %s or the next teardown.", e.Branch, clock(e.Expires, now))
	} else {
		until := p.Until
		if until.IsZero() {
			until = now.Add(time.Duration(p.For))
		}
		if ceiling := now.Add(time.Duration(p.Max)); until.After(ceiling) {
			return s.Fail(fmt.Sprintf("A pin lasts at most %s here (until %s); ask for less.", switchboard.Humanize(time.Duration(p.Max)), clock(ceiling, now)), false)
		}
		if !until.After(now) {
			return s.Fail("A pin must end in the future.", false)
		}
		tags[switchboard.TagPinned] = until.UTC().Format(time.RFC3339)
		tags[switchboard.TagPinReason] = p.Reason
		if until.After(e.Expires) {
			tags[switchboard.TagExpires] = until.UTC().Format(time.RFC3339)
		}
		text = fmt.Sprintf("%s is pinned until %s", e.Branch, clock(until, now))
		if p.Reason != "" {
			text += " (" + p.Reason + ")"
		}
		text += "; teardowns leave it alone until then."
	}
	if p.Unpin {
		err = cloud.UntagInstances(ctx, []string{e.Instance.ID}, []string{switchboard.TagPinned, switchboard.TagPinReason})
	} else {
		err = cloud.TagInstances(ctx, []string{e.Instance.ID}, tags)
	}
	if err != nil {
		return s.CloudError(err, "tag "+e.Instance.ID)
	}
	s.Audit(switchboard.AuditAction, map[bool]string{true: "unpin ", false: "pin "}[p.Unpin]+e.Instance.ID, "ok", text)
	s.Say("answer", text)
	return s.Succeed(text)
}

// teardownParams are the scheduled teardown's: Warn before, in the
// channel, then every unpinned environment goes.
type teardownParams struct {
	Deploy string               `json:"deploy"`
	Warn   switchboard.Duration `json:"warn,omitempty"`
}

type teardownProgress struct {
	Phase string    `json:"phase"` // "" → warned
	At    time.Time `json:"at,omitzero"`
}

// teardown is the nightly teardown: a warning first when configured, then
// every unpinned environment is terminated and the channel told which, and
// for how long each ran. It never asks the branch source anything.
func (d *deploys) teardown(ctx context.Context, s switchboard.StepRun) error {
	var p teardownParams
	if !s.Params(&p) {
		return nil
	}
	cloud, ok := deployCloud(s)
	if !ok {
		return nil
	}
	var pr teardownProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	envs, err := environments(ctx, cloud, p.Deploy)
	if err != nil {
		return s.CloudError(err, "list the environments of "+p.Deploy)
	}
	now := s.Now()
	var doomed, kept []switchboard.Environment
	for _, e := range envs {
		if e.PinnedAt(now) {
			kept = append(kept, e)
		} else {
			doomed = append(doomed, e)
		}
	}
	if pr.Phase == "" && p.Warn > 0 {
		pr = teardownProgress{Phase: "warned", At: now.Add(time.Duration(p.Warn))}
		if len(doomed) > 0 {
			s.Say("warning", fmt.Sprintf("In %s I'll tear down %s. Keep one with `%s pin <branch> for 4h`.", switchboard.Humanize(time.Duration(p.Warn)), branchList(doomed), p.Deploy))
		}
		if err := s.Stage(pr); err != nil {
			return err
		}
		s.Wait(time.Duration(p.Warn))
		return nil
	}
	if pr.Phase == "warned" && now.Before(pr.At) {
		s.Wait(pr.At.Sub(now))
		return nil
	}
	text, err := terminateEnvs(ctx, s, cloud, doomed, "nightly teardown")
	if err != nil {
		return err
	}
	if len(doomed) == 0 {
		text = "Nothing to tear down."
	} else {
		text = "Teardown: " + strings.TrimPrefix(text, "Terminated ")
	}
	if len(kept) > 0 {
		text += " Kept, pinned: " + branchList(kept) + "."
	}
	s.Say("answer", text)
	return s.Succeed(text)
}

// sweep terminates every environment of the deploy past its expiry and not
// pinned; an instance without the ownership tag is never touched. It says
// nothing when there is nothing to do.
func (d *deploys) sweep(ctx context.Context, s switchboard.StepRun) error {
	var p deployParams
	cloud, envs, ok, err := deployStart(ctx, s, &p, &p.Deploy)
	if !ok {
		return err
	}
	now := s.Now()
	var expired []switchboard.Environment
	for _, e := range envs {
		if !e.PinnedAt(now) && !e.Expires.IsZero() && !now.Before(e.Expires) {
			expired = append(expired, e)
		}
	}
	if len(expired) == 0 {
		return s.Succeed("Nothing expired.")
	}
	text, err := terminateEnvs(ctx, s, cloud, expired, "expired")
	if err != nil {
		return err
	}
	text = "Expired: " + strings.TrimPrefix(text, "Terminated ")
	s.Say("answer", text)
	return s.Succeed(text)
}
