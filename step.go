package switchboard

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// A workflow step type is declared once, as a StepType value, in the package
// of the dependency it talks to (built-in steps in steps/, GitHub steps in
// github/...). cmd/switchboard puts every step type in a Registry; config
// checks a step's parameters against its declaration, the engine type-checks
// expressions against its outputs and calls its RunFunc. Neither names a
// step type.

// ValueType is the type of a step parameter or output.
type ValueType int

const (
	TypeText     ValueType = iota // a string; a parameter may hold {{ expressions }}
	TypeBool                      // true or false
	TypeInt                       // a whole number
	TypeDuration                  // a Go duration such as 90s, kept as written
	TypeStrings                   // a list of strings, or one string (a {{ }} that yields a list)
	TypeTags                      // a mapping of strings
	TypeAny                       // any value, as JSON
	TypeUsers                     // user ids and group:NAME, expanded to user ids (parameters only)
	TypeCodes                     // HTTP status codes: one or a list (parameters only)
	TypeObject                    // a mapping with the keys in Fields
	TypeObjects                   // a list of such mappings
	TypeIP                        // an IP address
)

// Param declares one parameter of a step type.
type Param struct {
	Name     string
	Type     ValueType
	Required bool
	// Values are the allowed values of a TypeText parameter, unless it is
	// a {{ template }}.
	Values []string
	// Min is the least value of a TypeInt parameter.
	Min int
	// Hint says what a required parameter is for, with an example; it is
	// shown when the parameter is missing.
	Hint string
	// Instance marks parameters whose literal values are instance ids of
	// the step's cloud: config checks them against the cloud's id format.
	Instance bool
	// Channel marks a parameter that names a chat channel.
	Channel bool
	// URL marks a parameter that is an http(s) URL.
	URL bool
	// Pattern marks a parameter that is a regular expression; it is not a
	// template, and its named groups may be the step's outputs.
	Pattern bool
	// Secret marks a parameter whose value is a secret: read from the
	// environment or a file like every secret, and never shown.
	Secret bool
	// Fields are the keys of a TypeObject parameter, or of each item of a
	// TypeObjects one.
	Fields []Param
	// Example shows a value, for the problem when one is missing or wrong.
	Example string
}

// Output declares one value a step leaves for the steps after it, as
// steps.ID.NAME.
type Output struct {
	Name string
	Type ValueType
}

// StepType is one kind of workflow step.
type StepType struct {
	// Kind is the key that names the step in a workflow (notify, start...).
	Kind string
	// Params are the step's parameters, in the order the docs list them.
	// A parameter named "cloud" picks the cloud the step acts on.
	Params []Param
	// Raw marks a step whose parameters are data, never templates: the
	// built-in commands' step, whose parameters hold what a user typed.
	Raw bool
	// Requires names the top-level config section the step needs (chef,
	// consul): config reports a workflow that uses the step without it.
	Requires string
	// Internal marks a step Switchboard plans for its own commands
	// (instances, the deploy steps); a workflow cannot name it.
	Internal bool
	// Free marks a step whose parameters are NAME: value pairs of the
	// user's choosing (set); Params is then empty.
	Free bool
	// Targets lists the parameters that select instances, of which a
	// step needs exactly one.
	Targets []string
	// OnCloud is set for steps that act on a cloud: a workflow using one
	// needs a cloud.
	OnCloud bool
	// Outputs are the step's outputs; OutputsFunc, when set, computes them
	// from the configured parameters instead (extract, set).
	Outputs     []Output
	OutputsFunc func(params map[string]any) ([]Output, error)
	// CheckFunc checks configured parameters beyond their types; params
	// holds them as decoded (templates as written). It returns the
	// problems found, each naming its parameter.
	CheckFunc func(params map[string]any) []ParamProblem
	// RunFunc runs the step. It returns an error only for a transient
	// failure: nothing was decided, and the run is tried again later.
	RunFunc func(ctx context.Context, s StepRun) error
	// Holdings, set on the step type of an integration that cleans up
	// after instances, lists what the integration holds for instances,
	// for the sweep to find what a lost instance left behind.
	Holdings HoldingsFunc
}

// ParamProblem is something wrong with one parameter of a configured step.
type ParamProblem struct {
	Param string
	Msg   string
	// At names the parameter whose line to report the problem at when
	// Param itself is missing (a half key pair is reported where the
	// other half is).
	At string
}

// OutputsOf returns the outputs of a step of this type configured with
// params.
func (t *StepType) OutputsOf(params map[string]any) ([]Output, error) {
	if t.OutputsFunc != nil {
		return t.OutputsFunc(params)
	}
	return t.Outputs, nil
}

// Param returns the parameter called name.
func (t *StepType) Param(name string) (Param, bool) {
	for _, p := range t.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Registry holds what a Switchboard knows how to do: its step types. It is
// filled in cmd/switchboard and read by config and the engine.
type Registry struct {
	steps  []*StepType
	clouds []*CloudType
}

// NewRegistry returns a registry of the given step types. Two types of one
// kind are a programming error.
func NewRegistry(steps ...StepType) *Registry {
	r := &Registry{}
	for i := range steps {
		r.AddStep(steps[i])
	}
	return r
}

// AddStep registers a step type.
func (r *Registry) AddStep(t StepType) {
	if _, dup := r.Step(t.Kind); dup {
		panic(fmt.Sprintf("switchboard: step type %q registered twice", t.Kind))
	}
	if t.RunFunc == nil {
		panic(fmt.Sprintf("switchboard: step type %q has no RunFunc", t.Kind))
	}
	r.steps = append(r.steps, &t)
}

// Step returns the step type of kind.
func (r *Registry) Step(kind string) (*StepType, bool) {
	if r == nil {
		return nil, false
	}
	i := slices.IndexFunc(r.steps, func(t *StepType) bool { return t.Kind == kind })
	if i < 0 {
		return nil, false
	}
	return r.steps[i], true
}

// StepKinds lists the registered step kinds in registration order.
func (r *Registry) StepKinds() []string {
	if r == nil {
		return nil
	}
	kinds := make([]string, len(r.steps))
	for i, t := range r.steps {
		kinds[i] = t.Kind
	}
	return kinds
}

// StepRun is what a running step may do: read its run and parameters, act
// on clouds, say things in the run's channel, keep progress across waits and
// crashes, and finish. The engine implements it; a step's RunFunc gets one
// per call.
type StepRun interface {
	// Run is the run the step belongs to. Steps read it; they change it
	// only through the methods below.
	Run() *Run
	// Step is the plan step being run.
	Step() Step
	// Params decodes the step's parameters, with every {{ template }}
	// rendered, into v. When they do not fit it fails the step and
	// returns false: the RunFunc then returns nil.
	Params(v any) bool
	Now() time.Time
	// PollInterval is how long to park between checks of something that
	// changes on its own (an instance state, a decision).
	PollInterval() time.Duration
	// Cloud returns the provider called name ("" means the run's cloud)
	// and its name.
	Cloud(name string) (Provider, string, bool)
	// HTTPClient is the client for requests to URLs a workflow names: it
	// goes only where the config's http.allow says (see AllowList), follows
	// no redirect and is bounded in time. nil when the config allows none.
	HTTPClient() *http.Client

	// Say queues a message to the run's channel. name tells the step's
	// messages apart: with the step it makes the message's key, so a
	// retried step never posts one twice. The returned message may be
	// changed (channel, thread, approval) until the next Say.
	Say(name, text string) *Message
	// Audit records an audit line for the run.
	Audit(kind, subject, outcome, detail string)

	// Progress reads the step's own progress, saved by Stage or
	// Checkpoint, into v; it leaves v alone when there is none.
	Progress(v any) error
	// Stage keeps v as the step's progress, written with this advance's
	// messages in one commit.
	Stage(v any) error
	// Checkpoint writes v as the step's progress durably now: call it
	// before a side effect a retry must not repeat.
	Checkpoint(ctx context.Context, v any) error
	// Wait parks the run for d; the step runs again after it.
	Wait(d time.Duration)

	// Done finishes the step with its outputs and moves on.
	Done(outputs map[string]any) error
	// Succeed finishes the step with the run's result (already said in
	// the channel) and moves on.
	Succeed(result string) error
	// Fail ends the main steps with msg: the on_error steps run next when
	// there are any and quiet is false; otherwise the run fails and,
	// unless quiet, the channel is told.
	Fail(msg string, quiet bool) error
	// Abort fails the whole run at once with text, told to the channel;
	// on_error steps do not run.
	Abort(text string) error
	// CloudError handles a failed cloud call: throttling parks the run, a
	// transient failure is returned to be retried, anything the cloud
	// refused fails the step with "Could not WHAT: reason".
	CloudError(err error, what string) error

	// Lock takes the instance locks (keys "cloud/id") for the run, or
	// returns the id of the run holding one of them.
	Lock(ctx context.Context, keys []string) (holder string, err error)
	// ApprovalsAvailable reports whether runs here can ask people.
	ApprovalsAvailable() bool
	// OpenApproval records an approval request, posts it with its
	// buttons and parks the run.
	OpenApproval(ctx context.Context, id, text string, rule ApprovalRule) error
	// AwaitApproval checks an approval: while it is pending it parks the
	// run and returns nil; once decided it returns it and whether it
	// counts as approved.
	AwaitApproval(ctx context.Context, id string) (*Approval, bool, error)
	// Policy returns the first rule of rules whose condition holds for
	// the input, or nil.
	Policy(rules []PolicyRule, in PolicyInput) (*PolicyRule, error)
	// Recall returns what Switchboard last knew of an instance of the
	// named cloud ("" means the run's), after the cloud may have forgotten
	// it.
	Recall(ctx context.Context, cloud, id string) (Instance, bool, error)
	// Settle marks an instance's end as looked at, so that a sweep does
	// not hand it to cleanup again; Unsettled lists those not looked at.
	Settle(ctx context.Context, cloud, id string) error
	Unsettled(ctx context.Context, cloud string) ([]Instance, error)
	// Remember records what is known of instances of the named cloud ("",
	// the run's) beyond what the cloud shows, as a describe would.
	Remember(cloud string, insts []Instance)
	// Holdings asks every registered step type that declares Holdings
	// what its integration holds for instances. The error joins those
	// that could not answer; the others' entries are returned with it.
	Holdings(ctx context.Context) ([]Holding, error)
	// Emit starts the workflows an event is for, as if it had come in.
	Emit(ctx context.Context, ev Event) ([]string, error)
}

// PolicyInput is what a policy rule's condition sees: the action, who asked
// where, and the instance.
type PolicyInput struct {
	Action   string
	User     string
	Channel  string
	Command  string
	Instance Instance
}

// TagText writes tags as key=value pairs sorted by key: "env=dev,role=web".
func TagText(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}

// HasTags reports whether have holds every tag of want.
func HasTags(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// FormatValue writes a value of an expression or a parameter as text: lists
// joined with ", ", nil as "".
func FormatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = FormatValue(e)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// Humanize writes a duration as people write it: 72h, 1h30m, 15m, 90s.
func Humanize(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
