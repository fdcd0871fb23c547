// Package ecstest is a fake Alibaba Cloud ECS endpoint for tests: an
// httptest server on 127.0.0.1 that answers the RPC-style requests of the
// ECS API (version 2014-05-26) the way Alibaba's API reference shows them, so
// the alibaba provider and the classic alibaba-cloud-sdk-go it is built on
// are exercised end to end without an account.
//
// It keeps a small fleet in memory with ECS's state names (Pending,
// Starting, Running, Stopping, Stopped). A transition started by a call
// finishes at the next DescribeInstances (or after Options.TransitionDescribes
// of them), so a test sees "Starting" in the answer to StartInstances and
// "Running" when it looks again, with no clock. Errors carry ECS's codes and
// HTTP statuses in ECS's JSON error body ({"RequestId", "HostId", "Code",
// "Message", "Recommend"}); switches inject throttling, outages, denied
// permissions and per-instance failures in batch calls.
package ecstest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ECS instance statuses, as DescribeInstances spells them.
const (
	StatusPending  = "Pending"
	StatusStarting = "Starting"
	StatusRunning  = "Running"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
)

// APIVersion is the ECS API version the server answers.
const APIVersion = "2014-05-26"

// DefaultRegion is the region of a server whose Options do not name one.
const DefaultRegion = "cn-hangzhou"

// Instance is an ECS instance as the fake keeps it.
type Instance struct {
	ID     string
	Name   string // InstanceName
	Status string // one of the Status constants; empty means Running
	Type   string // InstanceType; empty means ecs.g7.large
	// PublicIP is the instance's own public address (PublicIpAddress), kept
	// through a stop in the standard mode and released by StopCharging.
	PublicIP string
	// EIP is the address of the Elastic IP bound to the instance. Seeding an
	// instance with one allocates it.
	EIP              string
	PrivateIP        string
	ImageID          string
	VSwitchID        string
	SecurityGroupIDs []string
	KeyPairName      string
	UserData         string // decoded from the base64 RunInstances was given
	Tags             map[string]string
	ClientToken      string
	Reboots          int
	StoppedMode      string // the mode of the last stop
	CreationTime     time.Time
}

// Options configure a Server.
type Options struct {
	// Region is the only RegionId the server accepts; empty means
	// DefaultRegion.
	Region string
	// Instances is the fleet the server starts with. An empty ID gets a
	// generated one; an empty Status means Running.
	Instances []Instance
	// EIPs are Elastic IP addresses the account has allocated, in addition to
	// those seeded on instances.
	EIPs []string
	// AccessKeys maps access key ids to secrets. When set, every request must
	// be signed (HMAC-SHA1, as the SDK signs RPC requests) with one of them;
	// nil accepts any key id and does not check signatures.
	AccessKeys map[string]string
	// PageLimit caps how many instances one DescribeInstances page holds,
	// whatever the caller asked for, so a test can see paging with a small
	// fleet. Zero means ECS's own cap of 100.
	PageLimit int
	// TransitionDescribes is how many DescribeInstances answers still show a
	// transitional status (Pending, Starting, Stopping) before it finishes.
	// Zero means the next DescribeInstances already shows it finished.
	TransitionDescribes int
}

// Call is one request the server answered.
type Call struct {
	Action string
	Params url.Values // query and form parameters together
	Status int        // the HTTP status of the answer
	Code   string     // the error code, empty on success
}

// Fault is an error the server answers in place of the next calls to an
// action.
type Fault struct {
	Status  int
	Code    string
	Message string
	// Times is how many calls answer the fault; zero means one.
	Times int
}

// Server is a fake ECS endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint, http://127.0.0.1:PORT, to give the provider.
	URL string

	srv    *httptest.Server
	region string
	keys   map[string]string
	limit  int
	holds  int

	mu        sync.Mutex
	instances map[string]*record
	eips      map[string]*eip // by address
	launches  map[string]launch
	faults    map[string][]*Fault // by action; "" is any action
	denied    map[string]bool
	refused   map[string]string // instance id -> error code
	calls     []Call
	privateN  int
}

type record struct {
	Instance
	holds int // describes left before the transition finishes
}

type eip struct {
	address, allocationID, instanceID string
}

type launch struct {
	fingerprint string
	ids         []string
}

// NewServer starts a fake ECS endpoint holding opts.Instances. Close it when
// done (t.Cleanup(s.Close)).
func NewServer(opts Options) *Server {
	s := &Server{
		region:    opts.Region,
		keys:      opts.AccessKeys,
		limit:     opts.PageLimit,
		holds:     opts.TransitionDescribes,
		instances: make(map[string]*record),
		eips:      make(map[string]*eip),
		launches:  make(map[string]launch),
		faults:    make(map[string][]*Fault),
		denied:    make(map[string]bool),
		refused:   make(map[string]string),
	}
	if s.region == "" {
		s.region = DefaultRegion
	}
	if s.limit <= 0 || s.limit > 100 {
		s.limit = 100
	}
	for _, address := range opts.EIPs {
		s.allocate(address)
	}
	for _, in := range opts.Instances {
		s.seed(in)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) seed(in Instance) {
	if in.ID == "" {
		in.ID = s.newID()
	}
	if in.Status == "" {
		in.Status = StatusRunning
	}
	if in.Type == "" {
		in.Type = "ecs.g7.large"
	}
	if in.PrivateIP == "" {
		in.PrivateIP = s.nextPrivateIP()
	}
	if in.CreationTime.IsZero() {
		in.CreationTime = time.Now().UTC()
	}
	in.Tags = cloneTags(in.Tags)
	in.SecurityGroupIDs = slices.Clone(in.SecurityGroupIDs)
	if in.EIP != "" {
		e := s.allocate(in.EIP)
		e.instanceID = in.ID
	}
	s.instances[in.ID] = &record{Instance: in, holds: s.holds}
}

func (s *Server) allocate(address string) *eip {
	if e, ok := s.eips[address]; ok {
		return e
	}
	e := &eip{address: address, allocationID: "eip-bp1" + randomSuffix(17)}
	s.eips[address] = e
	return e
}

// Add puts instances into the account as Options.Instances does, for tests
// that build their fleet after the server, and returns their ids in order.
// An instance whose id is already in the account replaces it.
func (s *Server) Add(instances ...Instance) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(instances))
	for i, in := range instances {
		if in.ID == "" {
			in.ID = s.newID()
		}
		s.seed(in)
		ids[i] = in.ID
	}
	return ids
}

// Instance returns what the server knows about one instance now, without
// counting a call or advancing a transition.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return r.snapshot(), true
}

// Instances returns every instance, sorted by id.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, r := range s.sorted() {
		out = append(out, r.snapshot())
	}
	return out
}

// AllocationID returns the AllocationId of an Elastic IP address.
func (s *Server) AllocationID(address string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.eips[address]
	if !ok {
		return "", false
	}
	return e.allocationID, true
}

// Calls returns every request answered so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the requests for one action, in order.
func (s *Server) CallsTo(action string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// FailNext makes the next calls to action ("" for any action) answer f.
func (s *Server) FailNext(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	s.faults[action] = append(s.faults[action], &f)
}

// Throttle makes the next n calls to action ("" for any action) answer ECS's
// flow-control error: HTTP 400 with Code Throttling.User.
func (s *Server) Throttle(action string, n int) {
	s.FailNext(action, Fault{Status: http.StatusBadRequest, Code: "Throttling.User",
		Message: "Request was denied due to user flow control.", Times: n})
}

// Deny makes the credentials lack permission for the ECS actions named
// (StartInstances, DeleteInstances...): real calls and dry runs answer 403
// Forbidden.RAM.
func (s *Server) Deny(actions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range actions {
		s.denied[a] = true
	}
}

// RefuseInstance makes every start, stop, reboot and delete that names id
// fail for that instance with code (IncorrectInstanceStatus when empty), as
// ECS does for an instance locked or busy with another task: per instance in
// a SuccessFirst batch, the whole call otherwise.
func (s *Server) RefuseInstance(id, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		code = "IncorrectInstanceStatus"
	}
	s.refused[id] = code
}

// apiError is an ECS error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func errMissing(name string) *apiError {
	return errorf(http.StatusBadRequest, "MissingParameter",
		"The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

func errInstanceNotFound() *apiError {
	return errorf(http.StatusNotFound, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist.")
}

func errIncorrectStatus() *apiError {
	return errorf(http.StatusForbidden, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.")
}

func errDryRun() *apiError {
	return errorf(http.StatusBadRequest, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
}

func errForbidden() *apiError {
	return errorf(http.StatusForbidden, "Forbidden.RAM", "User not authorized to operate on the specified resource, or this API doesn't support RAM.")
}

// messages are the texts of the per-instance codes RefuseInstance uses.
var messages = map[string]string{
	"IncorrectInstanceStatus":   "The current status of the resource does not support this operation.",
	"InstanceLockedForSecurity": "The specified operation is denied as your instance is locked for security reasons.",
	"OperationConflict":         "Request was denied due to conflict with a previous request, please try again later.",
}

// body is the JSON object of a successful answer; RequestId is added to it.
type body = map[string]any

type handler func(s *Server, p url.Values) (body, *apiError)

var handlers = map[string]handler{
	"DescribeInstances":    (*Server).describeInstances,
	"StartInstances":       (*Server).startInstances,
	"StopInstances":        (*Server).stopInstances,
	"RebootInstances":      (*Server).rebootInstances,
	"DeleteInstances":      (*Server).deleteInstances,
	"RunInstances":         (*Server).runInstances,
	"DescribeEipAddresses": (*Server).describeEipAddresses,
	"AssociateEipAddress":  (*Server).associateEipAddress,
	"TagResources":         (*Server).tagResources,
	"UntagResources":       (*Server).untagResources,
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	requestID := newRequestID()
	if err := r.ParseForm(); err != nil {
		s.writeError(w, requestID, errorf(http.StatusBadRequest, "InvalidParameter", "The request could not be parsed: %v", err))
		return
	}
	params := r.Form
	action := params.Get("Action")

	s.mu.Lock()
	defer s.mu.Unlock()
	out, aerr := s.handle(r.Method, action, params)
	call := Call{Action: action, Params: params, Status: http.StatusOK}
	if aerr != nil {
		call.Status, call.Code = aerr.status, aerr.code
	}
	s.calls = append(s.calls, call)
	if aerr != nil {
		s.writeError(w, requestID, aerr)
		return
	}
	out["RequestId"] = requestID
	b, err := json.Marshal(out)
	if err != nil {
		s.writeError(w, requestID, errorf(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error."))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_, _ = w.Write(b)
}

func (s *Server) handle(method, action string, p url.Values) (body, *apiError) {
	if err := s.checkCommon(method, p); err != nil {
		return nil, err
	}
	h, ok := handlers[action]
	if !ok {
		return nil, errorf(http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
	}
	if f := s.takeFault(action); f != nil {
		return nil, errorf(f.Status, f.Code, "%s", f.Message)
	}
	if s.denied[action] {
		return nil, errForbidden()
	}
	return h(s, p)
}

// checkCommon checks the parameters every ECS RPC request carries.
func (s *Server) checkCommon(method string, p url.Values) *apiError {
	if method != http.MethodGet && method != http.MethodPost {
		return errorf(http.StatusBadRequest, "UnsupportedHTTPMethod", "This http method is not supported.")
	}
	for _, name := range []string{"Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Signature", "RegionId"} {
		if p.Get(name) == "" {
			return errMissing(name)
		}
	}
	switch {
	case p.Get("Version") != APIVersion:
		return errorf(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version is not valid.")
	case !strings.EqualFold(p.Get("Format"), "JSON"):
		return errorf(http.StatusBadRequest, "InvalidParameter.Format", "This fake answers only Format=JSON (the SDK's default).")
	case p.Get("SignatureMethod") != "HMAC-SHA1":
		return errorf(http.StatusBadRequest, "InvalidSignatureMethod", "Specified signature method is not supported.")
	case p.Get("RegionId") != s.region:
		return errorf(http.StatusBadRequest, "InvalidRegionId.NotFound", "The specified RegionId %q does not exist; this endpoint serves %s.", p.Get("RegionId"), s.region)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", p.Get("Timestamp")); err != nil {
		return errorf(http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	}
	if s.keys == nil {
		return nil
	}
	secret, ok := s.keys[p.Get("AccessKeyId")]
	if !ok {
		return errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	if !hmac.Equal([]byte(p.Get("Signature")), []byte(signature(method, p, secret))) {
		return errorf(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
	}
	return nil
}

// signature computes an RPC request's signature: HMAC-SHA1 over
// METHOD&%2F&percent-encoded(sorted, percent-encoded parameters).
func signature(method string, p url.Values, secret string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = percentEncode(k) + "=" + percentEncode(p.Get(k))
	}
	toSign := method + "&%2F&" + percentEncode(strings.Join(pairs, "&"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func percentEncode(v string) string {
	e := url.QueryEscape(v)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

func (s *Server) takeFault(action string) *Fault {
	for _, key := range []string{action, ""} {
		queue := s.faults[key]
		if len(queue) == 0 {
			continue
		}
		f := queue[0]
		f.Times--
		if f.Times <= 0 {
			s.faults[key] = queue[1:]
		}
		return f
	}
	return nil
}

func (s *Server) writeError(w http.ResponseWriter, requestID string, e *apiError) {
	host := "ecs." + s.region + ".aliyuncs.com"
	body, _ := json.Marshal(map[string]string{
		"RequestId": requestID,
		"HostId":    host,
		"Code":      e.code,
		"Message":   e.message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.code) + "&product=Ecs&requestId=" + requestID,
	})
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func (s *Server) sorted() []*record {
	out := make([]*record, 0, len(s.instances))
	for _, r := range s.instances {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (r *record) snapshot() Instance {
	in := r.Instance
	in.Tags = cloneTags(r.Tags)
	in.SecurityGroupIDs = slices.Clone(r.SecurityGroupIDs)
	return in
}

// settle finishes r's transition, if any.
func (s *Server) settle(r *record) {
	switch r.Status {
	case StatusPending, StatusStarting:
		r.Status = StatusRunning
	case StatusStopping:
		r.Status = StatusStopped
		if r.StoppedMode == "StopCharging" {
			// Economical mode gives back the instance's own public address.
			r.PublicIP = ""
		}
	}
}

// begin puts r into a transitional status that the next describes will see.
func (s *Server) begin(r *record, status string) {
	r.Status = status
	r.holds = s.holds
}

func (s *Server) newID() string {
	for {
		id := "i-bp1" + randomSuffix(17)
		if _, taken := s.instances[id]; !taken {
			return id
		}
	}
}

func (s *Server) nextPrivateIP() string {
	n := s.privateN
	s.privateN++
	return fmt.Sprintf("172.16.%d.%d", (n/250)%256, n%250+2)
}

func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

func newRequestID() string {
	return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", rand.Uint32(), rand.Uint32()&0xffff,
		rand.Uint32()&0xffff, rand.Uint32()&0xffff, rand.Uint64()&0xffffffffffff)
}

func cloneTags(tags map[string]string) map[string]string {
	if tags == nil {
		return nil
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}
