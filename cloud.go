package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A cloud is configured as `provider: NAME` plus that provider's own
// options. Each provider package declares its CloudType: the options it
// takes (config checks them, with FILE:LINE, as it checks step parameters),
// how its instance ids look, and how to build a Provider from the options.
// cmd/switchboard registers the types; config and the engine ask the
// registry, never a provider by name.

// CloudType is one kind of cloud: sim, aws, alibaba.
type CloudType struct {
	// Name is what `provider:` says.
	Name string
	// Title is what a sentence to people calls the cloud: "AWS",
	// "Alibaba Cloud", "the simulated cloud" ("AWS is not answering").
	Title string
	// Params are the provider's options besides name and provider.
	Params []Param
	// CheckFunc checks the decoded options beyond their types; each
	// problem names its option, a dotted path for nested ones
	// (assume_role.role_arn, instances[1].id).
	CheckFunc func(opts map[string]any) []ParamProblem
	// IDFunc reports whether s is an instance id of this cloud, and says
	// what one looks like for a person who wrote something else.
	IDFunc func(s string) (ok bool, want string)
	// KnownIDsFunc, for a cloud whose config lists every instance it has
	// (the simulator), returns their ids, so that config can refuse a
	// command target that is not among them.
	KnownIDsFunc func(opts map[string]any) []string
	// NewFunc builds the provider. It calls no cloud API: a cloud that
	// cannot be reached is found out when it is used.
	NewFunc func(ctx context.Context, c CloudSpec) (Provider, error)
}

// CloudSpec is a configured cloud, as its provider's NewFunc gets it.
type CloudSpec struct {
	Name string
	// Options are the provider's options as JSON, secrets in the clear.
	Options json.RawMessage
	// DataDir is where a provider may keep local state (the simulator's
	// fleet).
	DataDir string
	// Check is set when the config is only being checked: build nothing
	// that writes.
	Check bool
	// Getenv reads the environment, for SDKs that take credentials from
	// it.
	Getenv func(string) string
}

// AddCloud registers cloud types.
func (r *Registry) AddCloud(types ...CloudType) {
	for _, t := range types {
		if _, dup := r.Cloud(t.Name); dup {
			panic(fmt.Sprintf("switchboard: cloud type %q registered twice", t.Name))
		}
		if t.NewFunc == nil || t.IDFunc == nil {
			panic(fmt.Sprintf("switchboard: cloud type %q needs NewFunc and IDFunc", t.Name))
		}
		r.clouds = append(r.clouds, &t)
	}
}

// Cloud returns the cloud type called name.
func (r *Registry) Cloud(name string) (*CloudType, bool) {
	if r == nil {
		return nil, false
	}
	i := slices.IndexFunc(r.clouds, func(t *CloudType) bool { return t.Name == name })
	if i < 0 {
		return nil, false
	}
	return r.clouds[i], true
}

// CloudNames lists the registered cloud types in registration order.
func (r *Registry) CloudNames() []string {
	if r == nil {
		return nil
	}
	names := make([]string, len(r.clouds))
	for i, t := range r.clouds {
		names[i] = t.Name
	}
	return names
}

// Duration is an option or parameter written like "90s" (a number is
// seconds).
type Duration time.Duration

// UnmarshalJSON reads "90s", "1m30s" or 90.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("a duration is written like 90s or 5m")
		}
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration is written like 90s or 5m, not %q", s)
	}
	*d = Duration(v)
	return nil
}

// DecodeOptions decodes a cloud's options into v strictly: an option v
// does not have is an error (config has already reported it with its line;
// this catches a provider and its declaration disagreeing).
func DecodeOptions(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cloud options: %w", err)
	}
	return nil
}

// Options that the clouds signing with keys share (aws, alibaba): a static
// key pair, both or neither, and a role to assume.
var (
	AccessKeyParams = []Param{{Name: "access_key_id"}, {Name: "access_key_secret", Secret: true}}
	AssumeRoleParam = Param{Name: "assume_role", Type: TypeObject, Fields: []Param{
		{Name: "role_arn", Required: true, Hint: "the role to assume, like role_arn: arn:aws:iam::123456789012:role/switchboard"},
		{Name: "external_id"},
	}}
)

// CheckCredentials checks the shared credential options: both halves of
// a key pair, and a role ARN that looks like one.
func CheckCredentials(opts map[string]any) []ParamProblem {
	var problems []ParamProblem
	id, _ := opts["access_key_id"].(string)
	_, hasSecret := opts["access_key_secret"]
	switch {
	case id != "" && !hasSecret:
		problems = append(problems, ParamProblem{Param: "access_key_secret", Msg: "is required with access_key_id", At: "access_key_id"})
	case id == "" && hasSecret:
		problems = append(problems, ParamProblem{Param: "access_key_id", Msg: "is required with access_key_secret", At: "access_key_secret"})
	}
	if role, ok := opts["assume_role"].(map[string]any); ok {
		if arn, _ := role["role_arn"].(string); arn != "" && !strings.HasPrefix(arn, "arn:") && !strings.HasPrefix(arn, "acs:ram::") {
			problems = append(problems, ParamProblem{Param: "assume_role.role_arn",
				Msg: "must be a role ARN, like arn:aws:iam::123456789012:role/switchboard (AWS) or acs:ram::123456789012:role/switchboard (Alibaba)"})
		}
	}
	return problems
}
