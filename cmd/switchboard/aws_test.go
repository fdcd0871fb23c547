package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/testenv"
)

const awsConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
clouds:
  prod:
    provider: aws
    region: %s
    endpoint: %s
    access_key_id: testing
    access_key_secret: testing
groups:
  ops: [U0OPS1]
commands:
  /ec2:
    cloud: prod
    allow: { users: [group:ops] }
    instances:
      tools: { id: %s, elastic_ip: %s }
      web: { tags: { role: web } }
`

// The same commands give the same answers on AWS (here a real moto server)
// as on the simulated cloud.
func TestSlashCommandsOnAWS(t *testing.T) {
	t.Parallel()
	endpoint, region := testenv.Moto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The account: tools (stopped, with an Elastic IP to attach) and two
	// web servers.
	cloud, err := aws.New(ctx, aws.Options{Region: region, Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	raw := ec2.New(ec2.Options{Region: region, BaseEndpoint: awssdk.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	launch := func(name string, tags map[string]string) string {
		tags["Name"] = name
		insts, err := cloud.RunInstances(ctx, switchboard.LaunchSpec{ImageID: "ami-12c6146b", Type: "t3.micro", Tags: tags})
		if err != nil {
			t.Fatalf("launch %s: %v", name, err)
		}
		return insts[0].ID
	}
	tools := launch("tools", map[string]string{"env": "dev"})
	launch("web-1", map[string]string{"role": "web"})
	launch("web-2", map[string]string{"role": "web"})
	if _, err := cloud.StopInstances(ctx, []string{tools}, switchboard.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	eip, err := raw.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	if err != nil {
		t.Fatal(err)
	}
	ip := awssdk.ToString(eip.PublicIp)

	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: fmt.Sprintf(awsConfig, region, endpoint, tools, ip)})
	label := "tools (" + tools + ")"

	steps := []struct{ text, ack, answer string }{
		{"start tools", "Checking " + label + " to start what is stopped — I'll report back here.", label + " is now running at " + ip + "."},
		{"start tools", "Checking " + label + " to start what is stopped — I'll report back here.", label + " is already running at " + ip + "."},
		{"status web", "Checking web (role=web) — I'll report back here.", "is running at "},
		{"stop tools", "Checking " + label + " to stop what is running — I'll report back here.", label + " is now stopped."},
		{"stop tools", "Checking " + label + " to stop what is running — I'll report back here.", label + " is already stopped."},
		{"stop web --dry-run", "Dry run, nothing will change: checking whether web (role=web) could be stopped — I'll report back here.", "and the cloud says that is allowed; nothing was changed."},
	}
	for _, step := range steps {
		req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", step.text)
		if status, ack := send(t, req); status != 200 || ack != step.ack {
			t.Errorf("/ec2 %s: ack = %d %q, want %q", step.text, status, ack, step.ack)
		}
		got := peer.waitAnswers(t, path, 1)
		if len(got) != 1 || !strings.Contains(got[0], step.answer) {
			t.Errorf("/ec2 %s answered %q, want it to contain %q", step.text, got, step.answer)
		}
	}
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{Tags: map[string]string{"role": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range insts {
		if inst.State != switchboard.StateRunning {
			t.Errorf("the dry run left %s %s", inst.Label(), inst.State)
		}
	}
}
