package switchboard

import (
	"regexp"
	"strings"
	"time"
)

// A branch deploy (`/deploy login-fix`) finds one branch in a BranchSource,
// launches a fresh instance for it from an image with user data made for
// that branch, waits until it answers, and says where it is. Every
// environment is an instance carrying Switchboard's deploy tags: the cloud
// itself is the record of what is up, who owns it, until when, and whether
// it is pinned, so a teardown or a sweep needs nothing but the cloud.

// DeploySpec is a deploy command as configured.
type DeploySpec struct {
	// Command is the slash command ("/deploy"); TerminateCommand, when
	// set, is a second command that means "/deploy terminate".
	Command          string `json:"command"`
	TerminateCommand string `json:"terminate_command,omitempty"`
	Cloud            string `json:"cloud"`
	// Channel is where scheduled teardowns and sweeps report: a channel
	// id or webhook:NAME.
	Channel string `json:"channel,omitempty"`
	Access  Access `json:"access"`
	// Launch says what to launch. UserData and the tags' values may hold
	// {{ expressions }} over the branch (steps.branch.name, .commit,
	// .short_commit, .pr, .title, .url) and the request (event.user).
	Launch DeployLaunch `json:"launch"`
	// Health, when set, is checked after the instance runs.
	Health *HealthCheck `json:"health,omitempty"`
	// Lifetime is how long an environment lives unless pinned; the
	// nightly teardown may end it sooner.
	Lifetime time.Duration `json:"lifetime"`
	// Redeploy says what a deploy of a branch already up does: "replace"
	// (the new one healthy first, then the old one terminated) or
	// "refuse".
	Redeploy string `json:"redeploy"`
	// PerUser and Total cap the live environments (0: no cap).
	PerUser int `json:"per_user,omitempty"`
	Total   int `json:"total,omitempty"`
	// PinMax is the longest a pin may keep an environment.
	PinMax time.Duration `json:"pin_max"`
	// TerminateAll, when set, is the approval `terminate all` needs.
	TerminateAll *ApprovalRule `json:"terminate_all,omitempty"`
	Line         int           `json:"line,omitempty"`
}

// DeployLaunch is what a deploy launches.
type DeployLaunch struct {
	Image          string            `json:"image"`
	Type           string            `json:"type,omitempty"`
	Subnet         string            `json:"subnet,omitempty"`
	SecurityGroups []string          `json:"security_groups,omitempty"`
	Key            string            `json:"key,omitempty"`
	UserData       string            `json:"user_data,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	// Wait bounds the wait for running.
	Wait time.Duration `json:"wait"`
}

// HealthCheck is an HTTP check an environment must pass before it is
// announced. URL may hold {{ address }}.
type HealthCheck struct {
	URL     string        `json:"url"`
	Timeout time.Duration `json:"timeout"`
	Expect  []int         `json:"expect,omitempty"` // default: any 2xx
	// OnFailure is "terminate" (default) or "keep".
	OnFailure string `json:"on_failure"`
}

// The tags that make an instance a deploy environment. TagDeploy is the
// ownership tag: its value is the deploy command that owns the instance,
// and nothing without it is ever terminated by a deploy, a teardown or a
// sweep.
const (
	TagDeploy    = "switchboard:deploy"
	TagBranch    = "switchboard:branch"
	TagCommit    = "switchboard:commit"
	TagPR        = "switchboard:pr"
	TagRequester = "switchboard:requester"
	TagExpires   = "switchboard:expires"    // RFC 3339
	TagPinned    = "switchboard:pinned"     // RFC 3339 until when, or empty
	TagPinReason = "switchboard:pin-reason" // why, as the pinner said
)

// Environment is a live deploy environment as its instance's tags tell it.
type Environment struct {
	Instance  Instance
	Branch    string
	Commit    string
	PR        string
	Requester string
	Expires   time.Time
	Pinned    time.Time // zero when not pinned
	PinReason string
}

// EnvironmentOf reads an instance's deploy tags.
func EnvironmentOf(inst Instance) Environment {
	e := Environment{Instance: inst, Branch: inst.Tags[TagBranch], Commit: inst.Tags[TagCommit], PR: inst.Tags[TagPR],
		Requester: inst.Tags[TagRequester], PinReason: inst.Tags[TagPinReason]}
	e.Expires, _ = time.Parse(time.RFC3339, inst.Tags[TagExpires])
	e.Pinned, _ = time.Parse(time.RFC3339, inst.Tags[TagPinned])
	return e
}

// Live reports whether the environment's instance is up or on its way.
func (e Environment) Live() bool {
	switch e.Instance.State {
	case StateShuttingDown, StateTerminated:
		return false
	}
	return true
}

// PinnedAt reports whether a pin still holds at t.
func (e Environment) PinnedAt(t time.Time) bool { return !e.Pinned.IsZero() && t.Before(e.Pinned) }

// DeployRuntime is what the deploy steps need beyond their run: the branch
// source and the schedule of each deploy command, known once the config is
// loaded.
type DeployRuntime interface {
	// Source returns the branch source of the deploy command.
	Source(command string) (BranchSource, bool)
	// NextTeardown returns the next scheduled teardown after t, if the
	// command has one.
	NextTeardown(command string, t time.Time) (time.Time, bool)
}

// Ticker is a deploy command's schedule, as the deploy steps see it.
type Ticker interface {
	Next(t time.Time) time.Time
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// EnvironmentName is the Name tag of a branch's environment:
// "deploy-feature-PROJ-1234-login-fix", at most 128 characters.
func EnvironmentName(branch string) string {
	n := "deploy-" + strings.Trim(unsafeName.ReplaceAllString(branch, "-"), "-")
	if len(n) > 128 {
		n = n[:128]
	}
	return n
}

// BranchSources is a DeployRuntime's table of sources, filled once the
// config is loaded; the zero value has none.
type BranchSources struct {
	Sources   map[string]BranchSource
	Schedules map[string]Ticker
}

// Source implements DeployRuntime.
func (b *BranchSources) Source(command string) (BranchSource, bool) {
	s, ok := b.Sources[command]
	return s, ok
}

// NextTeardown implements DeployRuntime.
func (b *BranchSources) NextTeardown(command string, t time.Time) (time.Time, bool) {
	s, ok := b.Schedules[command]
	if !ok {
		return time.Time{}, false
	}
	return s.Next(t), true
}

var _ DeployRuntime = (*BranchSources)(nil)
