package chef_test

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/chef"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/steps"
)

// A workflow names the step in YAML; config checks its parameters against
// the declaration, with the line of the mistake.
func TestDeleteStepInConfig(t *testing.T) {
	t.Parallel()
	reg := switchboard.NewRegistry(append(steps.Builtin(), chef.DeleteStep(nil))...)
	const base = `queues:
  events: { url: "https://sqs.us-east-1.amazonaws.com/123456789012/events" }
workflows:
  cleanup:
    trigger: { event: { source: aws.ec2, detail_type: EC2 Instance State-change Notification, state: terminated, queue: events } }
    channel: C0OPS
    steps:
      - id: chef
        chef_delete: { instance: '{{ event.instances[0] }}' }
      - notify: { text: 'Removed {{ steps.chef.summary }} ({{ steps.chef.node }})' }
`
	if _, err := config.Parse("c.yaml", []byte(base), nil, reg); err != nil {
		t.Fatalf("a valid workflow:\n%v", err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"{ instance: '{{ event.instances[0] }}' }", "{ dry_run: true }", "c.yaml:9: workflows.cleanup.steps[0].chef_delete: node: a chef_delete step needs node"},
		{"{ instance: '{{ event.instances[0] }}' }", "{ node: web-7, instance: i-0abc1234def567890 }", "c.yaml:9: workflows.cleanup.steps[0].chef_delete.instance: a chef_delete step takes node or instance, not both"},
		{"{ instance: '{{ event.instances[0] }}' }", "{ node: web-7, dry: true }", `unknown parameter "dry"`},
	} {
		_, err := config.Parse("c.yaml", []byte(strings.Replace(base, tc.from, tc.to, 1)), nil, reg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v; want a problem saying %q", tc.from, tc.to, err, tc.want)
		}
	}
}
