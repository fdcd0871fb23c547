package awsconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		key  string // of the one problem; "" means valid
		want string // a part of its message
	}{
		{"nothing", Options{}, "", ""},
		{"everything", Options{Region: "eu-west-1", Endpoint: "http://127.0.0.1:5000", Profile: "ops",
			RoleARN: "arn:aws:iam::123456789012:role/switchboard", ExternalID: "x", AccessKeyID: "AKIA", AccessKeySecret: "s"}, "", ""},
		{"endpoint without scheme", Options{Endpoint: "127.0.0.1:5000"}, "endpoint", `endpoint "127.0.0.1:5000" is not an http(s) URL`},
		{"key without secret", Options{AccessKeyID: "AKIA"}, "access_key_secret", "go together"},
		{"secret without key", Options{AccessKeySecret: "s"}, "access_key_id", "go together"},
		{"external id without role", Options{ExternalID: "x"}, "assume_role.role_arn", "external_id is set without assume_role.role_arn"},
		{"role that is no ARN", Options{RoleARN: "switchboard"}, "assume_role.role_arn", "not an ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := tt.opts.Check()
			if tt.key == "" {
				if len(errs) != 0 {
					t.Errorf("Check() = %v, want nothing", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("Check() = %v, want one problem", errs)
			}
			var e *Error
			if !errors.As(errs[0], &e) || e.ConfigKey() != tt.key || !strings.Contains(e.Error(), tt.want) {
				t.Errorf("Check() = %#v, want key %q and a message with %q", errs[0], tt.key, tt.want)
			}
		})
	}
}

func TestCheckNeverShowsTheSecret(t *testing.T) {
	t.Parallel()
	for _, err := range (Options{AccessKeySecret: "wJalrXUtnFEMI/K7MDENG"}).Check() {
		if strings.Contains(err.Error(), "wJalrXUtnFEMI") {
			t.Errorf("the problem shows the secret: %v", err)
		}
	}
}

func TestLoadStaticKeys(t *testing.T) {
	t.Parallel()
	cfg, err := Load(t.Context(), Options{Region: "eu-west-1", AccessKeyID: "AKIDEXAMPLE", AccessKeySecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "AKIDEXAMPLE" || creds.SecretAccessKey != "secret" {
		t.Errorf("credentials %q (%v), want the static keys", creds.AccessKeyID, err)
	}
}

// No t.Parallel: the test points the SDK at its own shared files through
// the environment.
func TestLoadMissingProfile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte("[profile ops]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", conf)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")

	if _, err := Load(t.Context(), Options{Region: "eu-west-1", Profile: "ops"}); err != nil {
		t.Errorf("Load with a profile that exists: %v", err)
	}
	_, err := Load(t.Context(), Options{Region: "eu-west-1", Profile: "nope"})
	var e *Error
	if !errors.As(err, &e) || e.Key != "profile" {
		t.Fatalf("Load with a missing profile = %#v, want an *Error for the key profile", err)
	}
	for _, want := range []string{`profile "nope" is not in the shared AWS config files`, "AWS_CONFIG_FILE", "remove profile:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}

	t.Setenv("AWS_PROFILE", "gone")
	_, err = Load(t.Context(), Options{Region: "eu-west-1"})
	if !errors.As(err, &e) || e.Key != "" || !strings.Contains(err.Error(), "unset AWS_PROFILE") {
		t.Errorf("Load with AWS_PROFILE naming a missing profile = %#v, want an *Error about the environment", err)
	}
}

// The role is assumed at the endpoint (moto's STS), with the keys, and its
// credentials are the configuration's.
func TestLoadAssumeRole(t *testing.T) {
	t.Parallel()
	endpoint, region := testenv.Moto(t)
	cfg, err := Load(t.Context(), Options{Region: region, Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing",
		RoleARN: "arn:aws:iam::123456789012:role/switchboard", ExternalID: "switchboard-test"})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("assume the role: %v", err)
	}
	if creds.AccessKeyID == "" || creds.AccessKeyID == "testing" || !creds.CanExpire || creds.Expires.Before(time.Now()) {
		t.Errorf("credentials %+v, want the role's temporary ones", creds.AccessKeyID)
	}
}

func TestLoadAssumeRoleWithoutAnswer(t *testing.T) {
	t.Parallel()
	closed := "http://" + testenv.FreeAddr(t)
	cfg, err := Load(t.Context(), Options{Region: "us-east-1", Endpoint: closed, AccessKeyID: "testing", AccessKeySecret: "testing",
		RoleARN: "arn:aws:iam::123456789012:role/switchboard"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Credentials.Retrieve(t.Context()); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("assume a role at a closed endpoint = %v, want a failure to reach it (and nothing else)", err)
	}
}
