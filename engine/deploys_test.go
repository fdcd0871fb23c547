package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

var deploySpec = switchboard.DeploySpec{Command: "/deploy", TerminateCommand: "/napoteterminate", Cloud: "main", PinMax: 72 * time.Hour,
	Launch: switchboard.DeployLaunch{Image: "ami-0123456789abcdef0", UserData: "branch={{ steps.branch.name }}"}}

func TestParseDeploy(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		text      string
		terminate bool
		want      deployRequest
		wantErr   string
	}{
		{text: "login-fix", want: deployRequest{action: "deploy", query: "login-fix"}},
		{text: "#57", want: deployRequest{action: "deploy", query: "#57"}},
		{text: "list", want: deployRequest{action: "list"}},
		{text: "terminate login-fix", want: deployRequest{action: "terminate", query: "login-fix"}},
		{text: "terminate ALL", want: deployRequest{action: "terminate", query: "ALL", all: true}},
		{text: "login-fix", terminate: true, want: deployRequest{action: "terminate", query: "login-fix"}},
		{text: "pin search for 4h demo for the customer", want: deployRequest{action: "pin", query: "search", pinFor: 4 * time.Hour, reason: "demo for the customer"}},
		{text: "pin search until 2026-12-04", want: deployRequest{action: "pin", query: "search", until: time.Date(2026, 12, 4, 23, 59, 59, 0, time.UTC)}},
		{text: "pin search", want: deployRequest{action: "pin", query: "search", pinFor: 72 * time.Hour}},
		{text: "unpin search", want: deployRequest{action: "unpin", query: "search"}},
		{text: "", wantErr: "Try `/deploy <branch, ticket or PR>`"},
		{text: "help", wantErr: "`/deploy list`"},
		{text: "list everything", wantErr: "`/deploy list` takes nothing after it."},
		{text: "terminate", wantErr: "Which environment? Try `/deploy terminate <branch>`"},
		{text: "pin search for ever", wantErr: `"ever" is not a duration`},
		{text: "pin search for 100h", wantErr: "A pin lasts at most 72h here"},
		{text: "pin search until 2027-01-30", wantErr: "A pin lasts at most 72h here"},
		{text: "pin search until tomorrow", wantErr: `"tomorrow" is not a date`},
	}
	for _, tt := range tests {
		got, err := parseDeploy(deploySpec, tt.text, tt.terminate, now)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Message, tt.wantErr) || err.Code != switchboard.EINVALID {
				t.Errorf("%q: err = %v, want EINVALID with %q", tt.text, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.text, err)
		case got != tt.want:
			t.Errorf("%q = %+v, want %+v", tt.text, got, tt.want)
		}
	}
}

func TestPlanDeploy(t *testing.T) {
	t.Parallel()
	plan, ack := planDeploy(deploySpec, deployRequest{action: "deploy", query: "login-fix"})
	kinds := []string{}
	for _, s := range plan {
		kinds = append(kinds, s.Kind)
	}
	if strings.Join(kinds, ",") != "deploy_find,deploy_launch,deploy_announce" {
		t.Errorf("plan = %v", kinds)
	}
	if ack != `Looking for "login-fix" among the open pull requests and branches — I'll report back here.` {
		t.Errorf("ack = %q", ack)
	}
	spec := deploySpec
	spec.TerminateAll = &switchboard.ApprovalRule{Approvers: []string{"U0OPS1"}}
	plan, ack = planDeploy(spec, deployRequest{action: "terminate", query: "all", all: true})
	if len(plan) != 1 || !strings.Contains(string(plan[0].With), `"approval"`) || !strings.Contains(ack, "needs an approval") {
		t.Errorf("terminate all: %s, %q", plan[0].With, ack)
	}
}
