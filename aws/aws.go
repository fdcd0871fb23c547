// Package aws is Switchboard's provider for Amazon EC2: one account in one
// region, reached with aws-sdk-go-v2. It turns the domain's calls
// (DescribeInstances, StartInstances, StopInstances, RunInstances...) into
// EC2 API calls and EC2's answers into switchboard.CloudError values with
// EC2's own error codes, so the code above treats it like the simulated cloud.
//
// # Configuration
//
// A cloud with `provider: aws` needs a region; everything else is optional:
//
//	clouds:
//	  prod:
//	    provider: aws
//	    region: eu-west-1
//	    profile: ops                      # a profile of ~/.aws/config
//	    assume_role:
//	      role_arn: arn:aws:iam::123456789012:role/switchboard
//	      external_id: switchboard-prod
//	    endpoint: http://127.0.0.1:5000   # moto or LocalStack, never for real EC2
//
// # Credentials
//
// The SDK configuration comes from package aws/awsconfig, the loader every
// AWS adapter shares. Credentials come from the SDK's default chain
// (environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
// AWS_SESSION_TOKEN, the shared config and credentials files with
// AWS_PROFILE, web identity, ECS task role, EC2 instance role via IMDS),
// narrowed as follows:
//
//   - Options.Profile picks the profile of the shared files instead of
//     AWS_PROFILE or "default".
//   - Options.AccessKeyID and AccessKeySecret, when both set, are static keys
//     that replace the chain.
//   - Options.RoleARN, when set, is assumed with STS AssumeRole (with
//     ExternalID when given) using the credentials above; the temporary
//     credentials are cached and renewed before they expire. With an
//     Endpoint, STS is called there too, so nothing reaches AWS from a test.
//
// # Retries
//
// The SDK's standard retryer stays on for what only the transport knows
// about (connection resets, 5xx, timeouts), but with at most
// Options.RetryMaxAttempts attempts in all (3 by default), a back-off capped
// at two seconds, and no client-side retry quota. A throttled call
// (RequestLimitExceeded) is therefore retried at most twice, quickly, before
// it reaches the fleet layer as ETHROTTLED, which backs off with jitter
// across all its batches; letting the SDK back off for up to 20 s per call as
// well would stack two schedules and hide the throttling from the one that
// can pace the whole fleet. The retry quota is off because its own error
// ("retry quota exceeded") would mask the RequestLimitExceeded behind it.
//
// # Route53
//
// NewDNS makes a Route53 client from the same Options (credentials,
// endpoint, retries) for the cleanup after an instance dies: CleanupDNS
// deletes the instance's records that Switchboard owns, and DNSCleanupStep
// declares the route53_cleanup step that calls it. route53.go says which
// records are found and the owner rules that decide which are deleted.
package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws/awsconfig"
)

// DefaultRetryMaxAttempts is how many attempts the SDK makes per call when
// Options.RetryMaxAttempts is zero: the first and two retries.
const DefaultRetryMaxAttempts = 3

// maxRetryBackoff caps the SDK's own back-off between attempts; see the
// package doc.
const maxRetryBackoff = 2 * time.Second

// defaultInstanceType is what RunInstances launches when the spec names no
// type, the same as the simulated cloud, rather than EC2's own m1.small.
const defaultInstanceType = "t3.micro"

// ClientTokenTag is the tag RunInstances puts on the instances it launches
// with a client token, so a retried launch finds them by tag even where the
// API does not honour ClientToken itself (moto) or has forgotten it.
const ClientTokenTag = "switchboard:client-token"

// Options configure a Provider. Only Region is required.
type Options struct {
	Region string
	// Endpoint replaces the EC2 (and STS) endpoint, for moto or LocalStack:
	// http://127.0.0.1:5000.
	Endpoint string
	// Profile is a profile of the shared config and credentials files.
	Profile string
	// RoleARN is a role to assume with STS; ExternalID goes with it.
	RoleARN    string
	ExternalID string
	// AccessKeyID and AccessKeySecret are static credentials; both or neither.
	AccessKeyID     string
	AccessKeySecret string
	// HTTPClient, when set, makes every request; nil means the SDK's own.
	HTTPClient *http.Client
	// RetryMaxAttempts is how many attempts the SDK makes per call, the first
	// included. Zero means DefaultRetryMaxAttempts; 1 turns SDK retries off.
	RetryMaxAttempts int
}

// Validate reports what is wrong with opts, naming the configuration key.
func (opts Options) Validate() error {
	var errs []error
	if opts.Region == "" {
		errs = append(errs, errors.New("aws: region is required (for example region: us-east-1)"))
	}
	for _, err := range opts.loader().Check() {
		errs = append(errs, fmt.Errorf("aws: %w", err))
	}
	if opts.RetryMaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("aws: RetryMaxAttempts is %d; use 1 for no retries or 0 for the default", opts.RetryMaxAttempts))
	}
	return errors.Join(errs...)
}

// loader is what the shared AWS configuration loader needs of opts.
func (opts Options) loader() awsconfig.Options {
	return awsconfig.Options{
		Region: opts.Region, Endpoint: opts.Endpoint, Profile: opts.Profile,
		RoleARN: opts.RoleARN, ExternalID: opts.ExternalID,
		AccessKeyID: opts.AccessKeyID, AccessKeySecret: opts.AccessKeySecret,
	}
}

// Provider is one EC2 account in one region. It is safe for concurrent use.
type Provider struct {
	ec2      ec2Calls
	region   string
	endpoint string // as configured; "" means EC2's own
}

var _ switchboard.Provider = (*Provider)(nil)

// New returns a Provider for opts. It loads the SDK configuration (shared
// files, environment) but makes no API call, so a wrong key or role shows up
// on the first call, not here.
func New(ctx context.Context, opts Options) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg, err := sdkConfig(ctx, opts)
	if err != nil {
		return nil, err
	}
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(opts.Endpoint)
		}
	})
	return &Provider{ec2: ec2CallsOf(client), region: opts.Region, endpoint: opts.Endpoint}, nil
}

// ec2Calls are the EC2 operations the provider makes, each a method of one
// client. The provider holds these rather than the client: a value the
// program may hold in an interface keeps, through its fields, every method
// of every type it holds in the executable, because the console's templates
// and the expression checker look methods up by name at run time. The EC2
// client has several hundred operations (some 20 MB of code that would be
// mapped in part at every start); held like this, only these are kept.
type ec2Calls struct {
	DescribeInstances  func(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	StartInstances     func(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances      func(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	RebootInstances    func(context.Context, *ec2.RebootInstancesInput, ...func(*ec2.Options)) (*ec2.RebootInstancesOutput, error)
	TerminateInstances func(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	RunInstances       func(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeAddresses  func(context.Context, *ec2.DescribeAddressesInput, ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	AssociateAddress   func(context.Context, *ec2.AssociateAddressInput, ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	CreateTags         func(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags         func(context.Context, *ec2.DeleteTagsInput, ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
}

func ec2CallsOf(c *ec2.Client) ec2Calls {
	return ec2Calls{
		DescribeInstances: c.DescribeInstances, StartInstances: c.StartInstances, StopInstances: c.StopInstances,
		RebootInstances: c.RebootInstances, TerminateInstances: c.TerminateInstances, RunInstances: c.RunInstances,
		DescribeAddresses: c.DescribeAddresses, AssociateAddress: c.AssociateAddress,
		CreateTags: c.CreateTags, DeleteTags: c.DeleteTags,
	}
}

// sdkConfig loads the SDK configuration every client of this package starts
// from (EC2, Route53): the shared loader's account and credentials, the
// retry policy of the package doc, and opts.HTTPClient.
func sdkConfig(ctx context.Context, opts Options) (awssdk.Config, error) {
	attempts := opts.RetryMaxAttempts
	if attempts == 0 {
		attempts = DefaultRetryMaxAttempts
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() awssdk.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = maxRetryBackoff
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := awsconfig.Load(ctx, opts.loader(), load...)
	if err != nil {
		if opts.Profile != "" {
			return cfg, fmt.Errorf("aws: load configuration with profile %q: %w", opts.Profile, err)
		}
		return cfg, fmt.Errorf("aws: load configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = credentialsSource{cfg.Credentials}
	}
	return cfg, nil
}

// Region is the region the provider acts in.
func (p *Provider) Region() string { return p.region }

// DescribeInstances returns the instances that match f, sorted by id, reading
// every page. Naming an id that does not exist fails the call with
// InvalidInstanceID.NotFound, as EC2 does. Tag values may use EC2's
// wildcards * and ?.
func (p *Provider) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: f.IDs, Filters: tagFilters(f.Tags)}
	if len(f.IDs) == 0 {
		// EC2 refuses MaxResults together with InstanceIds.
		in.MaxResults = awssdk.Int32(1000)
	}
	out, err := p.describe(ctx, in)
	if err != nil {
		return nil, p.fail(ctx, "DescribeInstances", f.IDs, err)
	}
	return out, nil
}

func (p *Provider) describe(ctx context.Context, in *ec2.DescribeInstancesInput) ([]switchboard.Instance, error) {
	var out []switchboard.Instance
	// Page by hand: the SDK's paginator takes the client as an interface,
	// and a client held in an interface keeps every one of EC2's several
	// hundred operations in the executable (the linker cannot tell which
	// the console's templates and the expression checker might call by
	// name); called directly, only those Switchboard uses are kept.
	paged := *in // NextToken is set on a copy, not on the caller's input
	in = &paged
	for seen := map[string]bool{}; ; {
		page, err := p.ec2.DescribeInstances(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, instance(i))
			}
		}
		next := awssdk.ToString(page.NextToken)
		if next == "" || seen[next] {
			break
		}
		seen[next] = true
		in.NextToken = page.NextToken
	}
	slices.SortFunc(out, func(a, b switchboard.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// tagFilters turns tag selectors into EC2 filters, in key order so that
// requests are the same every time.
func tagFilters(tags map[string]string) []types.Filter {
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		fs = append(fs, types.Filter{Name: awssdk.String("tag:" + k), Values: []string{tags[k]}})
	}
	return fs
}

func instance(i types.Instance) switchboard.Instance {
	in := switchboard.Instance{
		ID:         awssdk.ToString(i.InstanceId),
		Type:       string(i.InstanceType),
		PublicIP:   awssdk.ToString(i.PublicIpAddress),
		PrivateIP:  awssdk.ToString(i.PrivateIpAddress),
		PrivateDNS: awssdk.ToString(i.PrivateDnsName),
	}
	if i.State != nil {
		in.State = switchboard.InstanceState(i.State.Name)
	}
	if i.LaunchTime != nil {
		in.LaunchTime = *i.LaunchTime
	}
	if len(i.Tags) > 0 {
		in.Tags = make(map[string]string, len(i.Tags))
		for _, t := range i.Tags {
			in.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
		}
		in.Name = in.Tags["Name"]
	}
	return in
}

func stateChanges(in []types.InstanceStateChange) []switchboard.StateChange {
	out := make([]switchboard.StateChange, 0, len(in))
	for _, c := range in {
		sc := switchboard.StateChange{ID: awssdk.ToString(c.InstanceId)}
		if c.PreviousState != nil {
			sc.Previous = switchboard.InstanceState(c.PreviousState.Name)
		}
		if c.CurrentState != nil {
			sc.Current = switchboard.InstanceState(c.CurrentState.Name)
		}
		out = append(out, sc)
	}
	return out
}

// StartInstances starts stopped instances. EC2 reports pending and running
// ones unchanged and fails the whole call with IncorrectInstanceState for
// any other state.
func (p *Provider) StartInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	if len(ids) == 0 {
		return nil, switchboard.MissingParameter("InstanceId")
	}
	out, err := p.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, p.fail(ctx, "StartInstances", ids, err)
	}
	return stateChanges(out.StartingInstances), nil
}

// StopInstances stops running instances, hibernating them or forcing the
// stop when opts say so.
func (p *Provider) StopInstances(ctx context.Context, ids []string, opts switchboard.StopOptions) ([]switchboard.StateChange, error) {
	if len(ids) == 0 {
		return nil, switchboard.MissingParameter("InstanceId")
	}
	in := &ec2.StopInstancesInput{InstanceIds: ids}
	if opts.Force {
		in.Force = awssdk.Bool(true)
	}
	if opts.Hibernate {
		in.Hibernate = awssdk.Bool(true)
	}
	out, err := p.ec2.StopInstances(ctx, in)
	if err != nil {
		return nil, p.fail(ctx, "StopInstances", ids, err)
	}
	return stateChanges(out.StoppingInstances), nil
}

// RebootInstances asks running instances to reboot; EC2 still reports them
// running throughout.
func (p *Provider) RebootInstances(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return switchboard.MissingParameter("InstanceId")
	}
	if _, err := p.ec2.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids}); err != nil {
		return p.fail(ctx, "RebootInstances", ids, err)
	}
	return nil
}

// TerminateInstances terminates instances in any state.
func (p *Provider) TerminateInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	if len(ids) == 0 {
		return nil, switchboard.MissingParameter("InstanceId")
	}
	out, err := p.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, p.fail(ctx, "TerminateInstances", ids, err)
	}
	return stateChanges(out.TerminatingInstances), nil
}

// AssociateAddress attaches the Elastic IP publicIP to instanceID, taking it
// from whichever instance had it. A VPC address is associated by its
// allocation id, which EC2 requires there; an address without one (EC2-Classic)
// by the address itself.
func (p *Provider) AssociateAddress(ctx context.Context, instanceID, publicIP string) error {
	ids := []string{instanceID}
	if instanceID == "" {
		return switchboard.MissingParameter("InstanceId")
	}
	if publicIP == "" {
		return switchboard.MissingParameter("PublicIp")
	}
	addrs, err := p.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{publicIP}})
	if err != nil {
		return p.fail(ctx, "DescribeAddresses", ids, err)
	}
	in := &ec2.AssociateAddressInput{InstanceId: awssdk.String(instanceID), PublicIp: awssdk.String(publicIP)}
	for _, a := range addrs.Addresses {
		if awssdk.ToString(a.PublicIp) == publicIP && a.AllocationId != nil {
			in = &ec2.AssociateAddressInput{
				InstanceId:         awssdk.String(instanceID),
				AllocationId:       a.AllocationId,
				AllowReassociation: awssdk.Bool(true),
			}
			break
		}
	}
	if _, err := p.ec2.AssociateAddress(ctx, in); err != nil {
		return p.fail(ctx, "AssociateAddress", ids, err)
	}
	return nil
}

// RunInstances launches spec.Count instances (one when zero) and returns
// them as EC2 first reports them, usually pending.
//
// With a ClientToken the launch is idempotent twice over: EC2 itself answers
// a repeated token with the first launch's instances, and before launching
// the provider looks for instances tagged ClientTokenTag=token and returns
// those instead. The second guard is for endpoints that ignore ClientToken
// (moto does) and costs one DescribeInstances; it is not atomic, so two
// concurrent launches with one token can both launch where ClientToken is
// not honoured.
func (p *Provider) RunInstances(ctx context.Context, spec switchboard.LaunchSpec) ([]switchboard.Instance, error) {
	if spec.ImageID == "" {
		return nil, switchboard.MissingParameter("ImageId")
	}
	if spec.Count < 0 {
		return nil, switchboard.InvalidParameterValue("count", fmt.Sprint(spec.Count), "Launch at least one instance.")
	}
	if len(spec.ClientToken) > 64 {
		return nil, switchboard.InvalidParameterValue("clientToken", spec.ClientToken, "A client token is at most 64 ASCII characters.")
	}
	if spec.ClientToken != "" {
		launched, err := p.describe(ctx, &ec2.DescribeInstancesInput{
			Filters:    tagFilters(map[string]string{ClientTokenTag: spec.ClientToken}),
			MaxResults: awssdk.Int32(1000),
		})
		if err != nil {
			return nil, p.fail(ctx, "DescribeInstances", nil, err)
		}
		if len(launched) > 0 {
			return launched, nil
		}
	}
	out, err := p.ec2.RunInstances(ctx, runInput(spec))
	if err != nil {
		return nil, p.fail(ctx, "RunInstances", nil, err)
	}
	res := make([]switchboard.Instance, len(out.Instances))
	for i, in := range out.Instances {
		res[i] = instance(in)
	}
	return res, nil
}

func runInput(spec switchboard.LaunchSpec) *ec2.RunInstancesInput {
	count := int32(max(spec.Count, 1))
	typ := spec.Type
	if typ == "" {
		typ = defaultInstanceType
	}
	in := &ec2.RunInstancesInput{
		ImageId:      awssdk.String(spec.ImageID),
		InstanceType: types.InstanceType(typ),
		MinCount:     awssdk.Int32(count),
		MaxCount:     awssdk.Int32(count),
	}
	if spec.SubnetID != "" {
		in.SubnetId = awssdk.String(spec.SubnetID)
	}
	// EC2 takes security groups by id, or by name only in a default VPC; a
	// config may hold either.
	for _, g := range spec.SecurityGroups {
		if strings.HasPrefix(g, "sg-") {
			in.SecurityGroupIds = append(in.SecurityGroupIds, g)
		} else {
			in.SecurityGroups = append(in.SecurityGroups, g)
		}
	}
	if spec.KeyName != "" {
		in.KeyName = awssdk.String(spec.KeyName)
	}
	if spec.UserData != "" {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(spec.UserData)))
	}
	tags := maps.Clone(spec.Tags)
	if spec.ClientToken != "" {
		in.ClientToken = awssdk.String(spec.ClientToken)
		if tags == nil {
			tags = make(map[string]string, 1)
		}
		tags[ClientTokenTag] = spec.ClientToken
	}
	if len(tags) > 0 {
		ts := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			ts.Tags = append(ts.Tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
		}
		in.TagSpecifications = []types.TagSpecification{ts}
	}
	return in
}

// TagInstances sets tags on instances with EC2's CreateTags (Resources =
// ids), replacing the values of keys they already have. An empty value is
// sent as an empty value, which EC2 keeps as such. EC2 fails the call as a
// whole, tagging nothing, when an id is unknown.
func (p *Provider) TagInstances(ctx context.Context, ids []string, tags map[string]string) error {
	if len(ids) == 0 {
		return switchboard.MissingParameter("ResourceId")
	}
	if len(tags) == 0 {
		return switchboard.MissingParameter("Tag")
	}
	in := &ec2.CreateTagsInput{Resources: ids}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		in.Tags = append(in.Tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	if _, err := p.ec2.CreateTags(ctx, in); err != nil {
		return p.fail(ctx, "CreateTags", ids, err)
	}
	return nil
}

// UntagInstances removes the tags with keys from instances with EC2's
// DeleteTags, each key sent without a value so that EC2 removes it whatever
// its value. A call without keys is refused here: DeleteTags would take it
// to mean every tag of the instances.
func (p *Provider) UntagInstances(ctx context.Context, ids []string, keys []string) error {
	if len(ids) == 0 {
		return switchboard.MissingParameter("ResourceId")
	}
	if len(keys) == 0 {
		return switchboard.MissingParameter("Tag")
	}
	in := &ec2.DeleteTagsInput{Resources: ids}
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		in.Tags = append(in.Tags, types.Tag{Key: awssdk.String(k)})
	}
	if _, err := p.ec2.DeleteTags(ctx, in); err != nil {
		return p.fail(ctx, "DeleteTags", ids, err)
	}
	return nil
}

// DryRun makes the call for action with DryRun set: EC2 checks the
// permission (and, on real EC2, the ids) and changes nothing. Its
// DryRunOperation answer means the call would have worked and is nil here;
// UnauthorizedOperation is a CloudError of kind EFORBIDDEN.
func (p *Provider) DryRun(ctx context.Context, action string, ids []string) error {
	call, ok := switchboard.DryRunCalls[action]
	if !ok {
		return switchboard.InvalidParameterValue("action", action, "A dry run covers start, stop, reboot and terminate.")
	}
	if len(ids) == 0 {
		return switchboard.MissingParameter("InstanceId")
	}
	dry := awssdk.Bool(true)
	var err error
	switch action {
	case "start":
		_, err = p.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids, DryRun: dry})
	case "stop":
		_, err = p.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids, DryRun: dry})
	case "reboot":
		_, err = p.ec2.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids, DryRun: dry})
	case "terminate":
		_, err = p.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids, DryRun: dry})
	}
	if err == nil || isDryRunOK(err) {
		// No error at all would mean the endpoint ignored DryRun and acted;
		// there is nothing left to undo or to refuse.
		return nil
	}
	return p.fail(ctx, call, ids, err)
}

// credentialsSource marks the errors of finding credentials, which the SDK
// passes on as plain text ("get identity: get credentials: ..."), so that a
// missing key or a refused role reads as such and not as EC2's answer.
type credentialsSource struct{ awssdk.CredentialsProvider }

func (c credentialsSource) Retrieve(ctx context.Context) (awssdk.Credentials, error) {
	creds, err := c.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return creds, &credentialsError{err}
	}
	return creds, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }
