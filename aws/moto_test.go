package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The integration tests share one moto server per test binary: it takes
// seconds to start, while a region of its own isolates each test (moto keeps
// a separate account state per region) and lets them run in parallel. A reset
// per test would wipe the state of the tests running beside it.

func TestMain(m *testing.M) {
	code := m.Run()
	stopMoto()
	os.Exit(code)
}

var (
	motoOnce sync.Once
	motoSrv  *motoServer
	motoErr  error
)

// motoRegions are regions moto knows, one per test that needs moto.
var motoRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2",
	"eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-southeast-1",
	"ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ca-central-1", "sa-east-1",
}

var motoRegionN atomic.Int64

// errMotoMissing says that moto is not installed, as opposed to a moto that
// failed to start.
var errMotoMissing = errors.New("moto is not installed: `python3 -m pip install 'moto[server]'` provides moto_server")

type motoServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *bytes.Buffer
}

// moto returns a Provider on a shared moto server in a region no other test
// uses, and the raw EC2 client for what the Provider does not do
// (AllocateAddress, DescribeImages). It skips the test when moto is not
// installed, unless CI=true.
func moto(t *testing.T) (*Provider, *ec2.Client) {
	t.Helper()
	motoOnce.Do(func() { motoSrv, motoErr = startMoto() })
	if errors.Is(motoErr, errMotoMissing) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true, so a missing moto is a failure, not a skip)", motoErr)
		}
		t.Skipf("%v", motoErr)
	}
	if motoErr != nil {
		t.Fatalf("start moto: %v", motoErr)
	}
	p, err := New(t.Context(), motoOptions(motoRegion(t)))
	if err != nil {
		t.Fatal(err)
	}
	return p, p.ec2
}

// motoRegion returns a region no other test has used.
func motoRegion(t *testing.T) string {
	t.Helper()
	n := int(motoRegionN.Add(1)) - 1
	if n >= len(motoRegions) {
		t.Fatalf("more moto tests than regions to isolate them in; add regions to motoRegions")
	}
	return motoRegions[n]
}

// motoOptions are dummy credentials for moto, given directly so that
// nothing in the environment (AWS_PROFILE, a real key) takes part.
func motoOptions(region string) Options {
	return Options{
		Region:          region,
		Endpoint:        motoSrv.url,
		AccessKeyID:     "testing",
		AccessKeySecret: "testing",
	}
}

// motoCommand finds moto: moto_server on PATH, else python3's moto.server.
func motoCommand(port string) (*exec.Cmd, error) {
	args := []string{"-H", "127.0.0.1", "-p", port}
	if path, err := exec.LookPath("moto_server"); err == nil {
		return exec.Command(path, args...), nil
	}
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		return exec.Command(py, append([]string{"-m", "moto.server"}, args...)...), nil
	}
	return nil, errMotoMissing
}

func startMoto() (*motoServer, error) {
	// Another process may take the port between our probe and moto's bind.
	var lastErr error
	for range 3 {
		s, err := tryMoto()
		if err == nil || errors.Is(err, errMotoMissing) {
			return s, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryMoto() (*motoServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd, err := motoCommand(port)
	if err != nil {
		return nil, err
	}
	s := &motoServer{url: "http://127.0.0.1:" + port, cmd: cmd, done: make(chan struct{}), log: new(bytes.Buffer)}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Its own process group, so stop reaches whatever the pyenv shim
	// started; Pdeathsig, so a test binary killed by -timeout takes moto
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(s.done) }()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			if cmd.ProcessState.ExitCode() == 127 {
				// A pyenv shim for a Python that lacks moto.
				return nil, errMotoMissing
			}
			return nil, fmt.Errorf("%s exited (%v) before answering:\n%s", cmd.Path, cmd.ProcessState, s.log)
		default:
		}
		// The reset answers once the server is up, and leaves it empty.
		resp, err := client.Post(s.url+"/moto-api/reset", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("moto at %s did not answer within a minute (last: %v):\n%s", s.url, err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *motoServer) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func stopMoto() {
	if motoSrv != nil {
		motoSrv.stop()
	}
}

// motoImage returns an AMI moto knows in the provider's region.
func motoImage(t *testing.T, client *ec2.Client) string {
	t.Helper()
	out, err := client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: awssdk.String("name"), Values: []string{"amzn2-ami-*"}}},
	})
	if err != nil {
		t.Fatalf("DescribeImages: %v", err)
	}
	if len(out.Images) == 0 {
		t.Fatal("moto knows no amzn2-ami-* image")
	}
	return awssdk.ToString(out.Images[0].ImageId)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestMotoLifecycle(t *testing.T) {
	t.Parallel()
	p, client := moto(t)
	ctx := testContext(t)
	image := motoImage(t, client)

	launched, err := p.RunInstances(ctx, switchboardLaunch(image, map[string]string{"Name": "web", "team": "tools"}, 2))
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if len(launched) != 2 {
		t.Fatalf("RunInstances launched %d instances, want 2", len(launched))
	}
	for _, in := range launched {
		if in.State != "pending" || in.Name != "web" || in.Tags["team"] != "tools" || in.Type != "t3.micro" {
			t.Errorf("launched %+v, want pending t3.micro named web with team=tools", in)
		}
	}
	// An instance without the tag, which the tag filter must leave out.
	if _, err := p.RunInstances(ctx, switchboardLaunch(image, map[string]string{"team": "other"}, 1)); err != nil {
		t.Fatalf("RunInstances: %v", err)
	}

	found, err := p.DescribeInstances(ctx, filterTags(map[string]string{"team": "tools"}))
	if err != nil {
		t.Fatalf("DescribeInstances by tag: %v", err)
	}
	if len(found) != 2 {
		t.Fatalf("DescribeInstances by tag found %d instances, want 2: %+v", len(found), found)
	}
	ids := []string{found[0].ID, found[1].ID}
	if ids[0] > ids[1] {
		t.Errorf("DescribeInstances answered %v, not sorted by id", ids)
	}
	for _, in := range found {
		// moto reports a launched instance running at once.
		if in.State != "running" || in.Name != "web" || in.PrivateIP == "" || in.PublicIP == "" || in.LaunchTime.IsZero() {
			t.Errorf("described %+v, want running with name, addresses and launch time", in)
		}
	}
	wild, err := p.DescribeInstances(ctx, filterTags(map[string]string{"team": "to*"}))
	if err != nil || len(wild) != 2 {
		t.Errorf("DescribeInstances with a wildcard tag: %d instances, %v; want 2", len(wild), err)
	}

	stopped, err := p.StopInstances(ctx, ids, stopOpts(false, false))
	if err != nil {
		t.Fatalf("StopInstances: %v", err)
	}
	assertChanges(t, "stop", stopped, ids, "running", "stopping")
	assertStates(t, p, ids, "stopped")

	started, err := p.StartInstances(ctx, ids)
	if err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	assertChanges(t, "start", started, ids, "stopped", "pending")
	assertStates(t, p, ids, "running")

	if err := p.RebootInstances(ctx, ids); err != nil {
		t.Fatalf("RebootInstances: %v", err)
	}
	assertStates(t, p, ids, "running")

	// Force and Hibernate reach the API; moto accepts them like a plain stop.
	if _, err := p.StopInstances(ctx, ids[:1], stopOpts(true, true)); err != nil {
		t.Fatalf("StopInstances with force and hibernate: %v", err)
	}
	assertStates(t, p, ids[:1], "stopped")

	terminated, err := p.TerminateInstances(ctx, ids)
	if err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	if len(terminated) != 2 || terminated[0].Current != "shutting-down" {
		t.Errorf("TerminateInstances answered %+v, want two shutting-down", terminated)
	}
	assertStates(t, p, ids, "terminated")
}

func TestMotoUserData(t *testing.T) {
	t.Parallel()
	p, client := moto(t)
	ctx := testContext(t)
	spec := switchboardLaunch(motoImage(t, client), nil, 1)
	spec.UserData = "#cloud-config\nruncmd:\n  - echo deploy feature/login\n"
	spec.KeyName = "deploy"
	spec.Type = "t3.small"
	launched, err := p.RunInstances(ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	attr, err := client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: awssdk.String(launched[0].ID),
		Attribute:  types.InstanceAttributeNameUserData,
	})
	if err != nil {
		t.Fatalf("DescribeInstanceAttribute: %v", err)
	}
	got, err := base64Decode(awssdk.ToString(attr.UserData.Value))
	if err != nil || got != spec.UserData {
		t.Errorf("user data reads back as %q (%v), want %q", got, err, spec.UserData)
	}
	if launched[0].Type != "t3.small" {
		t.Errorf("launched type %q, want t3.small", launched[0].Type)
	}
}

func TestMotoAssociateAddress(t *testing.T) {
	t.Parallel()
	p, client := moto(t)
	ctx := testContext(t)
	launched, err := p.RunInstances(ctx, switchboardLaunch(motoImage(t, client), nil, 2))
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	first, second := launched[0].ID, launched[1].ID
	alloc, err := client.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
	if err != nil {
		t.Fatalf("AllocateAddress: %v", err)
	}
	eip := awssdk.ToString(alloc.PublicIp)

	if err := p.AssociateAddress(ctx, first, eip); err != nil {
		t.Fatalf("AssociateAddress: %v", err)
	}
	if in := describeOne(t, p, first); in.PublicIP != eip {
		t.Errorf("after AssociateAddress %s has public IP %q, want %s", first, in.PublicIP, eip)
	}

	// Moving the address to another instance is allowed (AllowReassociation).
	if err := p.AssociateAddress(ctx, second, eip); err != nil {
		t.Fatalf("AssociateAddress to a second instance: %v", err)
	}
	if in := describeOne(t, p, second); in.PublicIP != eip {
		t.Errorf("after reassociation %s has public IP %q, want %s", second, in.PublicIP, eip)
	}
	// EC2 would take the address off the first instance; moto 5.2.1 still
	// shows it there, so that is not asserted.

	err = p.AssociateAddress(ctx, first, "192.0.2.200")
	assertCloudError(t, err, "InvalidAddress.NotFound", "not_found", nil)
}

func TestMotoClientToken(t *testing.T) {
	t.Parallel()
	p, client := moto(t)
	ctx := testContext(t)
	spec := switchboardLaunch(motoImage(t, client), map[string]string{"branch": "feature-login"}, 1)
	spec.ClientToken = "run-42-step-3"

	first, err := p.RunInstances(ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	again, err := p.RunInstances(ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances again: %v", err)
	}
	if len(first) != 1 || len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("RunInstances twice with one token answered %v then %v, want the same single instance", ids(first), ids(again))
	}
	all, err := p.DescribeInstances(ctx, filterTags(map[string]string{"branch": "feature-login"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("the account holds %d instances after two launches with one token, want 1", len(all))
	}
	if all[0].Tags[ClientTokenTag] != spec.ClientToken {
		t.Errorf("launched instance has tags %v, want %s=%s", all[0].Tags, ClientTokenTag, spec.ClientToken)
	}

	spec.ClientToken = "run-42-step-4"
	other, err := p.RunInstances(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if other[0].ID == first[0].ID {
		t.Errorf("a new token relaunched nothing: got %s again", other[0].ID)
	}
}

func TestMotoDryRun(t *testing.T) {
	t.Parallel()
	p, client := moto(t)
	ctx := testContext(t)
	launched, err := p.RunInstances(ctx, switchboardLaunch(motoImage(t, client), nil, 1))
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	id := []string{launched[0].ID}
	for _, action := range []string{"stop", "reboot", "terminate", "start"} {
		if err := p.DryRun(ctx, action, id); err != nil {
			t.Errorf("DryRun(%s) = %v, want nil (moto answers DryRunOperation)", action, err)
		}
	}
	assertStates(t, p, id, "running") // a dry run changes nothing

	err = p.DryRun(ctx, "resize", id)
	assertCloudError(t, err, "InvalidParameterValue", "invalid", nil)
}

func TestMotoUnknownInstance(t *testing.T) {
	t.Parallel()
	p, _ := moto(t)
	ctx := testContext(t)
	const missing = "i-0123456789abcdef0"
	want := []string{missing}
	_, err := p.DescribeInstances(ctx, filterIDs(missing))
	assertCloudError(t, err, "InvalidInstanceID.NotFound", "not_found", want)
	_, err = p.StartInstances(ctx, want)
	assertCloudError(t, err, "InvalidInstanceID.NotFound", "not_found", want)
	_, err = p.StopInstances(ctx, want, stopOpts(false, false))
	assertCloudError(t, err, "InvalidInstanceID.NotFound", "not_found", want)
	_, err = p.TerminateInstances(ctx, want)
	assertCloudError(t, err, "InvalidInstanceID.NotFound", "not_found", want)
	err = p.RebootInstances(ctx, want)
	assertCloudError(t, err, "InvalidInstanceID.NotFound", "not_found", want)
}

func TestMotoAssumeRole(t *testing.T) {
	t.Parallel()
	moto(t) // for the server and the skip
	opts := motoOptions(motoRegion(t))
	opts.RoleARN = "arn:aws:iam::123456789012:role/switchboard"
	opts.ExternalID = "switchboard-test"
	p, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// The call signs with credentials from moto's STS, reached at the
	// endpoint too.
	if _, err := p.DescribeInstances(testContext(t), filterTags(nil)); err != nil {
		t.Fatalf("DescribeInstances with an assumed role: %v", err)
	}
}
