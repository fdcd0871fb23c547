package aws

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// DNSCleanupStep is the route53_cleanup step type: it deletes the records of
// a dead instance that Switchboard owns from the hosted zones c cleans up,
// one change batch per zone, and reports the records that point at the
// instance but are not Switchboard's (see the owner rules in route53.go).
// What is already gone counts as deleted, so the step is safe to repeat.
//
//	steps:
//	  - id: inst
//	    describe: { instance: '{{ event.instances[0] }}' }
//	  - id: dns
//	    route53_cleanup:
//	      name: '{{ steps.inst.name }}'
//	      ips: ['{{ steps.inst.private_ip }}', '{{ steps.inst.public_ip }}']
//	  - notify: { text: "Removed {{ steps.dns.summary }}" }
//
// Empty addresses are skipped (an instance without a public IP). Outputs:
// deleted, not_owned and absent ("web-7.example.com A"), and summary ("2 DNS
// records"). With dry_run: true it changes nothing and its outputs say what
// it would delete.
func DNSCleanupStep(c *DNS) switchboard.StepType {
	t := switchboard.StepType{
		Kind: "route53_cleanup",
		Params: []switchboard.Param{
			{Name: "name", Hint: "the instance's Name tag, like name: '{{ steps.inst.name }}'"},
			{Name: "ips", Type: switchboard.TypeStrings, Hint: "the instance's IP addresses, like ips: ['{{ steps.inst.private_ip }}', '{{ steps.inst.public_ip }}']"},
			{Name: "hostnames", Type: switchboard.TypeStrings, Hint: "the instance's DNS names, which CNAME records point at"},
			{Name: "dry_run", Type: switchboard.TypeBool},
		},
		Outputs: []switchboard.Output{
			{Name: "deleted", Type: switchboard.TypeStrings},
			{Name: "not_owned", Type: switchboard.TypeStrings},
			{Name: "absent", Type: switchboard.TypeStrings},
			{Name: "summary", Type: switchboard.TypeText},
		},
		CheckFunc: func(params map[string]any) []switchboard.ParamProblem {
			return checkDNSCleanupParams(c, params)
		},
		RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
			return runDNSCleanup(ctx, c, s)
		},
	}
	if c != nil {
		// What a sweep checks for records of instances that are gone.
		t.Holdings = c.Holdings
	}
	return t
}

func checkDNSCleanupParams(c *DNS, params map[string]any) []switchboard.ParamProblem {
	_, name := params["name"]
	_, ips := params["ips"]
	_, hosts := params["hostnames"]
	switch {
	case !name && !ips && !hosts:
		return []switchboard.ParamProblem{{Param: "ips", Msg: "a route53_cleanup step needs the instance's addresses (ips: ['{{ steps.inst.private_ip }}', '{{ steps.inst.public_ip }}'], hostnames) or its name (name: '{{ steps.inst.name }}') to find its records"}}
	case c != nil && c.opts.NamePattern == "" && !ips && !hosts:
		return []switchboard.ParamProblem{{Param: "ips", Msg: "with the owner_txt rule, route53_cleanup finds records by the addresses they point at: give ips (like ['{{ steps.inst.private_ip }}', '{{ steps.inst.public_ip }}']) or hostnames"}}
	}
	return nil
}

// stringList is a TypeStrings parameter as rendered: a list, or one string
// (a template that yielded a list renders its items joined with ", ").
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*l = list
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*l = strings.FieldsFunc(one, func(r rune) bool { return r == ',' || r == ' ' })
	return nil
}

// dnsProgress is what earlier attempts of one step deleted: a retry no
// longer finds those records, and must still report them. The first
// Audited of them have their audit lines already.
type dnsProgress struct {
	Deleted []Record `json:"deleted,omitempty"`
	Audited int      `json:"audited,omitempty"`
}

func runDNSCleanup(ctx context.Context, c *DNS, s switchboard.StepRun) error {
	var p struct {
		Name      string     `json:"name"`
		IPs       stringList `json:"ips"`
		Hostnames stringList `json:"hostnames"`
		DryRun    bool       `json:"dry_run"`
	}
	if !s.Params(&p) {
		return nil
	}
	var pr dnsProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	target := DNSTarget{Name: p.Name, IPs: p.IPs, Hostnames: p.Hostnames}
	what := "clean up the DNS records of " + describeTarget(target)
	res, err := c.CleanupDNS(ctx, target, p.DryRun)
	res = pr.merge(res)
	unaudited := res.Deleted[min(pr.Audited, len(res.Deleted)):]
	if err != nil {
		wait, transient := switchboard.Retryable(err)
		switch {
		case p.DryRun:
		case wait > 0:
			// The run parks: the audit lines of this attempt are
			// committed with the progress staged here.
			auditDNS(s, res.DryRun, unaudited, nil)
			if err := s.Stage(dnsProgress{Deleted: res.Deleted, Audited: len(res.Deleted)}); err != nil {
				return err
			}
		case transient:
			// This attempt's audit lines are dropped with it: keep what
			// it deleted for the attempt that ends to report and audit.
			if len(res.Deleted) > len(pr.Deleted) {
				if err := s.Checkpoint(ctx, dnsProgress{Deleted: res.Deleted, Audited: pr.Audited}); err != nil {
					return err
				}
			}
		default:
			auditDNS(s, res.DryRun, unaudited, res.NotOwned)
		}
		return s.CloudError(err, what)
	}
	auditDNS(s, res.DryRun, unaudited, res.NotOwned)
	return s.Done(map[string]any{
		"deleted": recordNames(res.Deleted), "not_owned": recordNames(res.NotOwned),
		"absent": recordNames(res.Absent), "summary": res.Summary(),
	})
}

// describeTarget names the instance for a failure: its name, else its
// addresses.
func describeTarget(t DNSTarget) string {
	if name := strings.TrimSpace(t.Name); name != "" {
		return name
	}
	var addrs []string
	for _, a := range slices.Concat(t.IPs, t.Hostnames) {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return "the instance"
	}
	return strings.Join(addrs, ", ")
}

// auditDNS records each deletion, and each record left because Switchboard
// does not own it.
func auditDNS(s switchboard.StepRun, dryRun bool, deleted, notOwned []Record) {
	if dryRun {
		return
	}
	for _, r := range deleted {
		s.Audit(switchboard.AuditAction, "route53 delete "+r.String(), "ok", "hosted zone "+r.Zone+": "+strings.Join(r.Values, ", "))
	}
	for _, r := range notOwned {
		s.Audit(switchboard.AuditAction, "route53 leave "+r.String(), "not owned", "hosted zone "+r.Zone+": "+r.Reason)
	}
}

// merge counts what earlier attempts deleted as deleted, not absent.
func (pr dnsProgress) merge(res DNSResult) DNSResult {
	if res.DryRun || len(pr.Deleted) == 0 {
		return res
	}
	same := func(a Record) func(Record) bool {
		return func(b Record) bool {
			return a.Zone == b.Zone && strings.EqualFold(a.Name, b.Name) && a.Type == b.Type && a.SetIdentifier == b.SetIdentifier
		}
	}
	deleted := slices.Clone(pr.Deleted)
	for _, r := range res.Deleted {
		if !slices.ContainsFunc(deleted, same(r)) {
			deleted = append(deleted, r)
		}
	}
	res.Absent = slices.DeleteFunc(slices.Clone(res.Absent), func(r Record) bool { return slices.ContainsFunc(deleted, same(r)) })
	res.Deleted = deleted
	return res
}

func recordNames(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}
