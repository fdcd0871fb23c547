package aws

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// decoded is a policy as IAM reads it.
type decoded struct {
	Version   string
	Statement []statementOf
}

// statementOf is one statement of a decoded policy.
type statementOf struct {
	Sid       string
	Effect    string
	Action    []string
	Resource  any
	Condition map[string]map[string][]string
}

func decodePolicy(t *testing.T, in PolicyInput) decoded {
	t.Helper()
	out, err := Policy(in)
	if err != nil {
		t.Fatalf("Policy(%+v): %v", in, err)
	}
	var p decoded
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("Policy is not JSON: %v\n%s", err, out)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("Version %q, want 2012-10-17", p.Version)
	}
	for _, s := range p.Statement {
		if s.Effect != "Allow" || s.Sid == "" || strings.ContainsFunc(s.Sid, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) {
			t.Errorf("statement %+v: want Allow and an alphanumeric Sid", s)
		}
	}
	return p
}

// actions lists every action the policy allows, sorted.
func (p decoded) actions() []string {
	var all []string
	for _, s := range p.Statement {
		all = append(all, s.Action...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func TestPolicyActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   PolicyInput
		want []string
	}{
		{"status only describes", PolicyInput{Actions: []string{"status", "list"}},
			[]string{"ec2:DescribeInstances"}},
		{"start and stop", PolicyInput{Actions: []string{"status", "start", "stop"}},
			[]string{"ec2:DescribeInstances", "ec2:StartInstances", "ec2:StopInstances"}},
		{"start with elastic IPs", PolicyInput{Actions: []string{"start"}, ElasticIPs: true},
			[]string{"ec2:AssociateAddress", "ec2:DescribeAddresses", "ec2:DescribeInstances", "ec2:StartInstances"}},
		{"elastic IPs without start associate nothing", PolicyInput{Actions: []string{"stop"}, ElasticIPs: true},
			[]string{"ec2:DescribeInstances", "ec2:StopInstances"}},
		{"reboot", PolicyInput{Actions: []string{"reboot"}},
			[]string{"ec2:DescribeInstances", "ec2:RebootInstances"}},
		{"deploys", PolicyInput{Actions: []string{"run", "terminate"}},
			[]string{"ec2:CreateTags", "ec2:DescribeInstances", "ec2:RunInstances", "ec2:TerminateInstances"}},
		{"deploys keeping state in tags", PolicyInput{Actions: []string{"run", "terminate"}, Tags: true},
			[]string{"ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeInstances", "ec2:RunInstances", "ec2:TerminateInstances"}},
		{"tags without a launch", PolicyInput{Actions: []string{"status"}, Tags: true},
			[]string{"ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeInstances"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := decodePolicy(t, tt.in).actions(); !slices.Equal(got, tt.want) {
				t.Errorf("actions %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyUnknownAction(t *testing.T) {
	t.Parallel()
	_, err := Policy(PolicyInput{Actions: []string{"start", "resize"}})
	if err == nil || !strings.Contains(err.Error(), `"resize"`) || !strings.Contains(err.Error(), "reboot") {
		t.Errorf("Policy with an unknown action = %v, want an error naming it and the known ones", err)
	}
}

func TestPolicyScope(t *testing.T) {
	t.Parallel()
	p := decodePolicy(t, PolicyInput{
		Actions:      []string{"start", "stop", "run"},
		ElasticIPs:   true,
		Regions:      []string{"eu-west-1", "us-east-1"},
		InstanceIDs:  []string{"i-0123456789abcdef0"},
		TagSelectors: []map[string]string{{"team": "tools", "env": "dev-*"}},
	})
	bySid := make(map[string]int)
	for i, s := range p.Statement {
		bySid[s.Sid] = i
		// Every statement is limited to the configured regions.
		if got := s.Condition["StringEquals"]["aws:RequestedRegion"]; !slices.Equal(got, []string{"eu-west-1", "us-east-1"}) {
			t.Errorf("%s: regions %v", s.Sid, got)
		}
	}
	for _, sid := range []string{"DescribeInstances", "ChangeNamedInstances", "ChangeTaggedInstances1", "AssociateElasticIP", "LaunchInstances", "TagAtLaunch"} {
		if _, ok := bySid[sid]; !ok {
			t.Errorf("no statement %s in %+v", sid, p.Statement)
		}
	}
	if _, ok := bySid["ChangeInstanceState"]; ok {
		t.Error("a policy scoped to ids and tags also allows changing every instance")
	}

	named := p.Statement[bySid["ChangeNamedInstances"]]
	if res, _ := named.Resource.([]any); len(res) != 1 || res[0] != "arn:aws:ec2:*:*:instance/i-0123456789abcdef0" {
		t.Errorf("named instances resource %v", named.Resource)
	}
	tagged := p.Statement[bySid["ChangeTaggedInstances1"]]
	if got := tagged.Condition["StringEquals"]["ec2:ResourceTag/team"]; !slices.Equal(got, []string{"tools"}) {
		t.Errorf("tag condition team = %v, want [tools]", got)
	}
	if got := tagged.Condition["StringLike"]["ec2:ResourceTag/env"]; !slices.Equal(got, []string{"dev-*"}) {
		t.Errorf("wildcard tag condition env = %v, want StringLike [dev-*]", got)
	}
	if !slices.Equal(tagged.Action, []string{"ec2:StartInstances", "ec2:StopInstances"}) {
		t.Errorf("tagged instances allow %v", tagged.Action)
	}
	tag := p.Statement[bySid["TagAtLaunch"]]
	if got := tag.Condition["StringEquals"]["ec2:CreateAction"]; !slices.Equal(got, []string{"RunInstances"}) {
		t.Errorf("CreateTags condition %v, want ec2:CreateAction RunInstances", tag.Condition)
	}
}

func TestPolicyUnscoped(t *testing.T) {
	t.Parallel()
	p := decodePolicy(t, PolicyInput{Actions: []string{"stop"}, Partition: "aws-cn"})
	if len(p.Statement) != 2 {
		t.Fatalf("statements %+v, want describe and change", p.Statement)
	}
	change := p.Statement[1]
	if change.Sid != "ChangeInstanceState" || change.Resource != "arn:aws-cn:ec2:*:*:instance/*" || change.Condition != nil {
		t.Errorf("change statement %+v, want every instance of the partition, no condition", change)
	}
}

func TestPolicyIsIndented(t *testing.T) {
	t.Parallel()
	out, err := Policy(PolicyInput{Actions: []string{"status"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "DescribeInstances",
      "Effect": "Allow",
      "Action": [
        "ec2:DescribeInstances"
      ],
      "Resource": "*"
    }
  ]
}`
	if string(out) != want {
		t.Errorf("Policy printed\n%s\nwant\n%s", out, want)
	}
}

func TestPolicyTags(t *testing.T) {
	t.Parallel()
	// Without Tags, tags go on at launch only and never come off.
	for _, s := range decodePolicy(t, PolicyInput{Actions: []string{"run", "stop"}}).Statement {
		if slices.Contains(s.Action, "ec2:DeleteTags") {
			t.Errorf("%s allows DeleteTags without Tags", s.Sid)
		}
		if slices.Contains(s.Action, "ec2:CreateTags") && (s.Sid != "TagAtLaunch" || s.Condition["StringEquals"]["ec2:CreateAction"] == nil) {
			t.Errorf("%s allows CreateTags after launch without Tags: %+v", s.Sid, s)
		}
	}

	p := decodePolicy(t, PolicyInput{Actions: []string{"run", "stop"}, Tags: true, Regions: []string{"eu-west-1"},
		TagSelectors: []map[string]string{{"team": "tools"}}, Partition: "aws-cn"})
	i := slices.IndexFunc(p.Statement, func(s statementOf) bool { return s.Sid == "TagInstances" })
	if i < 0 {
		t.Fatalf("no statement TagInstances in %+v", p.Statement)
	}
	s := p.Statement[i]
	if !slices.Equal(s.Action, []string{"ec2:CreateTags", "ec2:DeleteTags"}) || s.Resource != "arn:aws-cn:ec2:*:*:instance/*" {
		t.Errorf("TagInstances statement %+v, want CreateTags and DeleteTags on every instance of the partition", s)
	}
	// Limited to the regions, but not to the commands' targets: a deploy
	// tags the instances it launched, which no target names.
	if got := s.Condition["StringEquals"]; len(got) != 1 || !slices.Equal(got["aws:RequestedRegion"], []string{"eu-west-1"}) || s.Condition["StringLike"] != nil {
		t.Errorf("TagInstances condition %v, want only the region", s.Condition)
	}
}

// A deploy may launch only its image, only tagged as its own, and tag or
// terminate only instances carrying its ownership tag.
func TestPolicyDeploys(t *testing.T) {
	t.Parallel()
	b, err := Policy(PolicyInput{Regions: []string{"eu-west-1"}, Deploys: []DeployPolicy{{Command: "/deploy", Image: "ami-0123456789abcdef0"}}})
	if err != nil {
		t.Fatal(err)
	}
	var p policy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	bySid := map[string]statement{}
	for _, s := range p.Statement {
		bySid[s.Sid] = s
	}
	launch, own := bySid["DeployLaunchTagged"], bySid["DeployOwnInstances"]
	if got := launch.Condition["StringEquals"]["aws:RequestTag/switchboard:deploy"]; len(got) != 1 || got[0] != "/deploy" {
		t.Errorf("launch condition = %v", launch.Condition)
	}
	if !strings.Contains(fmt.Sprint(bySid["DeployLaunchFrom"].Resource), "image/ami-0123456789abcdef0") {
		t.Errorf("launch resources = %v, want the configured image", bySid["DeployLaunchFrom"].Resource)
	}
	if got := own.Condition["StringEquals"]["ec2:ResourceTag/switchboard:deploy"]; len(got) != 1 || !slices.Contains(own.Action, "ec2:TerminateInstances") {
		t.Errorf("own instances = %+v", own)
	}
	if strings.Contains(string(b), `"Resource": "*"`) && strings.Count(string(b), `"Resource": "*"`) > 1 {
		t.Errorf("more than describe is on every resource:\n%s", b)
	}
}

func TestPolicyDNSZones(t *testing.T) {
	t.Parallel()
	p := decodePolicy(t, PolicyInput{
		Actions:  []string{"status"},
		Regions:  []string{"eu-west-1"},
		DNSZones: []string{"Z2BBBBBBBBBBBBBBBBBB", "/hostedzone/Z1AAAAAAAAAAAAAAAAAA", "Z2BBBBBBBBBBBBBBBBBB"},
	})
	if got, want := p.actions(), []string{"ec2:DescribeInstances", "route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"}; !slices.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
	var dns *statementOf
	for i := range p.Statement {
		if p.Statement[i].Sid == "CleanUpDNSRecords" {
			dns = &p.Statement[i]
		}
	}
	if dns == nil {
		t.Fatalf("no CleanUpDNSRecords statement in %+v", p.Statement)
	}
	res, _ := dns.Resource.([]any)
	want := []any{"arn:aws:route53:::hostedzone/Z1AAAAAAAAAAAAAAAAAA", "arn:aws:route53:::hostedzone/Z2BBBBBBBBBBBBBBBBBB"}
	if !slices.Equal(res, want) {
		t.Errorf("DNS resource %v, want %v", dns.Resource, want)
	}
	// Route53 is global: a region condition would refuse every call made
	// for a cloud outside us-east-1.
	if len(dns.Condition) != 0 {
		t.Errorf("DNS statement has conditions %v", dns.Condition)
	}

	// Without zones the policy is what it was: nothing in Route53.
	for _, a := range decodePolicy(t, PolicyInput{Actions: []string{"status"}}).actions() {
		if strings.HasPrefix(a, "route53:") {
			t.Errorf("a policy without DNS zones allows %s", a)
		}
	}

	cn := decodePolicy(t, PolicyInput{Partition: "aws-cn", DNSZones: []string{"Z1AAAAAAAAAAAAAAAAAA"}})
	if res := cn.Statement[len(cn.Statement)-1].Resource; !slices.Equal(res.([]any), []any{"arn:aws-cn:route53:::hostedzone/Z1AAAAAAAAAAAAAAAAAA"}) {
		t.Errorf("aws-cn DNS resource %v", res)
	}
}

func TestPolicyDNSZoneByName(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"internal.example.com", "not a zone"} {
		_, err := Policy(PolicyInput{DNSZones: []string{"Z1AAAAAAAAAAAAAAAAAA", zone}})
		if err == nil || !strings.Contains(err.Error(), zone) {
			t.Errorf("Policy with DNS zone %q = %v, want an error naming it", zone, err)
		}
	}
}
