// Package awsconfig loads the AWS SDK configuration that every package
// talking to AWS starts from: EC2 and Route53 (package aws), SQS (package
// awsevents). One account in one region, with the credentials the config
// file asks for: the SDK's default chain, narrowed by a profile or static
// keys, then an assumed role (with an external id), and an endpoint that
// replaces AWS's for moto or LocalStack.
//
// It is a package of its own, under aws/ because it belongs to the AWS
// dependency, so that the adapters share one loader without importing each
// other: awsevents imports awsconfig, never aws. It knows no service client;
// each adapter makes its own client from the aws.Config and points it at
// Options.Endpoint.
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Options say how to reach one AWS account in one region, as a cloud or a
// queue of the config file does.
type Options struct {
	Region string
	// Endpoint replaces the AWS endpoints (of the service and of STS), for
	// moto or LocalStack: http://127.0.0.1:5000.
	Endpoint string
	// Profile is a profile of the shared config and credentials files,
	// instead of AWS_PROFILE or "default".
	Profile string
	// RoleARN is a role to assume with STS AssumeRole using the credentials
	// below; ExternalID goes with it.
	RoleARN    string
	ExternalID string
	// AccessKeyID and AccessKeySecret are static credentials that replace
	// the default chain; both or neither.
	AccessKeyID     string
	AccessKeySecret string
}

// Error is a setting that cannot be turned into an AWS configuration.
type Error struct {
	// Key names the setting as the config file does ("endpoint",
	// "profile", "assume_role.role_arn"). It is empty when the trouble is
	// in the environment (AWS_* variables, the shared files) rather than in
	// one setting.
	Key string
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ConfigKey is Key, for callers that locate problems in the config file.
func (e *Error) ConfigKey() string { return e.Key }

func problem(key, format string, args ...any) error {
	return &Error{Key: key, Err: fmt.Errorf(format, args...)}
}

// Check reports what is wrong with the endpoint and the credential settings,
// one *Error per setting. The region is left to the caller, which knows
// where a missing one could come from (a queue URL holds one).
func (o Options) Check() []error {
	var errs []error
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, problem("endpoint", "endpoint %q is not an http(s) URL (for example endpoint: http://127.0.0.1:5000)", o.Endpoint))
		}
	}
	if (o.AccessKeyID == "") != (o.AccessKeySecret == "") {
		key := "access_key_secret"
		if o.AccessKeyID == "" {
			key = "access_key_id"
		}
		errs = append(errs, problem(key, "access_key_id and access_key_secret go together: set both, or neither to use the default credential chain"))
	}
	if o.ExternalID != "" && o.RoleARN == "" {
		errs = append(errs, problem("assume_role.role_arn", "assume_role.external_id is set without assume_role.role_arn"))
	}
	if o.RoleARN != "" && !strings.HasPrefix(o.RoleARN, "arn:") {
		errs = append(errs, problem("assume_role.role_arn", "assume_role.role_arn %q is not an ARN (for example arn:aws:iam::123456789012:role/switchboard)", o.RoleARN))
	}
	return errs
}

// Load returns the SDK configuration for o; extra are more SDK load options
// (a retryer, an HTTP client). It reads the environment and the shared
// files but makes no API call, so a wrong key or role shows up on the first
// call; a profile that does not exist fails here, as an *Error.
//
// With RoleARN, the configuration's credentials are the role's, fetched
// from STS (at Endpoint when set, so nothing reaches AWS from a test),
// cached and renewed before they expire. The session name "switchboard"
// shows in CloudTrail next to every call.
//
// Load does not check o; call Check first.
func Load(ctx context.Context, o Options, extra ...func(*config.LoadOptions) error) (awssdk.Config, error) {
	load := []func(*config.LoadOptions) error{config.WithRegion(o.Region)}
	load = append(load, extra...)
	if o.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(o.Profile))
	}
	if o.AccessKeyID != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.AccessKeySecret, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return cfg, loadError(o, err)
	}
	if o.RoleARN != "" {
		client := sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = awssdk.String(o.Endpoint)
			}
		})
		role := stscreds.NewAssumeRoleProvider(client, o.RoleARN, func(ro *stscreds.AssumeRoleOptions) {
			ro.RoleSessionName = "switchboard"
			if o.ExternalID != "" {
				ro.ExternalID = awssdk.String(o.ExternalID)
			}
		})
		cfg.Credentials = awssdk.NewCredentialsCache(role)
	}
	return cfg, nil
}

// sharedFiles says where the SDK looks for profiles.
const sharedFiles = "the shared AWS config files (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE, by default ~/.aws/config and ~/.aws/credentials)"

// loadError says which setting made the SDK refuse to load, and how to fix
// it when that is known.
func loadError(o Options, err error) error {
	var missing config.SharedConfigProfileNotExistError
	if errors.As(err, &missing) {
		if o.Profile != "" {
			return problem("profile", "profile %q is not in %s: add it there, or remove profile: to use the default credential chain", o.Profile, sharedFiles)
		}
		return problem("", "the environment variable AWS_PROFILE names profile %q, which is not in %s: add it there, or unset AWS_PROFILE", missing.Profile, sharedFiles)
	}
	key := ""
	if o.Profile != "" {
		key = "profile"
	}
	return &Error{Key: key, Err: err}
}
