package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// SweepDeparted is the sweep for terminations nobody was told of (an event
// lost while Switchboard was down, a queue misconfigured for a while). It
// finds instances that are gone from two sides: the inventory (every
// instance Switchboard saw whose end no cleanup has looked at), and every
// integration that declares what it holds (Route53 records Switchboard
// owns, Chef nodes, Consul nodes: StepType.Holdings), whose entries name an
// instance by id, or by a name or an address another entry or the cloud
// ties to one. It asks the cloud about each (terminated, or an id the
// cloud does not know, is gone), and hands each gone instance to the named
// workflow, as if its "terminated" notification had come in, after
// remembering what the integrations knew of it (its name and addresses),
// so that the workflow's recall finds its records and nodes even when
// Switchboard never saw it. Run it on a schedule on the leader:
//
//	sweep:
//	  trigger: { schedule: { cron: "0 * * * *" } }
//	  channel: C0OPS
//	  steps:
//	    - sweep_departed: { workflow: decommission, approve_over: 20, approvers: [group:ops] }
//
// With approve_over, a sweep that would hand over instances holding more
// than that many entries in all asks approvers first, listing them.
var SweepDeparted = switchboard.StepType{
	Kind:    "sweep_departed",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "workflow", Required: true, Hint: "the cleanup workflow to hand each departed instance to, like workflow: decommission"},
		{Name: "limit", Type: switchboard.TypeInt, Min: 1},
		{Name: "approve_over", Type: switchboard.TypeInt, Min: 0},
		{Name: "approvers", Type: switchboard.TypeUsers},
		{Name: "timeout", Type: switchboard.TypeDuration},
		cloudParam,
	},
	Outputs: []switchboard.Output{{Name: "instances", Type: switchboard.TypeStrings}, {Name: "items", Type: switchboard.TypeStrings}},
	CheckFunc: func(params map[string]any) []switchboard.ParamProblem {
		_, over := params["approve_over"]
		_, who := params["approvers"]
		switch {
		case over && !who:
			return problem("approvers", "a sweep with approve_over needs approvers, who decide when it would remove more, like approvers: [group:ops]")
		case who && !over:
			return problem("approve_over", "approvers are asked only past approve_over, the number of items a sweep may remove without asking, like approve_over: 20")
		}
		return nil
	},
	RunFunc: runSweep,
}

type sweepParams struct {
	Workflow    string               `json:"workflow"`
	Limit       int                  `json:"limit"`
	ApproveOver *int                 `json:"approve_over"`
	Approvers   []string             `json:"approvers"`
	Timeout     switchboard.Duration `json:"timeout"`
	Cloud       string               `json:"cloud"`
}

// sweepProgress is kept while the sweep waits for approval.
type sweepProgress struct {
	Phase string `json:"phase,omitempty"` // "" → waiting
}

// departed is an instance the sweep looks at: what is known of it and the
// entries the integrations hold for it.
type departed struct {
	in switchboard.Instance
	// inventory is set for an instance the inventory lists as unsettled.
	inventory bool
	holdings  []switchboard.Holding
	gone      bool
}

func runSweep(ctx context.Context, s switchboard.StepRun) error {
	var p sweepParams
	cloud, name, ok := paramsWithCloud(s, &p, &p.Cloud)
	if !ok {
		return nil
	}
	var pr sweepProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	approvalID := fmt.Sprintf("%s-%d", s.Run().ID, s.Run().Cursor)
	approved := false
	if pr.Phase == "waiting" {
		ap, yes, err := s.AwaitApproval(ctx, approvalID)
		if err != nil || ap == nil {
			return err
		}
		if !yes {
			return s.Fail("Not cleaning up after the instances the sweep found: "+ap.DecisionText()+".", false)
		}
		approved = true
	}

	known, err := s.Unsettled(ctx, name)
	if err != nil {
		return err
	}
	holdings, holdErr := s.Holdings(ctx)
	if holdErr != nil && pr.Phase == "" {
		s.Say("holdings", "The sweep could not ask every system what it holds, and went by the others: "+errorsText(holdErr))
	}
	byID := map[string]*departed{}
	var ids []string
	add := func(id string) *departed {
		d := byID[id]
		if d == nil {
			d = &departed{in: switchboard.Instance{ID: id}}
			byID[id] = d
			ids = append(ids, id)
		}
		return d
	}
	for _, in := range known {
		d := add(in.ID)
		d.in, d.inventory = in, true
	}
	var loose []switchboard.Holding // entries that name no instance id
	for _, h := range holdings {
		if h.Instance == "" {
			loose = append(loose, h)
			continue
		}
		if byID[h.Instance] == nil {
			// An instance some cleanup already looked at is not handed
			// over again.
			if _, seen, err := s.Recall(ctx, name, h.Instance); err != nil {
				return err
			} else if seen {
				continue
			}
		}
		d := add(h.Instance)
		d.holdings = append(d.holdings, h)
	}
	if len(ids) == 0 {
		return s.Done(map[string]any{"instances": []string{}, "items": []string{}})
	}
	slices.Sort(ids)

	now, err := describeDeparted(ctx, s, cloud, byID, ids)
	if err != nil || now == nil {
		return err
	}
	anyGone := false
	for _, id := range ids {
		d := byID[id]
		if in, ok := now[id]; ok {
			d.in = completed(d.in, in)
			d.gone = d.gone || in.State == switchboard.StateTerminated || in.State == switchboard.StateShuttingDown
		}
		anyGone = anyGone || d.gone
	}
	// An address is reused once its instance is gone: what an entry says
	// of a gone instance, and an entry without an id, count only where no
	// live instance has the address now.
	live := map[string]bool{}
	if anyGone && len(holdings) > 0 {
		all, err := cloud.DescribeInstances(ctx, switchboard.Filter{})
		if err != nil {
			return s.CloudError(err, "describe the instances of the cloud")
		}
		for _, in := range all {
			if in.State == switchboard.StateTerminated || in.State == switchboard.StateShuttingDown {
				continue
			}
			for _, a := range []string{in.PrivateIP, in.PublicIP, strings.ToLower(in.PrivateDNS)} {
				if a != "" {
					live[a] = true
				}
			}
		}
	}
	for _, id := range ids {
		if d := byID[id]; d.gone {
			d.in = withHoldings(d.in, d.holdings, live)
			d.in.State = switchboard.StateTerminated
		}
	}
	// Entries without an id belong to the instance whose name or
	// addresses they carry; to none while that instance is alive.
	for _, h := range loose {
		if slices.ContainsFunc(h.Addresses, func(a string) bool { return live[strings.ToLower(strings.TrimSuffix(a, "."))] }) {
			continue
		}
		var owner *departed
		for _, id := range ids {
			if d := byID[id]; holds(d.in, h) {
				if !d.gone {
					owner = nil
					break
				}
				if owner == nil {
					owner = d
				}
			}
		}
		if owner != nil {
			owner.holdings = append(owner.holdings, h)
		}
	}

	var gone []*departed
	for _, id := range ids {
		if d := byID[id]; d.gone {
			if p.Limit > 0 && len(gone) == p.Limit {
				break
			}
			gone = append(gone, d)
		}
	}
	var items []string
	for _, d := range gone {
		for _, h := range d.holdings {
			items = append(items, h.System+" "+h.Item)
		}
	}
	if len(gone) == 0 {
		return s.Done(map[string]any{"instances": []string{}, "items": []string{}})
	}
	if p.ApproveOver != nil && len(items) > *p.ApproveOver && !approved {
		if !s.ApprovalsAvailable() {
			return s.Fail("The sweep would remove more than "+fmt.Sprint(*p.ApproveOver)+" items, and approvals are not available in this setup.", false)
		}
		text := fmt.Sprintf("The sweep found %s that ended unnoticed; cleaning up after them would remove %d items, more than %d:\n%s\nGo ahead?",
			countInstances(gone), len(items), *p.ApproveOver, bySystem(gone, "\n", "• "))
		rule := switchboard.ApprovalRule{Approvers: p.Approvers, Timeout: time.Duration(p.Timeout)}
		if err := s.OpenApproval(ctx, approvalID, text, rule); err != nil {
			return err
		}
		return s.Stage(sweepProgress{Phase: "waiting"})
	}

	var handed, labels []string
	for _, d := range gone {
		if !d.inventory || len(d.holdings) > 0 {
			// What the integrations knew of it, for the workflow's
			// recall.
			s.Remember(name, []switchboard.Instance{d.in})
		}
		data, _ := json.Marshal(map[string]any{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
			"detail": map[string]string{"instance-id": d.in.ID, "state": "terminated"}})
		started, err := s.Emit(ctx, switchboard.Event{Source: "aws", Kind: "EC2 Instance State-change Notification", Workflow: p.Workflow,
			DeliveryID: "sweep/" + name + "/" + d.in.ID, Subject: d.in.ID + " ended unnoticed", Data: data, Trigger: "sweep"})
		if err != nil {
			return err
		}
		if len(started) == 0 {
			return s.Fail(fmt.Sprintf("There is no workflow %q to hand departed instances to.", p.Workflow), false)
		}
		if err := s.Settle(ctx, name, d.in.ID); err != nil {
			return err
		}
		s.Audit(switchboard.AuditAction, "sweep "+d.in.ID, "ok", "handed to "+p.Workflow)
		handed = append(handed, d.in.ID)
		labels = append(labels, d.in.Label())
	}
	text := fmt.Sprintf("Found %d instance(s) that ended unnoticed: %s; %s is cleaning up after each.", len(handed), strings.Join(labels, ", "), p.Workflow)
	if len(items) > 0 {
		text += "\nLeft behind: " + bySystem(gone, "; ", "") + "."
	}
	s.Say("swept", text)
	return s.Done(map[string]any{"instances": handed, "items": nonNilStrings(items)})
}

// describeDeparted asks the cloud about the instances, marking those it
// does not know as gone. Ids it calls malformed (another cloud's, a typo in
// a node attribute) are left alone unless the inventory listed them. It
// returns nil, nil when the step has been failed.
func describeDeparted(ctx context.Context, s switchboard.StepRun, cloud switchboard.Provider, byID map[string]*departed, ids []string) (map[string]switchboard.Instance, error) {
	notFound := func(id string, err error) (bool, error) {
		switch code := switchboard.ErrorCode(err); {
		case code == switchboard.ENOTFOUND:
			byID[id].gone = true
			return true, nil
		case code == switchboard.EINVALID && !byID[id].inventory:
			return true, nil
		}
		return false, s.CloudError(err, "describe "+id)
	}
	now := map[string]switchboard.Instance{}
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
	var partial *switchboard.PartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		for id, ferr := range partial.Failed {
			if ok, err := notFound(id, ferr); !ok {
				return nil, err
			}
		}
	case switchboard.ErrorCode(err) == switchboard.ENOTFOUND || switchboard.ErrorCode(err) == switchboard.EINVALID:
		// A cloud without the fleet layer fails the whole describe for
		// one unknown id: ask one at a time.
		insts = nil
		for _, id := range ids {
			one, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id}})
			if err != nil {
				if ok, err := notFound(id, err); !ok {
					return nil, err
				}
				continue
			}
			insts = append(insts, one...)
		}
	default:
		return nil, s.CloudError(err, "describe the instances Switchboard knows")
	}
	for _, in := range insts {
		now[in.ID] = in
	}
	return now, nil
}

// completed is what is known of an instance after the cloud showed it as
// now: what the cloud says wins, but its empty fields do not erase what
// was known.
func completed(known, now switchboard.Instance) switchboard.Instance {
	for _, f := range []struct {
		to   *string
		from string
	}{{&known.Name, now.Name}, {&known.PublicIP, now.PublicIP}, {&known.PrivateIP, now.PrivateIP}, {&known.PrivateDNS, now.PrivateDNS}, {&known.Type, now.Type}} {
		if f.from != "" {
			*f.to = f.from
		}
	}
	if len(now.Tags) > 0 {
		known.Tags = now.Tags
	}
	known.State = now.State
	return known
}

// withHoldings fills what is not known of an instance from the entries
// that name it by id: its name, its private and public address, its
// private DNS name; not an address a live instance has now.
func withHoldings(in switchboard.Instance, hs []switchboard.Holding, live map[string]bool) switchboard.Instance {
	for _, h := range hs {
		if in.Name == "" {
			in.Name = h.Name
		}
		for _, a := range h.Addresses {
			if live[strings.ToLower(strings.TrimSuffix(a, "."))] {
				continue
			}
			ip, err := netip.ParseAddr(a)
			switch {
			case err == nil && ip.IsPrivate():
				if in.PrivateIP == "" {
					in.PrivateIP = a
				}
			case err == nil:
				if in.PublicIP == "" {
					in.PublicIP = a
				}
			case strings.HasSuffix(strings.TrimSuffix(a, "."), ".internal") && in.PrivateDNS == "":
				in.PrivateDNS = strings.TrimSuffix(a, ".")
			}
		}
	}
	return in
}

// holds reports whether an entry without an id is the instance's: it
// carries its name or points at one of its addresses.
func holds(in switchboard.Instance, h switchboard.Holding) bool {
	if h.Name != "" && strings.EqualFold(h.Name, in.Name) {
		return true
	}
	for _, a := range h.Addresses {
		a = strings.TrimSuffix(a, ".")
		if a != "" && (a == in.PrivateIP || a == in.PublicIP || strings.EqualFold(a, in.PrivateDNS)) {
			return true
		}
	}
	return false
}

// bySystem lists the entries of the instances by system, in the order the
// systems first appear: "Route53: a, b; Chef: node web-7".
func bySystem(ds []*departed, sep, bullet string) string {
	var systems []string
	items := map[string][]string{}
	for _, d := range ds {
		for _, h := range d.holdings {
			if _, ok := items[h.System]; !ok {
				systems = append(systems, h.System)
			}
			items[h.System] = append(items[h.System], h.Item)
		}
	}
	parts := make([]string, len(systems))
	for i, sys := range systems {
		parts[i] = bullet + sys + ": " + strings.Join(items[sys], ", ")
	}
	return strings.Join(parts, sep)
}

func countInstances(ds []*departed) string {
	if len(ds) == 1 {
		return "1 instance (" + ds[0].in.Label() + ")"
	}
	labels := make([]string, len(ds))
	for i, d := range ds {
		labels[i] = d.in.Label()
	}
	return fmt.Sprintf("%d instances (%s)", len(ds), strings.Join(labels, ", "))
}

// errorsText is what each of the joined errors says, one sentence each.
func errorsText(err error) string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	texts := make([]string, len(errs))
	for i, e := range errs {
		texts[i] = sentence(switchboard.ErrorMessage(e))
	}
	return strings.Join(texts, " ")
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
