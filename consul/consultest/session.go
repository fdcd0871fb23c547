package consultest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// session is a Consul session as the API answers it.
type session struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           string
	NodeChecks    []string
	ServiceChecks []serviceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

type serviceCheck struct {
	ID        string
	Namespace string `json:",omitempty"`
}

const (
	defaultLockDelay = 15 * time.Second
	maxLockDelay     = 60 * time.Second
	// A number or duration below this is taken as seconds: clients send
	// LockDelay: 5 meaning 5s, which in nanoseconds would be nothing.
	lockDelayMinThreshold = 1000
)

func (s *Server) sessionCreate(w http.ResponseWriter, r *http.Request) {
	sess := &session{Node: s.opts.NodeName, LockDelay: defaultLockDelay, Behavior: "release"}
	var raw map[string]json.RawMessage
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
			badRequest(w, "Request decode failed: %v", err)
			return
		}
	}
	checksGiven := false
	for k, v := range raw {
		var err error
		switch strings.ToLower(k) {
		case "name":
			err = json.Unmarshal(v, &sess.Name)
		case "node":
			var n string
			if err = json.Unmarshal(v, &n); err == nil && n != "" {
				sess.Node = n
			}
		case "behavior":
			err = json.Unmarshal(v, &sess.Behavior)
		case "ttl":
			err = json.Unmarshal(v, &sess.TTL)
		case "lockdelay":
			sess.LockDelay, err = lockDelay(v)
		case "checks", "nodechecks":
			checksGiven = true
			var ids []string
			if err = json.Unmarshal(v, &ids); err == nil {
				sess.NodeChecks = append(sess.NodeChecks, ids...)
			}
		case "servicechecks":
			checksGiven = true
			err = json.Unmarshal(v, &sess.ServiceChecks)
		}
		if err != nil {
			badRequest(w, "Request decode failed: %s: %v", k, err)
			return
		}
	}
	// Without any checks named, a session is tied to the node's serf
	// health; an empty list ties it to none.
	if !checksGiven {
		sess.NodeChecks = []string{"serfHealth"}
	}
	if accessOf(r) == accessAnonymous {
		denied(w, "session:write", sess.Node)
		return
	}
	switch sess.Behavior {
	case "":
		sess.Behavior = "release"
	case "release", "delete":
	default:
		fail(w, "Invalid session behavior: %s", sess.Behavior)
		return
	}
	if sess.TTL != "" {
		ttl, err := time.ParseDuration(sess.TTL)
		if err != nil {
			fail(w, "Session TTL '%s' invalid: %v", sess.TTL, err)
			return
		}
		if ttl != 0 && (ttl < 10*time.Second || ttl > 24*time.Hour) {
			fail(w, "Invalid Session TTL '%d', must be between [%v=%v]", ttl, 10*time.Second, 24*time.Hour)
			return
		}
	}
	sess.LockDelay = min(sess.LockDelay, maxLockDelay)
	n := s.nodes[sess.Node]
	if n == nil {
		fail(w, "Missing node registration")
		return
	}
	ids := slices.Clone(sess.NodeChecks)
	for _, sc := range sess.ServiceChecks {
		ids = append(ids, sc.ID)
	}
	for _, id := range ids {
		c := n.checks[id]
		if c == nil {
			fail(w, "Missing check '%s' registration", id)
			return
		}
		if c.Status == "critical" {
			fail(w, "Check '%s' is in %s state", id, c.Status)
			return
		}
	}
	idx := s.next()
	sess.ID, sess.CreateIndex, sess.ModifyIndex = newUUID(), idx, idx
	s.sessions[sess.ID] = sess
	writeJSON(w, map[string]string{"ID": sess.ID})
}

// lockDelay reads a LockDelay as Consul does: a duration string or a
// number of nanoseconds, either taken as seconds when below 1000.
func lockDelay(v json.RawMessage) (time.Duration, error) {
	var d time.Duration
	var str string
	var num float64
	switch {
	case json.Unmarshal(v, &str) == nil:
		var err error
		if d, err = time.ParseDuration(str); err != nil {
			return 0, err
		}
	case json.Unmarshal(v, &num) == nil:
		d = time.Duration(num)
	default:
		return 0, fmt.Errorf("LockDelay %s is neither a duration nor a number", v)
	}
	if d < lockDelayMinThreshold {
		d *= time.Second
	}
	return d, nil
}

func (s *Server) sessionDestroy(w http.ResponseWriter, r *http.Request) {
	sess := s.sessions[r.PathValue("id")]
	if accessOf(r) == accessAnonymous {
		on := ""
		if sess != nil {
			on = sess.Node
		}
		denied(w, "session:write", on)
		return
	}
	if sess != nil {
		s.destroySession(sess, s.next())
	}
	// Destroying a session that is gone is success.
	writeJSON(w, true)
}

// destroySession invalidates sess: the keys it holds are released (their
// Session cleared) or deleted, by its behavior, and each gets the session's
// lock delay, during which no session may acquire it.
func (s *Server) destroySession(sess *session, idx uint64) {
	delete(s.sessions, sess.ID)
	until := s.opts.NowFunc().Add(sess.LockDelay)
	for key, e := range s.kv {
		if e.Session != sess.ID {
			continue
		}
		if sess.Behavior == "delete" {
			delete(s.kv, key)
		} else {
			e.Session, e.ModifyIndex = "", idx
		}
		if sess.LockDelay > 0 {
			s.lockDelay[key] = until
		}
	}
}

func (s *Server) sessionsOf(nodeName string) []*session {
	var out []*session
	for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
		if sess := s.sessions[id]; sess.Node == nodeName {
			out = append(out, sess)
		}
	}
	return out
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	out := []*session{}
	sess := s.sessions[r.PathValue("id")]
	if sess != nil && accessOf(r) == accessAll {
		out = append(out, sess)
	}
	s.meta(w, sess != nil && accessOf(r) != accessAll)
	writeJSON(w, out)
}

func (s *Server) sessionNode(w http.ResponseWriter, r *http.Request) {
	out := []*session{}
	all := s.sessionsOf(r.PathValue("node"))
	if accessOf(r) == accessAll {
		out = append(out, all...)
	}
	s.meta(w, len(all) > len(out))
	writeJSON(w, out)
}

func (s *Server) sessionList(w http.ResponseWriter, r *http.Request) {
	out := []*session{}
	if accessOf(r) == accessAll {
		for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
			out = append(out, s.sessions[id])
		}
	}
	s.meta(w, len(s.sessions) > len(out))
	writeJSON(w, out)
}
