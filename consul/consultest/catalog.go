package consultest

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// node is a catalog node, with its services and checks, as Consul answers
// it.
type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64

	services map[string]*service
	checks   map[string]*check
}

type service struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	EnableTagOverride bool
	CreateIndex       uint64
	ModifyIndex       uint64
}

type check struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  map[string]any
	CreateIndex uint64
	ModifyIndex uint64
}

func contextWith(r *http.Request, a access) context.Context {
	return context.WithValue(r.Context(), accessKey{}, a)
}

func accessOf(r *http.Request) access {
	a, _ := r.Context().Value(accessKey{}).(access)
	return a
}

// registerRequest is the body of PUT /v1/catalog/register.
type registerRequest struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *service
	Check           *check
	Checks          []*check
	SkipNodeUpdate  bool
}

func (s *Server) catalogRegister(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badRequest(w, "Request decode failed: %v", err)
		return
	}
	if accessOf(r) == accessAnonymous {
		denied(w, "node:write", req.Node)
		return
	}
	if req.Datacenter != "" && req.Datacenter != s.opts.Datacenter {
		fail(w, "No path to datacenter")
		return
	}
	switch {
	case req.Node == "":
		fail(w, "Must provide node")
		return
	case req.Address == "" && !req.SkipNodeUpdate:
		fail(w, "Must provide address if SkipNodeUpdate is not set")
		return
	case req.Service != nil && req.Service.Service == "":
		fail(w, "Must provide service name (Service.Service) with ID %q", req.Service.ID)
		return
	}
	if req.Check != nil {
		req.Checks = append(req.Checks, req.Check)
	}
	n := s.nodes[req.Node]
	if n == nil && req.SkipNodeUpdate {
		fail(w, "Missing node registration")
		return
	}
	// Validate every check before changing anything: a register is one
	// transaction.
	for _, c := range req.Checks {
		if c.CheckID == "" {
			c.CheckID = c.Name
		}
		if c.CheckID == "" {
			fail(w, "Missing check ID")
			return
		}
		if c.Node == "" {
			c.Node = req.Node
		}
		if c.Node != req.Node {
			fail(w, "Node mismatch for check %q: the check is for node %q, the request registers %q", c.CheckID, c.Node, req.Node)
			return
		}
		if c.ServiceID != "" {
			known := req.Service != nil && cmp.Or(req.Service.ID, req.Service.Service) == c.ServiceID
			if !known && (n == nil || n.services[c.ServiceID] == nil) {
				fail(w, "Unknown service ID %q for check ID %q", c.ServiceID, c.CheckID)
				return
			}
		}
		switch c.Status {
		case "":
			c.Status = "critical" // Consul's default for a new check
		case "passing", "warning", "critical", "maintenance":
		default:
			fail(w, "Invalid check status %q", c.Status)
			return
		}
	}

	idx := s.next()
	if n == nil {
		n = &node{CreateIndex: idx, services: map[string]*service{}, checks: map[string]*check{}}
		s.nodes[req.Node] = n
	}
	if !req.SkipNodeUpdate {
		n.ID, n.Node, n.Address, n.Datacenter, n.ModifyIndex = req.ID, req.Node, req.Address, s.opts.Datacenter, idx
		n.TaggedAddresses, n.Meta = orEmpty(req.TaggedAddresses), orEmpty(req.NodeMeta)
	}
	if sv := req.Service; sv != nil {
		if sv.ID == "" {
			sv.ID = sv.Service
		}
		if sv.Tags == nil {
			sv.Tags = []string{}
		}
		sv.Meta = orEmpty(sv.Meta)
		sv.CreateIndex, sv.ModifyIndex = idx, idx
		if old := n.services[sv.ID]; old != nil {
			sv.CreateIndex = old.CreateIndex
		}
		n.services[sv.ID] = sv
	}
	for _, c := range req.Checks {
		c.CreateIndex, c.ModifyIndex = idx, idx
		if old := n.checks[c.CheckID]; old != nil {
			c.CreateIndex = old.CreateIndex
		}
		if sv := n.services[c.ServiceID]; sv != nil {
			c.ServiceName, c.ServiceTags = sv.Service, sv.Tags
		}
		if c.ServiceTags == nil {
			c.ServiceTags = []string{}
		}
		if c.Definition == nil {
			c.Definition = map[string]any{}
		}
		n.checks[c.CheckID] = c
		// A session tied to a check that turns critical is invalidated.
		if c.Status == "critical" {
			for _, sess := range s.sessionsOf(req.Node) {
				if slices.Contains(sess.NodeChecks, c.CheckID) || slices.ContainsFunc(sess.ServiceChecks, func(sc serviceCheck) bool { return sc.ID == c.CheckID }) {
					s.destroySession(sess, idx)
				}
			}
		}
	}
	writeJSON(w, true)
}

// deregisterRequest is the body of PUT /v1/catalog/deregister.
type deregisterRequest struct {
	Node       string
	Datacenter string
	ServiceID  string
	CheckID    string
}

func (s *Server) catalogDeregister(w http.ResponseWriter, r *http.Request) {
	var req deregisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		badRequest(w, "Request decode failed: %v", err)
		return
	}
	if accessOf(r) == accessAnonymous {
		denied(w, "node:write", req.Node)
		return
	}
	if req.Datacenter != "" && req.Datacenter != s.opts.Datacenter {
		fail(w, "No path to datacenter")
		return
	}
	if req.Node == "" {
		fail(w, "Must provide node")
		return
	}
	n := s.nodes[req.Node]
	if n == nil {
		// Deregistering what is not there is success.
		writeJSON(w, true)
		return
	}
	idx := s.next()
	switch {
	case req.ServiceID != "":
		delete(n.services, req.ServiceID)
		for id, c := range n.checks {
			if c.ServiceID == req.ServiceID {
				delete(n.checks, id)
			}
		}
	case req.CheckID != "":
		delete(n.checks, req.CheckID)
	default:
		// The node goes with its services and checks, and its sessions
		// are invalidated, each by its behavior.
		for _, sess := range s.sessionsOf(req.Node) {
			s.destroySession(sess, idx)
		}
		delete(s.nodes, req.Node)
	}
	writeJSON(w, true)
}

func (s *Server) catalogNodes(w http.ResponseWriter, r *http.Request) {
	out := []*node{}
	if accessOf(r) == accessAll {
		for _, name := range slices.Sorted(maps.Keys(s.nodes)) {
			out = append(out, s.nodes[name])
		}
	}
	s.meta(w, accessOf(r) != accessAll && len(s.nodes) > 0)
	writeJSON(w, out)
}

func (s *Server) catalogNode(w http.ResponseWriter, r *http.Request) {
	n := s.nodes[r.PathValue("node")]
	if n != nil && accessOf(r) != accessAll {
		// The anonymous token may not read it: the answer is the one for
		// a node that does not exist, and says it was filtered.
		s.meta(w, true)
		writeJSON(w, nil)
		return
	}
	s.meta(w, false)
	if n == nil {
		// Consul answers 200 and null for a node it does not know.
		writeJSON(w, nil)
		return
	}
	writeJSON(w, struct {
		Node     *node
		Services map[string]*service
	}{n, n.services})
}

func (s *Server) healthNode(w http.ResponseWriter, r *http.Request) {
	out := []*check{}
	n := s.nodes[r.PathValue("node")]
	if n != nil && accessOf(r) == accessAll {
		for _, id := range slices.Sorted(maps.Keys(n.checks)) {
			out = append(out, n.checks[id])
		}
	}
	s.meta(w, n != nil && len(n.checks) > 0 && accessOf(r) != accessAll)
	writeJSON(w, out)
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
