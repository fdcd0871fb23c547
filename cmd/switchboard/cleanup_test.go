package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard/consul/consultest"
	"github.com/switchboardhq/switchboard/testenv"
)

// Cleanup when an instance dies, end to end: the real binary runs
// examples/decommission.yaml as a team would copy it, pointed at moto (EC2,
// the SQS queue EventBridge writes to, Route53), goiardi (a real Chef
// server, signed requests checked) and the Consul stand-in (behind a gate
// that can take it down and bring it back at the same address). What a
// cleanup did is checked behind Switchboard's back in each system, and
// what it said where Slack would show it.

// cleanupConsulToken is the only ACL token the Consul stand-in knows.
const cleanupConsulToken = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"

// cleanupEnv is the systems a decommission runs against, and the server.
type cleanupEnv struct {
	t        *testing.T
	ctx      context.Context
	ec2      *ec2.Client
	r53      *route53.Client
	sqs      *sqs.Client
	region   string
	queueURL string
	zoneID   string
	// domain is the hosted zone's name, without the final dot.
	domain string
	chef   *testenv.ChefServer
	// consul talks to the Consul stand-in straight, past the gate.
	consul *api.Client
	// gate is where Switchboard reaches Consul.
	gate *testenv.Gate
	peer *slackPeer
	s    *server
}

type cleanupOptions struct {
	// sweep makes the example's hourly sweep also run at every start
	// (missed: run_once); without it the sweep never fires during a test,
	// so that it cannot race the events the test sends.
	sweep bool
	// edit changes the example further.
	edit func(t *testing.T, cfg string) string
}

func newCleanupEnv(t *testing.T, opts cleanupOptions) *cleanupEnv {
	t.Helper()
	endpoint, region := testenv.Moto(t)
	chef := testenv.Goiardi(t)
	ctx := t.Context()
	creds := credentials.NewStaticCredentialsProvider("testing", "testing", "")
	e := &cleanupEnv{t: t, ctx: ctx, region: region, chef: chef, peer: newSlackPeer(t),
		ec2: ec2.New(ec2.Options{Region: region, BaseEndpoint: awssdk.String(endpoint), Credentials: creds}),
		r53: route53.New(route53.Options{Region: "us-east-1", BaseEndpoint: awssdk.String(endpoint), Credentials: creds}),
		sqs: sqs.New(sqs.Options{Region: region, BaseEndpoint: awssdk.String(endpoint), Credentials: creds}),
	}

	q, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String("ec2-terminated")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	e.queueURL = awssdk.ToString(q.QueueUrl)
	// Route53 is global in moto too: the region names the zone apart from
	// the other tests'.
	e.domain = region + ".cleanup.example.com"
	z, err := e.r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: awssdk.String(e.domain),
		CallerReference: awssdk.String(fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()))})
	if err != nil {
		t.Fatalf("CreateHostedZone: %v", err)
	}
	e.zoneID = strings.TrimPrefix(awssdk.ToString(z.HostedZone.Id), "/hostedzone/")

	keyFile := filepath.Join(t.TempDir(), "chef.pem")
	if err := os.WriteFile(keyFile, []byte(chef.CreateClient(t, "switchboard", true)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := consultest.New(t, consultest.Options{Token: cleanupConsulToken})
	e.gate = testenv.NewGate(t, srv.Addr)
	e.consul, err = api.NewClient(&api.Config{Address: srv.Addr, Token: cleanupConsulToken})
	if err != nil {
		t.Fatal(err)
	}

	cfg := decommissionConfig(t, endpoint, region, e.queueURL, e.zoneID, chef.URL, keyFile, "http://"+e.gate.Addr, opts.sweep)
	if opts.edit != nil {
		cfg = opts.edit(t, cfg)
	}
	e.s = startServer(t, e.peer.URL, serverOptions{config: cfg})
	return e
}

// decommissionConfig is examples/decommission.yaml pointed at the test's
// systems, with an /ec2 command through which Switchboard first sees the
// instances (the inventory learns them from describes).
func decommissionConfig(t *testing.T, endpoint, region, queueURL, zoneID, chefURL, keyFile, consulURL string, sweep bool) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "decommission.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(example)
	account := "\n    endpoint: " + endpoint + "\n    access_key_id: testing\n    access_key_secret: testing"
	// A schedule that never comes during a test (the next February 29th).
	sweepTrigger := `trigger: { schedule: { cron: "0 0 29 2 *" } }`
	if sweep {
		sweepTrigger = `trigger: { schedule: { cron: "17 * * * *", missed: run_once } }`
	}
	for old, new := range map[string]string{
		"listen: 127.0.0.1:8080":        "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}",
		"bot_token: ${SLACK_BOT_TOKEN}": "bot_token: xoxb-e2e\n  api_url: {{api_url}}\n  response_url_hosts: [\"{{slack_origin}}\"]",
		"region: eu-west-1":             "region: " + region + account,
		"url: https://sqs.eu-west-1.amazonaws.com/123456789012/ec2-terminated": "url: " + queueURL + "\n    region: " + region + account,
		"zones: [Z0123456789ABCDEFGHIJ]":                                       "zones: [" + zoneID + "]" + strings.ReplaceAll(account, "\n    ", "\n  "),
		"server_url: https://chef.example.com/organizations/ops/":              "server_url: " + chefURL,
		"key: ${file:/run/secrets/chef.pem}":                                   "key: ${file:" + keyFile + "}",
		"address: http://consul.internal:8500":                                 "address: " + consulURL,
		"token: ${CONSUL_TOKEN}":                                               "token: " + cleanupConsulToken,
		`trigger: { schedule: { cron: "17 * * * *" } }`:                        sweepTrigger,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("examples/decommission.yaml no longer has %q", old)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	return cfg + `
commands:
  /ec2:
    cloud: aws
    allow: { users: [group:ops], channels: [C0OPS] }
    instances:
      fleet: { tags: { role: web } }
    actions: [status]
`
}

// cleanupInstance is an instance of the test's fleet as EC2 showed it
// running.
type cleanupInstance struct {
	id, name, privateIP, publicIP, privateDNS string
}

// launch runs an instance called name in moto, behind Switchboard's back;
// without a Name tag when name is empty.
func (e *cleanupEnv) launch(name string) cleanupInstance {
	t := e.t
	t.Helper()
	tags := []ec2types.Tag{{Key: awssdk.String("role"), Value: awssdk.String("web")}}
	if name != "" {
		tags = append(tags, ec2types.Tag{Key: awssdk.String("Name"), Value: awssdk.String(name)})
	}
	out, err := e.ec2.RunInstances(e.ctx, &ec2.RunInstancesInput{ImageId: awssdk.String("ami-12c6146b"), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: awssdk.Int32(1), MaxCount: awssdk.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags}}})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	in := out.Instances[0]
	ci := cleanupInstance{id: awssdk.ToString(in.InstanceId), name: name, privateIP: awssdk.ToString(in.PrivateIpAddress),
		publicIP: awssdk.ToString(in.PublicIpAddress), privateDNS: awssdk.ToString(in.PrivateDnsName)}
	if ci.privateIP == "" || ci.publicIP == "" || ci.privateDNS == "" {
		t.Fatalf("moto launched %s without its addresses: %+v", name, ci)
	}
	return ci
}

// terminate terminates an instance in moto, and tells nobody.
func (e *cleanupEnv) terminate(in cleanupInstance) {
	e.t.Helper()
	if _, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{in.id}}); err != nil {
		e.t.Fatalf("TerminateInstances %s: %v", in.id, err)
	}
}

// seen makes Switchboard describe the fleet (/ec2 status), so that its
// inventory knows each instance's name and addresses.
func (e *cleanupEnv) seen(insts ...cleanupInstance) {
	t := e.t
	t.Helper()
	req, path := slashCommand(t, e.s, e.peer, "U0OPS1", "C0OPS", "status fleet")
	if status, ack := send(t, req); status != 200 {
		t.Fatalf("/ec2 status fleet: %d %q", status, ack)
	}
	answer := e.peer.answered(t, path, insts[0].id)
	for _, in := range insts {
		if !strings.Contains(strings.Join(answer, "\n"), in.id) {
			t.Fatalf("/ec2 status fleet does not show %s: %q", in.id, answer)
		}
	}
}

// event sends the EventBridge "EC2 Instance State-change Notification" of
// the instance's termination to the queue, as the example's rule would.
func (e *cleanupEnv) event(in cleanupInstance, eventID string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"version":"0","id":%q,"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",`+
		`"account":"123456789012","time":%q,"region":%q,"resources":["arn:aws:ec2:%s:123456789012:instance/%s"],`+
		`"detail":{"instance-id":%q,"state":"terminated"}}`,
		eventID, time.Now().UTC().Format(time.RFC3339), e.region, e.region, in.id, in.id)
	if _, err := e.sqs.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: awssdk.String(e.queueURL), MessageBody: awssdk.String(body)}); err != nil {
		e.t.Fatalf("SendMessage: %v", err)
	}
}

// drained waits until Switchboard took every message from the queue (it
// deletes one once its run is recorded).
func (e *cleanupEnv) drained() {
	e.t.Helper()
	waitFor(e.t, "the queue to be drained", func() bool {
		out, err := e.sqs.GetQueueAttributes(e.ctx, &sqs.GetQueueAttributesInput{QueueUrl: awssdk.String(e.queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			e.t.Fatalf("GetQueueAttributes: %v", err)
		}
		return out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)] == "0" &&
			out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)] == "0"
	})
}

// host is a name in the test's hosted zone.
func (e *cleanupEnv) host(label string) string { return label + "." + e.domain }

// record creates a record set; with owner set, also the TXT marker the
// example's owner rule reads (owner_txt_name: _owner.{{name}}).
func (e *cleanupEnv) record(name string, typ r53types.RRType, value, owner string) {
	t := e.t
	t.Helper()
	set := func(name string, typ r53types.RRType, value string) r53types.Change {
		return r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: awssdk.String(name), Type: typ, TTL: awssdk.Int64(60), ResourceRecords: []r53types.ResourceRecord{{Value: awssdk.String(value)}}}}
	}
	changes := []r53types.Change{set(name, typ, value)}
	if owner != "" {
		changes = append(changes, set("_owner."+name, r53types.RRTypeTxt, `"`+owner+`"`))
	}
	_, err := e.r53.ChangeResourceRecordSets(e.ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: awssdk.String(e.zoneID),
		ChangeBatch: &r53types.ChangeBatch{Changes: changes}})
	if err != nil {
		t.Fatalf("create %s %s: %v", name, typ, err)
	}
}

// records returns the record sets of the zone, as "name TYPE".
func (e *cleanupEnv) records() []string {
	t := e.t
	t.Helper()
	out, err := e.r53.ListResourceRecordSets(e.ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: awssdk.String(e.zoneID)})
	if err != nil {
		t.Fatalf("ListResourceRecordSets: %v", err)
	}
	var sets []string
	for _, s := range out.ResourceRecordSets {
		sets = append(sets, strings.TrimSuffix(awssdk.ToString(s.Name), ".")+" "+string(s.Type))
	}
	return sets
}

// hasRecords reports which of the record sets ("name TYPE") the zone has.
func (e *cleanupEnv) hasRecords(sets ...string) (present, absent []string) {
	e.t.Helper()
	all := e.records()
	for _, s := range sets {
		if slices.Contains(all, s) {
			present = append(present, s)
		} else {
			absent = append(absent, s)
		}
	}
	return present, absent
}

const switchboardOwner = "heritage=switchboard"

// dnsFor gives the instance the records of an ordinary host: an A record
// for its private address and one for its public address, both owned, and
// a record that points at it but is another tool's. It returns the owned
// record sets, markers included, and the other tool's.
func (e *cleanupEnv) dnsFor(in cleanupInstance) (owned []string, foreign string) {
	e.record(e.host(in.name), r53types.RRTypeA, in.privateIP, switchboardOwner)
	e.record(e.host(in.name+"-public"), r53types.RRTypeA, in.publicIP, switchboardOwner)
	e.record(e.host("legacy-"+in.name), r53types.RRTypeA, in.privateIP, "heritage=external-dns,external-dns/owner=other")
	for _, name := range []string{in.name, in.name + "-public"} {
		owned = append(owned, e.host(name)+" A", "_owner."+e.host(name)+" TXT")
	}
	return owned, e.host("legacy-"+in.name) + " A"
}

// chefFor registers the instance in Chef as chef-client would: a node
// carrying its instance id and addresses (Ohai's ec2 attributes) and a
// client of the same name.
func (e *cleanupEnv) chefFor(in cleanupInstance) {
	e.chef.CreateNode(e.t, in.name, map[string]any{"ipaddress": in.privateIP,
		"ec2": map[string]any{"instance_id": in.id, "local_ipv4": in.privateIP, "public_ipv4": in.publicIP, "local_hostname": in.privateDNS}})
	e.chef.CreateClient(e.t, in.name, false)
}

// consulFor registers the instance in Consul as its agent would (started
// with node_meta instance_id): the node with two services, and two sessions
// each holding a lock, one released and one deleted when its session goes.
// It returns the two keys.
func (e *cleanupEnv) consulFor(in cleanupInstance) (releaseKey, deleteKey string) {
	t := e.t
	t.Helper()
	cat := e.consul.Catalog()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("consul: %s: %v", what, err)
		}
	}
	_, err := cat.Register(&api.CatalogRegistration{Node: in.name, Address: in.privateIP, NodeMeta: map[string]string{"instance_id": in.id},
		Service: &api.AgentService{ID: "web", Service: "web", Port: 80},
		Check:   &api.AgentCheck{CheckID: "serfHealth", Name: "Serf Health Status", Status: api.HealthPassing}}, nil)
	must("register "+in.name, err)
	_, err = cat.Register(&api.CatalogRegistration{Node: in.name, Address: in.privateIP, NodeMeta: map[string]string{"instance_id": in.id},
		Service: &api.AgentService{ID: "web-admin", Service: "web-admin", Port: 8080}}, nil)
	must("register web-admin", err)
	releaseKey, deleteKey = "locks/"+in.name, "service/web/leader/"+in.name
	for key, behavior := range map[string]string{releaseKey: api.SessionBehaviorRelease, deleteKey: api.SessionBehaviorDelete} {
		id, _, err := e.consul.Session().Create(&api.SessionEntry{Name: "lock " + key, Node: in.name, Behavior: behavior}, nil)
		must("create a session on "+in.name, err)
		ok, _, err := e.consul.KV().Acquire(&api.KVPair{Key: key, Value: []byte(in.name), Session: id}, nil)
		must("acquire "+key, err)
		if !ok {
			t.Fatalf("consul: %s was not acquired", key)
		}
	}
	return releaseKey, deleteKey
}

// consulState is what Consul knows of a node: whether it is registered,
// its sessions, and the keys given: "" when gone, "free" when there and
// unlocked, "held" when locked.
func (e *cleanupEnv) consulState(node string, keys ...string) (registered bool, sessions int, locks []string) {
	t := e.t
	t.Helper()
	n, _, err := e.consul.Catalog().Node(node, nil)
	if err != nil {
		t.Fatalf("consul: read node %s: %v", node, err)
	}
	ss, _, err := e.consul.Session().Node(node, nil)
	if err != nil {
		t.Fatalf("consul: read the sessions of %s: %v", node, err)
	}
	for _, k := range keys {
		kv, _, err := e.consul.KV().Get(k, nil)
		switch {
		case err != nil:
			t.Fatalf("consul: get %s: %v", k, err)
		case kv == nil:
			locks = append(locks, "")
		case kv.Session == "":
			locks = append(locks, "free")
		default:
			locks = append(locks, "held")
		}
	}
	return n != nil, len(ss), locks
}

// fleetHost is an instance with everything the systems know of it.
type fleetHost struct {
	cleanupInstance
	owned                 []string // its record sets, owner markers included
	foreign               string   // a record pointing at it that is not Switchboard's
	releaseKey, deleteKey string
}

// newHost launches an instance called name and registers it in DNS, Chef
// and Consul, as a fleet's tooling would have.
func (e *cleanupEnv) newHost(name string) fleetHost {
	in := e.launch(name)
	h := fleetHost{cleanupInstance: in}
	h.owned, h.foreign = e.dnsFor(in)
	e.chefFor(in)
	h.releaseKey, h.deleteKey = e.consulFor(in)
	return h
}

// report is the example's report of a cleanup that removed everything of h.
func (e *cleanupEnv) report(h fleetHost, records int) string {
	return fmt.Sprintf("%s (%s) terminated: removed %d DNS records; left 1 record Switchboard does not own: %s; Chef node and client; Consul node and 2 sessions (released %s; deleted %s).",
		h.name, h.id, records, h.foreign, h.releaseKey, h.deleteKey)
}

// cleanedUp fails the test unless every system forgot h, and the record
// that is not Switchboard's is still there.
func (e *cleanupEnv) cleanedUp(h fleetHost) {
	t := e.t
	t.Helper()
	if present, _ := e.hasRecords(h.owned...); len(present) > 0 {
		t.Errorf("records of %s still in Route53: %v", h.name, present)
	}
	if _, absent := e.hasRecords(h.foreign); len(absent) > 0 {
		t.Errorf("the record Switchboard does not own was deleted: %v", absent)
	}
	if e.chef.HasNode(t, h.name) || e.chef.HasClient(t, h.name) {
		t.Errorf("Chef still has node %v and client %v %s", e.chef.HasNode(t, h.name), e.chef.HasClient(t, h.name), h.name)
	}
	if !e.chef.HasClient(t, "switchboard") {
		t.Errorf("Switchboard's own Chef client is gone")
	}
	registered, sessions, locks := e.consulState(h.name, h.releaseKey, h.deleteKey)
	if registered || sessions != 0 || !slices.Equal(locks, []string{"free", ""}) {
		t.Errorf("Consul after the cleanup of %s: registered %v, %d sessions, locks %q; want gone, none, [free, gone]", h.name, registered, sessions, locks)
	}
}

// untouched fails the test unless every system still has all of h.
func (e *cleanupEnv) untouched(h fleetHost) {
	t := e.t
	t.Helper()
	if _, absent := e.hasRecords(append(slices.Clone(h.owned), h.foreign)...); len(absent) > 0 {
		t.Errorf("records of %s were deleted: %v", h.name, absent)
	}
	if !e.chef.HasNode(t, h.name) || !e.chef.HasClient(t, h.name) {
		t.Errorf("Chef lost node or client %s", h.name)
	}
	registered, sessions, locks := e.consulState(h.name, h.releaseKey, h.deleteKey)
	if !registered || sessions != 2 || !slices.Equal(locks, []string{"held", "held"}) {
		t.Errorf("Consul lost some of %s: registered %v, %d sessions, locks %q", h.name, registered, sessions, locks)
	}
}

// handledRuns returns, for each delivery of the event the server handled,
// the runs it logged the delivery started (or found started).
func (e *cleanupEnv) handledRuns(eventID string) []string {
	var runs []string
	for line := range strings.Lines(e.s.logs.String()) {
		if strings.Contains(line, `msg="event handled"`) && strings.Contains(line, "delivery_id="+eventID+" ") {
			m := loggedRuns.FindStringSubmatch(line)
			if m == nil {
				e.t.Fatalf("no runs in %q", line)
			}
			runs = append(runs, m[1])
		}
	}
	return runs
}

var loggedRuns = regexp.MustCompile(`\bruns=(\[[^\]]*\])`)

// postTotal is how many messages Switchboard posted with chat.postMessage.
func (p *slackPeer) postTotal() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.posts)
}

// auditLines returns the audit trail as JSON lines, read by the binary's
// own audit command.
func auditLines(t *testing.T, s *server) string {
	t.Helper()
	cmd := exec.Command(binary, "audit", "--config", s.config, "--json")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	return string(out)
}

// The story: an instance is terminated and EventBridge's notification comes
// through SQS; its DNS records, its Chef node and client, its Consul node
// and sessions go, the record another tool owns stays, and the channel reads
// what was removed. The same event delivered again does nothing. With
// Consul down, DNS and Chef are cleaned, the channel hears what failed and
// until when it is tried, and the cleanup completes once Consul is back.
// More records than the example's blast radius wait for ops' approval.
func TestDecommissionStory(t *testing.T) {
	t.Parallel()
	e := newCleanupEnv(t, cleanupOptions{})
	web7, web8, web9 := e.newHost("web-7"), e.newHost("web-8"), e.newHost("web-9")
	// Two more owned records make web-9's cleanup larger than the
	// example's blast radius (6 record sets, markers included).
	web9.owned = append(web9.owned, e.host("web-9-internal")+" CNAME", "_owner."+e.host("web-9-internal")+" TXT",
		e.host("web-9-db")+" A", "_owner."+e.host("web-9-db")+" TXT")
	e.record(e.host("web-9-internal"), r53types.RRTypeCname, web9.privateDNS, switchboardOwner)
	e.record(e.host("web-9-db"), r53types.RRTypeA, web9.privateIP, switchboardOwner)
	e.seen(web7.cleanupInstance, web8.cleanupInstance, web9.cleanupInstance)

	const eventID = "7bf73129-1428-4cd3-a780-95db273d1602"
	t.Run("terminated", func(t *testing.T) {
		e.t = t
		e.terminate(web7.cleanupInstance)
		e.event(web7.cleanupInstance, eventID)
		report := e.peer.posted(t, web7.name+" ("+web7.id+") terminated")
		if got, want := report.Get("text"), e.report(web7, 4); got != want || report.Get("channel") != "C0OPS" {
			t.Errorf("the report in %s reads\n%q\nwant\n%q", report.Get("channel"), got, want)
		}
		e.cleanedUp(web7)
		e.untouched(web8)
		audit := auditLines(t, e.s)
		for _, want := range []string{`"subject":"route53 delete ` + e.host(web7.name) + ` A","outcome":"ok"`,
			`"subject":"route53 leave ` + web7.foreign + `","outcome":"not owned"`,
			`"subject":"chef delete node ` + web7.name + `","outcome":"ok"`,
			`"subject":"consul deregister node ` + web7.name + `","outcome":"ok"`,
			`"subject":"decommission","outcome":"succeeded"`} {
			if !strings.Contains(audit, want) {
				t.Errorf("the audit trail has no %s:\n%s", want, audit)
			}
		}
	})

	t.Run("same event again", func(t *testing.T) {
		e.t = t
		before := e.peer.postTotal()
		// Chef and Consul get the instance back, as if it had never been
		// cleaned up: a second run would remove them again.
		e.chefFor(web7.cleanupInstance)
		e.event(web7.cleanupInstance, eventID)
		e.drained()
		waitFor(t, "the second delivery to be handled", func() bool { return len(e.handledRuns(eventID)) == 2 })
		if runs := e.handledRuns(eventID); runs[0] != runs[1] || runs[0] == "[]" {
			t.Errorf("the deliveries started runs %s and %s, want the first run both times", runs[0], runs[1])
		}
		time.Sleep(time.Second) // what a second run would post
		if after := e.peer.postTotal(); after != before {
			t.Errorf("the same event again posted %d more message(s)", after-before)
		}
		if !e.chef.HasNode(t, web7.name) {
			t.Errorf("the same event again ran a cleanup")
		}
	})

	t.Run("Consul down", func(t *testing.T) {
		e.t = t
		e.gate.Shut()
		e.terminate(web8.cleanupInstance)
		e.event(web8.cleanupInstance, "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a")
		failed := e.peer.posted(t, "(consul_deregister) failed:")
		if text := failed.Get("text"); !strings.Contains(text, "Consul at http://"+e.gate.Addr+" did not answer") ||
			!strings.Contains(text, "I'll keep trying until ") || failed.Get("channel") != "C0OPS" {
			t.Errorf("the channel heard %q in %s", text, failed.Get("channel"))
		}
		if present, _ := e.hasRecords(web8.owned...); len(present) > 0 {
			t.Errorf("with Consul down, the DNS records of web-8 stay: %v", present)
		}
		if e.chef.HasNode(t, web8.name) || e.chef.HasClient(t, web8.name) {
			t.Errorf("with Consul down, the Chef node or client of web-8 stays")
		}
		if registered, sessions, _ := e.consulState(web8.name); !registered || sessions != 2 {
			t.Errorf("Consul changed while Switchboard could not reach it")
		}
		if n := e.peer.postCount(web8.name + " (" + web8.id + ") terminated"); n != 0 {
			t.Errorf("a report came before Consul was cleaned up")
		}

		e.gate.Open(t)
		report := e.peer.posted(t, web8.name+" ("+web8.id+") terminated")
		if got, want := report.Get("text"), e.report(web8, 4); got != want {
			t.Errorf("the report reads\n%q\nwant\n%q", got, want)
		}
		e.cleanedUp(web8)
		if n := e.peer.postCount("(consul_deregister) failed:"); n != 1 {
			t.Errorf("the failure was told %d times, want once", n)
		}
	})

	// An instance without a Name tag that Switchboard never saw: its
	// Consul step is skipped (no node name to go by), and the report
	// leaves that part out rather than showing it empty.
	t.Run("a step skipped", func(t *testing.T) {
		e.t = t
		bare := e.launch("")
		e.chef.CreateNode(t, bare.id, map[string]any{"ec2": map[string]any{"instance_id": bare.id}})
		e.chef.CreateClient(t, bare.id, false)
		e.terminate(bare)
		e.event(bare, "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
		report := e.peer.posted(t, bare.id+" terminated")
		if got, want := report.Get("text"), bare.id+" terminated: removed no DNS records; Chef node and client."; got != want {
			t.Errorf("the report reads\n%q\nwant\n%q", got, want)
		}
		if e.chef.HasNode(t, bare.id) || e.chef.HasClient(t, bare.id) {
			t.Errorf("the Chef node or client of %s stays", bare.id)
		}
	})

	t.Run("blast radius", func(t *testing.T) {
		e.t = t
		e.terminate(web9.cleanupInstance)
		e.event(web9.cleanupInstance, "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9")
		ask := e.peer.posted(t, web9.name+" ("+web9.id+") was terminated")
		want := fmt.Sprintf("%s (%s) was terminated; cleaning up after it would remove 8 DNS records; left 1 record Switchboard does not own: %s. Go ahead?",
			web9.name, web9.id, web9.foreign)
		if got := ask.Get("text"); got != want {
			t.Errorf("the approval request reads\n%q\nwant\n%q", got, want)
		}
		m := approvalValue.FindStringSubmatch(ask.Get("blocks"))
		if m == nil {
			t.Fatalf("the approval request has no buttons: %q", ask.Get("blocks"))
		}
		e.untouched(web9)
		refused := click(t, e.s, e.peer, m[1], "U0INTRUDER", "approve")
		if got := e.peer.waitAnswers(t, refused, 1); !strings.Contains(got[0], "not one of the approvers") {
			t.Errorf("a click from outside ops answered %q", got)
		}
		e.untouched(web9)

		approved := click(t, e.s, e.peer, m[1], "U0OPS2", "approve")
		if got := e.peer.waitAnswers(t, approved, 1); !strings.Contains(got[0], "Approved by <@U0OPS2>") {
			t.Errorf("the request was updated to %q", got)
		}
		report := e.peer.posted(t, web9.name+" ("+web9.id+") terminated")
		if got, want := report.Get("text"), e.report(web9, 8); got != want {
			t.Errorf("the report reads\n%q\nwant\n%q", got, want)
		}
		e.cleanedUp(web9)
	})
}

// sweeps waits until the example's sweep has run at least n times in all.
func (e *cleanupEnv) sweeps(n int) {
	t := e.t
	t.Helper()
	const done = `"subject":"decommission-sweep","outcome":"succeeded"`
	deadline := time.Now().Add(45 * time.Second)
	for {
		audit := auditLines(t, e.s)
		// More is fine: the hour's tick (minute 17) may come too.
		got := strings.Count(audit, done)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep ran %d times, want %d:\n%s\nlogs:\n%s", got, n, audit, e.s.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The sweep: instances end and no event ever comes (a rule missing, a
// queue misconfigured, Switchboard down). The example's sweep, made to run
// at every start here (missed: run_once) rather than waiting for minute 17,
// finds one Switchboard had seen from its inventory, and one it never saw
// from what Route53, Chef and Consul still hold of it (the Chef node's and
// the Consul node's instance id, the records pointing at the addresses
// they report), and hands both to the decommission workflow, which cleans
// up after each as after an event: the one never seen too, its public
// record included, which EC2 no longer shows. An instance still running is
// left alone, and one swept is not handed over again. A sweep that would
// remove more than its limit lists what and asks ops first.
func TestDecommissionSweep(t *testing.T) {
	t.Parallel()
	e := newCleanupEnv(t, cleanupOptions{sweep: true, edit: func(t *testing.T, cfg string) string {
		const guard = "approve_over: 20"
		if strings.Count(cfg, guard) != 1 {
			t.Fatalf("examples/decommission.yaml no longer has %q", guard)
		}
		// Two instances' 8 items pass; three instances' 12 wait.
		return strings.Replace(cfg, guard, "approve_over: 9", 1)
	}})
	e.sweeps(1) // at start, before Switchboard knew any instance
	lost, live := e.newHost("web-10"), e.newHost("web-11")
	e.seen(lost.cleanupInstance, live.cleanupInstance)
	// Launched after Switchboard last looked: never seen running.
	unseen := e.newHost("web-13")
	e.terminate(lost.cleanupInstance)
	e.terminate(unseen.cleanupInstance)

	e.s.restart(t, false)
	swept := e.peer.posted(t, "ended unnoticed")
	if got, want := swept.Get("text"), e.sweptText(lost, unseen); got != want {
		t.Errorf("the sweep said\n%q\nwant\n%q", got, want)
	}
	for _, h := range []fleetHost{lost, unseen} {
		report := e.peer.posted(t, h.name+" ("+h.id+") terminated")
		if got, want := report.Get("text"), e.report(h, 4); got != want || report.Get("channel") != "C0OPS" {
			t.Errorf("the report in %s reads\n%q\nwant\n%q", report.Get("channel"), got, want)
		}
		e.cleanedUp(h)
	}
	e.untouched(live)

	// The next sweep finds nothing new: the swept instances are settled.
	e.s.restart(t, false)
	e.sweeps(3)
	if n := e.peer.postCount("ended unnoticed"); n != 1 {
		t.Errorf("%d sweeps found instances that ended unnoticed, want 1", n)
	}
	if n := e.peer.postCount(") terminated"); n != 2 {
		t.Errorf("%d cleanups reported, want 2", n)
	}

	// Three at once: 12 items, over the limit of 9.
	t.Run("blast radius", func(t *testing.T) {
		e.t = t
		many := []fleetHost{e.newHost("web-14"), e.newHost("web-15"), e.newHost("web-16")}
		for _, h := range many {
			e.terminate(h.cleanupInstance)
		}
		e.s.restart(t, false)
		ask := e.peer.posted(t, "The sweep found 3 instances")
		text := ask.Get("text")
		if !strings.Contains(text, "that ended unnoticed; cleaning up after them would remove 12 items, more than 9:\n• Chef: node ") || !strings.HasSuffix(text, "\nGo ahead?") {
			t.Errorf("the approval request reads\n%q", text)
		}
		for _, h := range many {
			for _, item := range []string{h.name + " (" + h.id + ")", "node " + h.name, e.host(h.name) + " A", e.host(h.name+"-public") + " A"} {
				if !strings.Contains(text, item) {
					t.Errorf("the approval request does not list %s:\n%s", item, text)
				}
			}
			e.untouched(h)
		}
		m := approvalValue.FindStringSubmatch(ask.Get("blocks"))
		if m == nil {
			t.Fatalf("the approval request has no buttons: %q", ask.Get("blocks"))
		}
		approved := click(t, e.s, e.peer, m[1], "U0OPS2", "approve")
		if got := e.peer.waitAnswers(t, approved, 1); !strings.Contains(got[0], "Approved by <@U0OPS2>") {
			t.Errorf("the request was updated to %q", got)
		}
		if got := e.peer.posted(t, "Found 3 instance(s) that ended unnoticed").Get("text"); !strings.Contains(got, "\nLeft behind: Chef: node ") {
			t.Errorf("the sweep said %q", got)
		}
		for _, h := range many {
			report := e.peer.posted(t, h.name+" ("+h.id+") terminated")
			if got, want := report.Get("text"), e.report(h, 4); got != want {
				t.Errorf("the report reads\n%q\nwant\n%q", got, want)
			}
			e.cleanedUp(h)
		}
	})
}

// sweptText is what the sweep says when it hands hosts over, every one
// registered by newHost: in the order of their ids, then what each system
// held of them.
func (e *cleanupEnv) sweptText(hosts ...fleetHost) string {
	hosts = slices.Clone(hosts)
	slices.SortFunc(hosts, func(a, b fleetHost) int { return strings.Compare(a.id, b.id) })
	var labels, chef, consul, dns []string
	for _, h := range hosts {
		labels = append(labels, h.name+" ("+h.id+")")
		chef = append(chef, "node "+h.name)
		consul = append(consul, "node "+h.name)
		dns = append(dns, e.host(h.name+"-public")+" A", e.host(h.name)+" A")
	}
	return fmt.Sprintf("Found %d instance(s) that ended unnoticed: %s; decommission is cleaning up after each.\nLeft behind: Chef: %s; Consul: %s; Route53: %s.",
		len(hosts), strings.Join(labels, ", "), strings.Join(chef, ", "), strings.Join(consul, ", "), strings.Join(dns, ", "))
}

// The example with dry_run: true on its cleanup steps: the channel reads
// what each system would lose, and none loses anything.
func TestDecommissionDryRun(t *testing.T) {
	t.Parallel()
	e := newCleanupEnv(t, cleanupOptions{edit: func(t *testing.T, cfg string) string {
		for _, step := range []string{
			"route53_cleanup: { name: '{{ steps.inst.name }}', ips: '{{ steps.inst.ips }}', hostnames: '{{ steps.inst.private_dns }}' }",
			"chef_delete: { instance: '{{ steps.inst.id }}' }",
			"consul_deregister: { node: '{{ steps.inst.name }}' }",
		} {
			if n := strings.Count(cfg, step); n != 1 {
				t.Fatalf("examples/decommission.yaml has %d steps %q, want 1", n, step)
			}
			cfg = strings.Replace(cfg, step, strings.TrimSuffix(step, " }")+", dry_run: true }", 1)
		}
		// A dry run's summaries say "would remove" themselves.
		const removed = `"removed " + join(removed, "; ")`
		if strings.Count(cfg, removed) != 1 {
			t.Fatalf("examples/decommission.yaml's report no longer has %s", removed)
		}
		return strings.Replace(cfg, removed, `join(removed, "; ")`, 1)
	}})
	h := e.newHost("web-12")
	e.seen(h.cleanupInstance)
	e.terminate(h.cleanupInstance)
	e.event(h.cleanupInstance, "3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d")
	report := e.peer.posted(t, h.name+" ("+h.id+") terminated")
	for _, want := range []string{
		"terminated: would remove 4 DNS records; left 1 record Switchboard does not own: " + h.foreign + ";",
		"; would remove Chef node and client;",
		"; would remove Consul node and 2 sessions (released " + h.releaseKey + "; deleted " + h.deleteKey + ").",
	} {
		if !strings.Contains(report.Get("text"), want) {
			t.Errorf("the report reads\n%q\nwant it to hold\n%q", report.Get("text"), want)
		}
	}
	e.untouched(h)
	if audit := auditLines(t, e.s); strings.Contains(audit, `"subject":"route53 delete`) || strings.Contains(audit, `"subject":"chef delete`) ||
		strings.Contains(audit, `"subject":"consul `) {
		t.Errorf("the audit trail records deletions of a dry run:\n%s", audit)
	}
}

// switchboard check takes the example as it is, and refuses, with its line,
// a route53_cleanup step that could never find a record: with the example's
// owner_txt rule, records are found by the addresses they point at, and
// this step is given none.
func TestDecommissionCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "chef.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "decommission.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(string(example), "/run/secrets/chef.pem", keyFile, 1)
	const step = "route53_cleanup: { name: '{{ steps.inst.name }}', ips: '{{ steps.inst.ips }}', hostnames: '{{ steps.inst.private_dns }}' }"
	if strings.Count(good, step) != 1 {
		t.Fatalf("examples/decommission.yaml no longer has one step %q", step)
	}
	bad := strings.Replace(good, step, "route53_cleanup: { name: '{{ steps.inst.name }}' }", 1)
	check := func(name, cfg string) (string, error) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "check", "--config", path)
		cmd.Env = append(os.Environ(), "SLACK_SIGNING_SECRET="+testSecret, "SLACK_BOT_TOKEN=xoxb-e2e", "CONSUL_TOKEN="+cleanupConsulToken)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check("good.yaml", good); err != nil {
		t.Errorf("check refused the example: %v\n%s", err, out)
	}
	out, err := check("bad.yaml", bad)
	want := fmt.Sprintf("%s:%d: workflows.decommission.steps[4].route53_cleanup: ips: with the owner_txt rule, route53_cleanup finds records by the addresses they point at",
		filepath.Join(dir, "bad.yaml"), lineOf(t, bad, "      - id: dns\n"))
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("check of a route53_cleanup step without addresses: %v\n%s\nwant the line\n%s", err, out, want)
	}
}
