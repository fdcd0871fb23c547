// Package switchboard holds the domain of Switchboard: the instances it acts
// on, the requests people and events make, the runs that carry them out, and
// the small interfaces between the parts. It imports no SDK; every adapter
// (Slack, clouds, the SQL store, the web console) imports this package, never
// each other, and cmd/switchboard wires them together.
package switchboard

import (
	"context"
	"strings"
	"time"
)

// Version is set at build time with -ldflags "-X github.com/switchboardhq/switchboard.Version=...".
var Version = "dev"

// InstanceState is the lifecycle state of a cloud instance, named as EC2 names
// them. Providers for other clouds map their states onto these.
type InstanceState string

const (
	StatePending      InstanceState = "pending"
	StateRunning      InstanceState = "running"
	StateStopping     InstanceState = "stopping"
	StateStopped      InstanceState = "stopped"
	StateShuttingDown InstanceState = "shutting-down"
	StateTerminated   InstanceState = "terminated"
)

// Instance is a virtual machine in some cloud.
type Instance struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"` // the Name tag
	State      InstanceState     `json:"state"`
	Type       string            `json:"type,omitempty"`
	PublicIP   string            `json:"public_ip,omitempty"`
	PrivateIP  string            `json:"private_ip,omitempty"`
	PrivateDNS string            `json:"private_dns,omitempty"` // ip-10-0-0-5.ec2.internal
	Tags       map[string]string `json:"tags,omitempty"`
	LaunchTime time.Time         `json:"launch_time,omitzero"`
}

// FleetCloud is one cloud's instances as the console's fleet view shows
// them.
type FleetCloud struct {
	Name      string          `json:"name"`
	Instances []FleetInstance `json:"instances"`
	// Error says why the cloud could not be described this time.
	Error string `json:"error,omitempty"`
}

// FleetInstance is an instance and the slash commands that may touch it.
type FleetInstance struct {
	Instance
	Commands []string `json:"commands"`
}

// Label is how an instance is named to a person: "tools (i-0123…)".
//
// The Name tag is anyone's with CreateTags: it is escaped for chat
// (EscapeText), so a name like "<!channel>" cannot ping a channel.
func (i Instance) Label() string {
	if i.Name == "" {
		return i.ID
	}
	return EscapeText(i.Name) + " (" + i.ID + ")"
}

// EscapeText makes text from outside (an instance's Name tag, a pull
// request's title) plain in a message: &, < and > are written as chat
// markup wants them, so the text cannot mention people, ping channels or
// hide links.
func EscapeText(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Filter selects instances: by id, by tag, or both (an instance must match
// every id constraint and every tag). An empty filter selects every instance.
type Filter struct {
	IDs  []string          `json:"ids,omitempty"`
	Tags map[string]string `json:"tags,omitempty"`
}

// StateChange is the outcome of a start, stop or terminate for one instance.
type StateChange struct {
	ID       string        `json:"id"`
	Previous InstanceState `json:"previous"`
	Current  InstanceState `json:"current"`
}

// StopOptions tunes a stop.
type StopOptions struct {
	Force     bool `json:"force,omitempty"`
	Hibernate bool `json:"hibernate,omitempty"`
}

// Provider is one cloud account in one region: AWS EC2, Alibaba ECS or the
// simulated cloud. Calls act on the ids given and fail as a whole the way the
// cloud's own API does; batching, rate limits and retries sit above it.
type Provider interface {
	DescribeInstances(ctx context.Context, f Filter) ([]Instance, error)
	StartInstances(ctx context.Context, ids []string) ([]StateChange, error)
	StopInstances(ctx context.Context, ids []string, opts StopOptions) ([]StateChange, error)
	RebootInstances(ctx context.Context, ids []string) error
	TerminateInstances(ctx context.Context, ids []string) ([]StateChange, error)
	// AssociateAddress attaches an Elastic IP (given by its public address)
	// to an instance.
	AssociateAddress(ctx context.Context, instanceID, publicIP string) error
	// RunInstances launches instances. The same ClientToken returns the
	// instances of the first call instead of launching more.
	RunInstances(ctx context.Context, spec LaunchSpec) ([]Instance, error)
	// DryRun asks the cloud whether action (start, stop, reboot, terminate)
	// on ids would be allowed, without acting: nil when it would, EFORBIDDEN
	// when the credentials may not, another error when the call itself fails.
	DryRun(ctx context.Context, action string, ids []string) error

	// TagInstances sets tags on instances, replacing the values of keys
	// they already have; an empty value is set as empty, not removed. tags
	// must hold at least one key. An unknown id fails the call as the
	// others do (ENOTFOUND, naming it).
	//
	// Setting and removing are two methods because every cloud has two
	// calls for them (EC2 CreateTags and DeleteTags, ECS TagResources and
	// UntagResources), each with its own permission and rate bucket, and
	// neither is atomic with the other: one method doing both would be two
	// cloud calls that can half succeed, with no way to say which half.
	TagInstances(ctx context.Context, ids []string, tags map[string]string) error
	// UntagInstances removes the tags with these keys from instances,
	// whatever their values; a key an instance does not have is no error.
	// keys must hold at least one key: EC2's DeleteTags reads a removal
	// without keys as "remove every tag", which no caller means.
	UntagInstances(ctx context.Context, ids []string, keys []string) error
}

// LaunchSpec is what RunInstances launches.
type LaunchSpec struct {
	ImageID        string            `json:"image_id"`
	Type           string            `json:"type,omitempty"`
	Count          int               `json:"count,omitempty"` // zero means 1
	SubnetID       string            `json:"subnet_id,omitempty"`
	SecurityGroups []string          `json:"security_groups,omitempty"`
	KeyName        string            `json:"key_name,omitempty"`
	UserData       string            `json:"user_data,omitempty"` // plain text; providers encode it as their API wants
	Tags           map[string]string `json:"tags,omitempty"`
	// ClientToken makes the launch idempotent; derive it from the run and
	// step so a retried step launches nothing new.
	ClientToken string `json:"client_token,omitempty"`
}

// Inventory remembers the last known attributes of every instance
// Switchboard has seen (names, addresses, tags), so that cleanup still knows
// them after the cloud has released the addresses and, later, stopped
// describing the instance.
type Inventory interface {
	// Remember records what a describe or a launch showed. It is cheap
	// and may be written a moment later.
	Remember(cloud string, insts []Instance)
	// Recall returns what was last known of an instance.
	Recall(ctx context.Context, cloud, id string) (Instance, bool, error)
	// Unsettled lists the cloud's instances whose end no cleanup has
	// looked at yet; Settle marks one as looked at.
	Unsettled(ctx context.Context, cloud string) ([]Instance, error)
	Settle(ctx context.Context, cloud, id string) error
}
