package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/switchboardhq/switchboard"
)

// ECS's limits: a batch call or a DescribeInstances InstanceIds filter names
// at most 100 instances, a page holds at most 100, and a filter at most 20
// tags.
const (
	maxBatch = 100
	maxTags  = 20
)

// ECS instance statuses.
const (
	statusPending  = "Pending"
	statusStarting = "Starting"
	statusRunning  = "Running"
	statusStopping = "Stopping"
	statusStopped  = "Stopped"
)

// State maps an ECS instance status onto the domain's (EC2's) states:
// Pending and Starting are pending, the others keep their names. An unknown
// status is passed on in lower case rather than guessed at.
func State(status string) switchboard.InstanceState {
	switch status {
	case statusPending, statusStarting:
		return switchboard.StatePending
	case statusRunning:
		return switchboard.StateRunning
	case statusStopping:
		return switchboard.StateStopping
	case statusStopped:
		return switchboard.StateStopped
	case "Deleted", "Released":
		return switchboard.StateTerminated
	}
	return switchboard.InstanceState(strings.ToLower(status))
}

// DescribeInstances returns the instances that match f, sorted by id. Naming
// an id that does not exist fails the call with InvalidInstanceId.NotFound
// (ENOTFOUND), as on EC2, although ECS itself just leaves unknown ids out.
// With ids, the tags are matched here; without, ECS filters by tag.
func (p *Provider) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	var found []ecs.Instance
	if len(f.IDs) > 0 {
		ids := unique(f.IDs)
		byID, err := p.lookup(ctx, ids)
		if err != nil {
			return nil, err
		}
		if missing := missingIDs(ids, byID); len(missing) > 0 {
			return nil, notFound(missing)
		}
		for _, in := range byID {
			found = append(found, in)
		}
	} else {
		var err error
		if found, err = p.describe(ctx, "", f.Tags); err != nil {
			return nil, err
		}
	}
	out := make([]switchboard.Instance, 0, len(found))
	for _, in := range found {
		v := view(in)
		if switchboard.HasTags(v.Tags, f.Tags) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b switchboard.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// lookup describes ids (any number, in calls of 100) and returns what ECS
// knows of them by id; unknown ids are simply absent.
func (p *Provider) lookup(ctx context.Context, ids []string) (map[string]ecs.Instance, error) {
	out := make(map[string]ecs.Instance, len(ids))
	for chunk := range slices.Chunk(ids, maxBatch) {
		b, err := json.Marshal(chunk)
		if err != nil {
			return nil, fmt.Errorf("alibaba DescribeInstances: %w", err)
		}
		found, err := p.describe(ctx, string(b), nil)
		if err != nil {
			return nil, err
		}
		for _, in := range found {
			out[in.InstanceId] = in
		}
	}
	return out, nil
}

// describe pages through DescribeInstances with NextToken, the way ECS
// recommends for large fleets. instanceIDs is a JSON array or "".
func (p *Provider) describe(ctx context.Context, instanceIDs string, tags map[string]string) ([]ecs.Instance, error) {
	const action = "DescribeInstances"
	var filter []ecs.DescribeInstancesTag
	for _, k := range sortedKeys(tags) {
		if len(filter) == maxTags {
			break // the rest are matched here, after the answer
		}
		filter = append(filter, ecs.DescribeInstancesTag{Key: k, Value: tags[k]})
	}
	var out []ecs.Instance
	token := ""
	for {
		c, err := p.client(ctx)
		if err != nil {
			return nil, err
		}
		req := ecs.CreateDescribeInstancesRequest()
		req.InstanceIds = instanceIDs
		if len(filter) > 0 {
			req.Tag = &filter
		}
		req.MaxResults = requests.NewInteger(maxBatch)
		req.NextToken = token
		resp := ecs.CreateDescribeInstancesResponse()
		if err := c.DoAction(req, resp); err != nil {
			return nil, p.failure(ctx, action, err, nil)
		}
		out = append(out, resp.Instances.Instance...)
		if resp.NextToken == "" || resp.NextToken == token || len(resp.Instances.Instance) == 0 {
			return out, nil
		}
		token = resp.NextToken
	}
}

// view is an ECS instance in the domain's terms. The name is ECS's
// InstanceName, or the Name tag when the instance has no name; the public
// address is the bound Elastic IP, or else the instance's own public IP.
func view(in ecs.Instance) switchboard.Instance {
	out := switchboard.Instance{
		ID:    in.InstanceId,
		Name:  in.InstanceName,
		State: State(in.Status),
		Type:  in.InstanceType,
	}
	for _, t := range in.Tags.Tag {
		k, v := t.TagKey, t.TagValue
		if k == "" {
			k, v = t.Key, t.Value
		}
		if k == "" {
			continue
		}
		if out.Tags == nil {
			out.Tags = make(map[string]string)
		}
		out.Tags[k] = v
	}
	if out.Name == "" {
		out.Name = out.Tags["Name"]
	}
	out.PublicIP = in.EipAddress.IpAddress
	if out.PublicIP == "" && len(in.PublicIpAddress.IpAddress) > 0 {
		out.PublicIP = in.PublicIpAddress.IpAddress[0]
	}
	if ips := in.VpcAttributes.PrivateIpAddress.IpAddress; len(ips) > 0 {
		out.PrivateIP = ips[0]
	} else if ips := in.InnerIpAddress.IpAddress; len(ips) > 0 {
		out.PrivateIP = ips[0]
	}
	out.LaunchTime = parseTime(in.StartTime)
	if out.LaunchTime.IsZero() {
		out.LaunchTime = parseTime(in.CreationTime)
	}
	return out
}

// parseTime reads ECS's times: ISO 8601 in UTC, usually to the minute
// (2017-12-10T04:04Z).
func parseTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04Z", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// StartInstances starts stopped instances. Instances already running or on
// their way up are reported unchanged and not sent to ECS, which would refuse
// them. The rest go to ECS's StartInstances in SuccessFirst mode: when some
// start and others cannot, the result lists the ones that did and the error
// is a *switchboard.PartialError naming the others.
func (p *Provider) StartInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	return p.transition(ctx, "StartInstances", ids,
		func(status string) bool {
			return status == statusRunning || status == statusStarting || status == statusPending
		},
		switchboard.StatePending,
		func(c *ecs.Client, chunk []string) ([]ecs.InstanceResponse, error) {
			req := ecs.CreateStartInstancesRequest()
			req.InstanceId = &chunk
			req.BatchOptimization = "SuccessFirst"
			resp := ecs.CreateStartInstancesResponse()
			err := c.DoAction(req, resp)
			return resp.InstanceResponses.InstanceResponse, err
		})
}

// StopInstances stops running instances; stopped and stopping ones are
// reported unchanged. opts.Force is ECS's ForceStop. Instances are stopped in
// ECS's standard mode (StoppedMode=KeepCharging), which keeps their public IP
// and instance type reserved so that a start always works; the economical
// mode would release both. ECS's batch stop cannot hibernate, so
// opts.Hibernate is refused.
func (p *Provider) StopInstances(ctx context.Context, ids []string, opts switchboard.StopOptions) ([]switchboard.StateChange, error) {
	if opts.Hibernate {
		return nil, switchboard.Errorf(switchboard.EINVALID, "Alibaba Cloud ECS cannot hibernate instances in a batch stop; stop them without hibernation.")
	}
	return p.transition(ctx, "StopInstances", ids,
		func(status string) bool { return status == statusStopped || status == statusStopping },
		switchboard.StateStopping,
		func(c *ecs.Client, chunk []string) ([]ecs.InstanceResponse, error) {
			req := ecs.CreateStopInstancesRequest()
			req.InstanceId = &chunk
			req.BatchOptimization = "SuccessFirst"
			req.ForceStop = requests.NewBoolean(opts.Force)
			req.StoppedMode = "KeepCharging"
			resp := ecs.CreateStopInstancesResponse()
			err := c.DoAction(req, resp)
			return resp.InstanceResponses.InstanceResponse, err
		})
}

// RebootInstances reboots running instances (ECS's RebootInstances,
// SuccessFirst, not forced). An instance that is not running fails alone.
func (p *Provider) RebootInstances(ctx context.Context, ids []string) error {
	ids = unique(ids)
	if len(ids) == 0 {
		return errNoIDs()
	}
	var acted []switchboard.StateChange
	failed := make(map[string]error)
	for chunk := range slices.Chunk(ids, maxBatch) {
		responses, err := p.batch(ctx, "RebootInstances", chunk, func(c *ecs.Client, chunk []string) ([]ecs.InstanceResponse, error) {
			req := ecs.CreateRebootInstancesRequest()
			req.InstanceId = &chunk
			req.BatchOptimization = "SuccessFirst"
			resp := ecs.CreateRebootInstancesResponse()
			err := c.DoAction(req, resp)
			return resp.InstanceResponses.InstanceResponse, err
		})
		acted = collect(chunk, responses, err, nil, switchboard.StateRunning, acted, failed)
	}
	_, err := outcome(ids, nil, acted, failed)
	return err
}

// TerminateInstances deletes instances with ECS's DeleteInstances. ECS
// deletes only stopped instances unless told to force, which cuts the power
// of a running one; the safe default leaves running (and starting or
// stopping) instances alone, failing each with ECONFLICT and a sentence that
// asks for a stop first. Options.ForceDelete sends them with Force=true
// instead. A deleted instance leaves DescribeInstances at once, so it is
// reported as terminated; a later call naming it finds nothing (ENOTFOUND).
func (p *Provider) TerminateInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	const action = "DeleteInstances"
	ids = unique(ids)
	if len(ids) == 0 {
		return nil, errNoIDs()
	}
	statuses, err := p.statuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	var stopped, running []string
	failed := make(map[string]error)
	for _, id := range ids {
		switch status := statuses[id]; {
		case status == statusStopped:
			stopped = append(stopped, id)
		case p.forceDelete:
			running = append(running, id)
		default:
			failed[id] = switchboard.Errorf(switchboard.ECONFLICT,
				"%s is %s; Alibaba Cloud ECS deletes only stopped instances. Stop it first (or set force_delete on the cloud to release running instances).",
				id, strings.ToLower(status))
		}
	}
	var acted []switchboard.StateChange
	for _, group := range []struct {
		ids   []string
		force bool
	}{{stopped, false}, {running, true}} {
		for chunk := range slices.Chunk(group.ids, maxBatch) {
			c, err := p.client(ctx)
			if err == nil {
				req := ecs.CreateDeleteInstancesRequest()
				req.InstanceId = &chunk
				req.Force = requests.NewBoolean(group.force)
				err = p.failure(ctx, action, c.DoAction(req, ecs.CreateDeleteInstancesResponse()), chunk)
			}
			for _, id := range chunk {
				if err != nil {
					failed[id] = err
					continue
				}
				acted = append(acted, switchboard.StateChange{ID: id, Previous: State(statuses[id]), Current: switchboard.StateTerminated})
			}
		}
	}
	return outcome(ids, nil, acted, failed)
}

// transition is the shape of StartInstances and StopInstances: look the
// instances up (an unknown id fails the whole call), report those already
// where the call would take them (done), and send the rest to call in chunks
// of 100. next is the state reported when ECS's answer does not say.
func (p *Provider) transition(ctx context.Context, action string, ids []string, done func(status string) bool,
	next switchboard.InstanceState, call func(*ecs.Client, []string) ([]ecs.InstanceResponse, error)) ([]switchboard.StateChange, error) {
	ids = unique(ids)
	if len(ids) == 0 {
		return nil, errNoIDs()
	}
	statuses, err := p.statuses(ctx, ids)
	if err != nil {
		return nil, err
	}
	var noops, acted []switchboard.StateChange
	var send []string
	for _, id := range ids {
		if done(statuses[id]) {
			s := State(statuses[id])
			noops = append(noops, switchboard.StateChange{ID: id, Previous: s, Current: s})
			continue
		}
		send = append(send, id)
	}
	failed := make(map[string]error)
	for chunk := range slices.Chunk(send, maxBatch) {
		responses, err := p.batch(ctx, action, chunk, call)
		acted = collect(chunk, responses, err, statuses, next, acted, failed)
	}
	return outcome(ids, noops, acted, failed)
}

// batch makes one batch call and maps a failure of the whole call.
func (p *Provider) batch(ctx context.Context, action string, chunk []string,
	call func(*ecs.Client, []string) ([]ecs.InstanceResponse, error)) ([]ecs.InstanceResponse, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	responses, err := call(c, chunk)
	if err != nil {
		return nil, p.failure(ctx, action, err, chunk)
	}
	return responses, nil
}

// collect adds one chunk's outcome to changes and failed: the whole chunk
// failed with err, or each instance has its own result (Code "200" for
// success).
func collect(chunk []string, responses []ecs.InstanceResponse, err error, statuses map[string]string,
	next switchboard.InstanceState, changes []switchboard.StateChange, failed map[string]error) []switchboard.StateChange {
	if err != nil {
		for _, id := range chunk {
			failed[id] = err
		}
		return changes
	}
	byID := make(map[string]ecs.InstanceResponse, len(responses))
	for _, r := range responses {
		byID[r.InstanceId] = r
	}
	for _, id := range chunk {
		r, ok := byID[id]
		if ok && r.Code != "" && r.Code != "200" {
			failed[id] = instanceError(id, r.Code, r.Message)
			continue
		}
		change := switchboard.StateChange{ID: id, Previous: State(statuses[id]), Current: next}
		if r.PreviousStatus != "" {
			change.Previous = State(r.PreviousStatus)
		}
		if r.CurrentStatus != "" {
			change.Current = State(r.CurrentStatus)
		}
		changes = append(changes, change)
	}
	return changes
}

// outcome is what a batch of calls returns: the changes (noops, which
// needed no call, and acted, which ECS made) in the order the ids were asked
// for and, when some instances failed, a PartialError. When ECS changed
// nothing, a failure of the call itself that is worth a retry (throttling,
// an outage, a cancelled context) is returned as it is, so the retry logic
// above retries the whole call rather than reporting the instances as
// failed; and so is the failure of the only instance asked for, or one error
// that failed every instance.
func outcome(ids []string, noops, acted []switchboard.StateChange, failed map[string]error) ([]switchboard.StateChange, error) {
	order := make(map[string]int, len(ids))
	for i, id := range ids {
		order[id] = i
	}
	changes := append(slices.Clone(noops), acted...)
	slices.SortFunc(changes, func(a, b switchboard.StateChange) int { return order[a.ID] - order[b.ID] })
	if len(failed) == 0 {
		return changes, nil
	}
	if len(acted) == 0 {
		var first error
		same := len(noops) == 0
		for _, id := range ids {
			err, ok := failed[id]
			if !ok {
				continue
			}
			if transient(err) {
				return nil, err
			}
			if first == nil {
				first = err
			} else if err != first {
				same = false
			}
		}
		if same {
			return nil, first
		}
	}
	return changes, &switchboard.PartialError{Failed: failed}
}

// transient reports whether err is about the call rather than an instance
// and worth a retry.
func transient(err error) bool {
	var ce *switchboard.CloudError
	var se *switchboard.Error
	if !errors.As(err, &ce) && !errors.As(err, &se) {
		return true // a cancelled context, an SDK failure
	}
	switch switchboard.ErrorCode(err) {
	case switchboard.ETHROTTLED, switchboard.EUNAVAILABLE:
		return true
	}
	return false
}

// statuses describes ids and returns each one's ECS status, failing the
// call as a whole when any is unknown.
func (p *Provider) statuses(ctx context.Context, ids []string) (map[string]string, error) {
	byID, err := p.lookup(ctx, ids)
	if err != nil {
		return nil, err
	}
	if missing := missingIDs(ids, byID); len(missing) > 0 {
		return nil, notFound(missing)
	}
	out := make(map[string]string, len(byID))
	for id, in := range byID {
		out[id] = in.Status
	}
	return out, nil
}

// DryRun asks ECS whether action (start, stop, reboot, terminate) on ids
// would be allowed, with the real call's DryRun flag and the AllTogether
// mode (a SuccessFirst dry run answers success whatever it finds). ECS
// checks permissions, the ids and the instances' states: nil means allowed,
// EFORBIDDEN that the credentials may not, ECONFLICT that an instance is in
// the wrong state.
func (p *Provider) DryRun(ctx context.Context, action string, ids []string) error {
	ids = unique(ids)
	if len(ids) == 0 {
		return errNoIDs()
	}
	var name string
	var build func(chunk []string) (requests.AcsRequest, responses.AcsResponse)
	switch action {
	case switchboard.ActionStart:
		name = "StartInstances"
		build = func(chunk []string) (requests.AcsRequest, responses.AcsResponse) {
			req := ecs.CreateStartInstancesRequest()
			req.InstanceId, req.DryRun, req.BatchOptimization = &chunk, requests.NewBoolean(true), "AllTogether"
			return req, ecs.CreateStartInstancesResponse()
		}
	case switchboard.ActionStop:
		name = "StopInstances"
		build = func(chunk []string) (requests.AcsRequest, responses.AcsResponse) {
			req := ecs.CreateStopInstancesRequest()
			req.InstanceId, req.DryRun, req.BatchOptimization = &chunk, requests.NewBoolean(true), "AllTogether"
			req.StoppedMode = "KeepCharging"
			return req, ecs.CreateStopInstancesResponse()
		}
	case switchboard.ActionReboot:
		name = "RebootInstances"
		build = func(chunk []string) (requests.AcsRequest, responses.AcsResponse) {
			req := ecs.CreateRebootInstancesRequest()
			req.InstanceId, req.DryRun, req.BatchOptimization = &chunk, requests.NewBoolean(true), "AllTogether"
			return req, ecs.CreateRebootInstancesResponse()
		}
	case actionTerminate:
		name = "DeleteInstances"
		build = func(chunk []string) (requests.AcsRequest, responses.AcsResponse) {
			req := ecs.CreateDeleteInstancesRequest()
			req.InstanceId, req.DryRun = &chunk, requests.NewBoolean(true)
			req.Force = requests.NewBoolean(p.forceDelete)
			return req, ecs.CreateDeleteInstancesResponse()
		}
	default:
		return switchboard.Errorf(switchboard.EINVALID, "A dry run covers start, stop, reboot and terminate, not %q.", action)
	}
	for chunk := range slices.Chunk(ids, maxBatch) {
		c, err := p.client(ctx)
		if err != nil {
			return err
		}
		req, resp := build(chunk)
		if err := c.DoAction(req, resp); err != nil && !isDryRunPass(err) {
			return p.failure(ctx, name, err, chunk)
		}
	}
	return nil
}

// actionTerminate is the domain's name for a terminate in DryRun.
const actionTerminate = "terminate"

func errNoIDs() error {
	return switchboard.Errorf(switchboard.EINVALID, "Name at least one instance (an id like i-bp1...).")
}

func notFound(ids []string) *switchboard.CloudError {
	msg := fmt.Sprintf("The specified InstanceId does not exist: %s.", strings.Join(ids, ", "))
	return &switchboard.CloudError{Code: "InvalidInstanceId.NotFound", Message: msg, Kind: switchboard.ENOTFOUND, IDs: ids}
}

func missingIDs(ids []string, found map[string]ecs.Instance) []string {
	var missing []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			missing = append(missing, id)
		}
	}
	return missing
}

func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
