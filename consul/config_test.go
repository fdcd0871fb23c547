package consul_test

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/consul"
	"github.com/switchboardhq/switchboard/steps"
)

// A workflow names the step in YAML; config checks its parameters against
// the declaration, with the line of the mistake.
func TestDeregisterStepInConfig(t *testing.T) {
	t.Parallel()
	reg := switchboard.NewRegistry(append(steps.Builtin(), consul.DeregisterStep(nil))...)
	const base = `queues:
  events: { url: "https://sqs.us-east-1.amazonaws.com/123456789012/events" }
workflows:
  cleanup:
    trigger: { event: { source: aws.ec2, detail_type: EC2 Instance State-change Notification, state: terminated, queue: events } }
    channel: C0OPS
    steps:
      - id: consul
        consul_deregister: { node: '{{ event.instances[0] }}', dry_run: true }
      - notify: { text: 'Removed {{ steps.consul.summary }}' }
`
	if _, err := config.Parse("c.yaml", []byte(base), nil, reg); err != nil {
		t.Fatalf("a valid workflow:\n%v", err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"{ node: '{{ event.instances[0] }}', dry_run: true }", "{ dry_run: true }", "c.yaml:9: workflows.cleanup.steps[0].consul_deregister.node: is required: the Consul node name"},
		{"dry_run: true", "dry_run: maybe", "c.yaml:9: workflows.cleanup.steps[0].consul_deregister.dry_run"},
	} {
		_, err := config.Parse("c.yaml", []byte(strings.Replace(base, tc.from, tc.to, 1)), nil, reg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v; want a problem saying %q", tc.from, tc.to, err, tc.want)
		}
	}
}
