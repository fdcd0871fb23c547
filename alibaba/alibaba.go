// Package alibaba is Switchboard's provider for Alibaba Cloud ECS: one
// account in one region, acted on through the classic
// github.com/aliyun/alibaba-cloud-sdk-go (services/ecs), so that `/ecs start
// i-bp1...` does for ECS what `/ec2 start` does for EC2.
//
// ECS names its states Pending, Starting, Running, Stopping and Stopped;
// the provider maps them onto the domain's EC2 names. Where ECS and EC2
// differ the provider keeps the domain's contract: start and stop report
// instances already on their way as unchanged instead of failing, batch calls
// use ECS's SuccessFirst mode so that one instance in the wrong state fails
// alone (a *switchboard.PartialError), and every ECS error becomes a
// *switchboard.CloudError that keeps ECS's own code.
//
// The SDK's own retries are off: the fleet layer above retries throttled and
// unavailable calls with jittered backoff, and two retry loops would
// multiply each other.
package alibaba

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/switchboardhq/switchboard"
)

// The environment variables the access key is read from when Options has
// none, as Alibaba's own tools name them.
const (
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	EnvSecurityToken   = "ALIBABA_CLOUD_SECURITY_TOKEN"
)

// Options configure a Provider.
type Options struct {
	// Region is the ECS region, such as cn-hangzhou. Required.
	Region string
	// Endpoint overrides the ECS API address: a host (ecs-vpc.cn-hangzhou.aliyuncs.com,
	// spoken over HTTPS) or a URL with its scheme (http://127.0.0.1:PORT for
	// a test server). Empty means the SDK's endpoint for Region.
	Endpoint string
	// AccessKeyID and AccessKeySecret are a RAM user's access key. Both or
	// neither; without them the key comes from the environment
	// (ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET and, for
	// an STS token, ALIBABA_CLOUD_SECURITY_TOKEN), and without those from
	// RAMRole.
	AccessKeyID     string
	AccessKeySecret string
	// RAMRole is the name of the RAM role attached to the ECS instance
	// Switchboard runs on; its temporary credentials come from the instance
	// metadata service and are renewed before they expire.
	RAMRole string
	// RoleARN, when set, is a RAM role (acs:ram::ACCOUNT:role/NAME) to
	// assume with STS on top of the credentials above; ExternalID goes with
	// it when the role's trust policy asks for one.
	RoleARN    string
	ExternalID string
	// HTTPClient carries the API calls: its Transport, and its Timeout when
	// set (otherwise the SDK's per-API read timeouts apply). Nil means a
	// copy of http.DefaultTransport.
	HTTPClient *http.Client
	// ForceDelete lets TerminateInstances release instances that are not
	// stopped (DeleteInstances with Force=true, which cuts their power like
	// pulling the plug). Without it only stopped instances are deleted and
	// the others fail with ECONFLICT, asking for a stop first.
	ForceDelete bool
	// GetenvFunc reads the environment for the access key. Nil means
	// os.Getenv.
	GetenvFunc func(string) string
}

// Provider is one Alibaba Cloud account in one ECS region. It is safe for
// concurrent use.
type Provider struct {
	region      string
	domain      string // host[:port], or "" for the SDK's endpoint
	scheme      string // HTTPS or HTTP
	transport   http.RoundTripper
	timeout     time.Duration // zero leaves the SDK's per-API timeouts
	creds       credentials.CredentialsProvider
	source      string
	forceDelete bool
}

var _ switchboard.Provider = (*Provider)(nil)

var regionPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// New returns a provider for opts.Region. It reports a missing region, a
// malformed endpoint and missing credentials, naming the keys to set; it
// makes no API call.
func New(opts Options) (*Provider, error) {
	if opts.Region == "" {
		return nil, fmt.Errorf("alibaba: no region: set region (for example cn-hangzhou)")
	}
	if !regionPattern.MatchString(opts.Region) {
		return nil, fmt.Errorf("alibaba: region %q is not an Alibaba Cloud region id (for example cn-hangzhou)", opts.Region)
	}
	p := &Provider{
		region:      opts.Region,
		scheme:      "HTTPS",
		transport:   http.DefaultTransport.(*http.Transport).Clone(), // a pool of its own
		forceDelete: opts.ForceDelete,
	}
	if opts.Endpoint != "" {
		host, scheme, err := parseEndpoint(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		p.domain, p.scheme = host, scheme
	}
	if c := opts.HTTPClient; c != nil {
		if c.Transport != nil {
			p.transport = c.Transport
		}
		p.timeout = c.Timeout
	}
	creds, source, err := chooseCredentials(opts)
	if err != nil {
		return nil, err
	}
	p.creds, p.source = creds, source
	return p, nil
}

// CredentialSource says where the provider's credentials come from, for a
// startup log line: "options", "environment" or "ram-role:NAME", followed
// by "+assume-role:ARN" when a role is assumed. It never includes a secret.
func (p *Provider) CredentialSource() string { return p.source }

// Region is the region the provider acts in.
func (p *Provider) Region() string { return p.region }

func parseEndpoint(endpoint string) (host, scheme string, err error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("alibaba: endpoint %q is not a host or a URL like https://ecs.cn-hangzhou.aliyuncs.com", endpoint)
	}
	switch u.Scheme {
	case "https":
		return u.Host, "HTTPS", nil
	case "http":
		return u.Host, "HTTP", nil
	}
	return "", "", fmt.Errorf("alibaba: endpoint %q: the scheme must be http or https", endpoint)
}

// chooseCredentials picks the access key from opts, then the environment,
// then the ECS RAM role, and assumes opts.RoleARN with them when set.
func chooseCredentials(opts Options) (credentials.CredentialsProvider, string, error) {
	base, source, err := baseCredentials(opts)
	if err != nil || opts.RoleARN == "" {
		return base, source, err
	}
	if !strings.HasPrefix(opts.RoleARN, "acs:ram::") {
		return nil, "", fmt.Errorf("alibaba: assume_role.role_arn %q is not a RAM role ARN (acs:ram::ACCOUNT:role/NAME)", opts.RoleARN)
	}
	assumed, err := credentials.NewRAMRoleARNCredentialsProviderBuilder().
		WithCredentialsProvider(base).
		WithRoleArn(opts.RoleARN).
		WithExternalId(opts.ExternalID).
		WithRoleSessionName("switchboard").
		WithStsRegion(opts.Region).
		Build()
	if err != nil {
		return nil, "", fmt.Errorf("alibaba: assume role %s: %w", opts.RoleARN, err)
	}
	return &lockedCredentials{next: assumed}, source + "+assume-role:" + opts.RoleARN, nil
}

func baseCredentials(opts Options) (credentials.CredentialsProvider, string, error) {
	switch {
	case opts.AccessKeyID != "" && opts.AccessKeySecret != "":
		return credentials.NewStaticAKCredentialsProvider(opts.AccessKeyID, opts.AccessKeySecret), "options", nil
	case opts.AccessKeyID != "" || opts.AccessKeySecret != "":
		return nil, "", fmt.Errorf("alibaba: set both access_key_id and access_key_secret, or neither")
	}
	getenv := opts.GetenvFunc
	if getenv == nil {
		getenv = os.Getenv
	}
	id, secret, token := getenv(EnvAccessKeyID), getenv(EnvAccessKeySecret), getenv(EnvSecurityToken)
	switch {
	case id != "" && secret != "" && token != "":
		return credentials.NewStaticSTSCredentialsProvider(id, secret, token), "environment", nil
	case id != "" && secret != "":
		return credentials.NewStaticAKCredentialsProvider(id, secret), "environment", nil
	case id != "" || secret != "":
		return nil, "", fmt.Errorf("alibaba: the environment has only one of %s and %s; set both", EnvAccessKeyID, EnvAccessKeySecret)
	}
	if opts.RAMRole != "" {
		// Converted once so that the temporary credentials are cached and
		// renewed by one provider, not fetched again for every call.
		cp, err := auth.ToCredentialsProvider(credentials.NewEcsRamRoleCredential(opts.RAMRole))
		if err != nil {
			return nil, "", fmt.Errorf("alibaba: RAM role %s: %w", opts.RAMRole, err)
		}
		return &lockedCredentials{next: cp}, "ram-role:" + opts.RAMRole, nil
	}
	return nil, "", fmt.Errorf("alibaba: no credentials: set access_key_id and access_key_secret, or the environment variables %s and %s, or ram_role when Switchboard runs on an ECS instance with a RAM role",
		EnvAccessKeyID, EnvAccessKeySecret)
}

// lockedCredentials serializes a credentials provider that caches and
// renews without a lock of its own (the SDK's ECS RAM role provider).
type lockedCredentials struct {
	mu   sync.Mutex
	next credentials.CredentialsProvider
}

func (l *lockedCredentials) GetCredentials() (*credentials.Credentials, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next.GetCredentials()
}

func (l *lockedCredentials) GetProviderName() string { return l.next.GetProviderName() }

// endpointMap is the SDK's ECS endpoint table. The SDK fills it lazily
// without a lock, so it is read once here rather than by every client.
var endpointMap = sync.OnceValue(ecs.GetEndpointMap)

// client returns an SDK client for one call. The SDK's clients take no
// context and rewrite their http.Client on every call, so each call gets its
// own client, whose transport binds the requests to ctx; the credentials
// provider (and its cached token) is shared.
func (p *Provider) client(ctx context.Context) (*ecs.Client, error) {
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	cfg.MaxRetryTime = 0
	cfg.Scheme = p.scheme
	cfg.Transport = &contextTransport{ctx: ctx, next: p.transport}
	cfg.Timeout = p.timeout
	c := &ecs.Client{}
	if err := c.InitWithOptions(p.region, cfg, p.creds); err != nil {
		return nil, fmt.Errorf("alibaba: set up the ECS client: %w", err)
	}
	c.EndpointMap = endpointMap()
	c.EndpointType = ecs.GetEndpointType()
	c.Domain = p.domain
	return c, nil
}

// contextTransport makes the SDK's requests end when ctx does. It is not an
// *http.Transport on purpose: the SDK rewrites the dialer, proxy and TLS
// settings of those on every call, which would race between calls.
type contextTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t *contextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	done := func() { stop(); cancel() }
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: done}
	return resp, nil
}

// doneBody releases a request's context when its body is closed.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
