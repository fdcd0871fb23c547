// Package consultest is a local server that answers the part of Consul's
// HTTP API that cleaning up a node uses, with the semantics of Consul's API
// reference: the catalog (register, deregister, a node and its services),
// node health checks, sessions (create with checks, behavior and lock
// delay; list; destroy, which releases or deletes the keys a session holds)
// and the KV store (get, recurse, keys, put with cas, acquire and release,
// delete), with ACL tokens checked when a token is configured.
//
// Consul cannot be installed here, so tests of package consul run against
// this server, and against `consul agent -dev` as well when one is on PATH:
// where this server and Consul differ, Consul is right and this server is
// the bug.
//
// What it leaves out: blocking queries (an index is returned, never waited
// on), session TTLs (accepted and validated, never expired), health checks
// that run (a check's status is what was registered), namespaces,
// partitions, and every endpoint not listed above.
package consultest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server. The zero value is a server without ACLs in
// datacenter dc1.
type Options struct {
	// Token turns ACLs on, with the default policy deny: Token is then the
	// one token that exists, a management token. A request without a token
	// is the anonymous token's, which may read nothing (reads answer as if
	// there were nothing, and say results were filtered) and write nothing
	// (403 Permission denied); a request with another token is refused with
	// 403 ACL not found.
	Token string
	// Datacenter is the server's datacenter; default dc1. A request for
	// another (?dc=) fails as Consul's does when it knows no path to it.
	Datacenter string
	// NodeName is the agent's own node, registered at start with a passing
	// serfHealth check, and the node a session is created on when the
	// request names none; default consultest.
	NodeName string
	// NowFunc is the clock lock delays are measured with; default
	// time.Now.
	NowFunc func() time.Time
}

// Server is a Consul HTTP API on a loopback port.
type Server struct {
	// URL is http://127.0.0.1:PORT; Addr is 127.0.0.1:PORT.
	URL, Addr string

	http *httptest.Server
	opts Options

	mu        sync.Mutex
	index     uint64
	nodes     map[string]*node
	sessions  map[string]*session
	kv        map[string]*entry
	lockDelay map[string]time.Time // key → when its lock delay ends
}

// New starts a server and stops it when t is done.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := Start(opts)
	t.Cleanup(s.Close)
	return s
}

// Start starts a server; Close stops it.
func Start(opts Options) *Server {
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	if opts.NodeName == "" {
		opts.NodeName = "consultest"
	}
	if opts.NowFunc == nil {
		opts.NowFunc = time.Now
	}
	s := &Server{opts: opts, nodes: map[string]*node{}, sessions: map[string]*session{}, kv: map[string]*entry{}, lockDelay: map[string]time.Time{}}
	s.index = 1
	s.nodes[opts.NodeName] = &node{
		ID: newUUID(), Node: opts.NodeName, Address: "127.0.0.1", Datacenter: opts.Datacenter,
		TaggedAddresses: map[string]string{}, Meta: map[string]string{}, CreateIndex: 1, ModifyIndex: 1,
		services: map[string]*service{},
		checks: map[string]*check{"serfHealth": {Node: opts.NodeName, CheckID: "serfHealth", Name: "Serf Health Status",
			Status: "passing", Output: "Agent alive and reachable", ServiceTags: []string{}, Definition: map[string]any{},
			CreateIndex: 1, ModifyIndex: 1}},
	}
	s.http = httptest.NewServer(s.routes())
	s.URL = s.http.URL
	s.Addr = strings.TrimPrefix(s.http.URL, "http://")
	return s
}

// Close stops the server: requests after it find nothing listening.
func (s *Server) Close() { s.http.Close() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/catalog/register", s.catalogRegister)
	mux.HandleFunc("PUT /v1/catalog/deregister", s.catalogDeregister)
	mux.HandleFunc("GET /v1/catalog/nodes", s.catalogNodes)
	mux.HandleFunc("GET /v1/catalog/node/{node}", s.catalogNode)
	mux.HandleFunc("GET /v1/health/node/{node}", s.healthNode)
	mux.HandleFunc("PUT /v1/session/create", s.sessionCreate)
	mux.HandleFunc("PUT /v1/session/destroy/{id}", s.sessionDestroy)
	mux.HandleFunc("GET /v1/session/info/{id}", s.sessionInfo)
	mux.HandleFunc("GET /v1/session/node/{node}", s.sessionNode)
	mux.HandleFunc("GET /v1/session/list", s.sessionList)
	mux.HandleFunc("GET /v1/kv/{key...}", s.kvGet)
	mux.HandleFunc("PUT /v1/kv/{key...}", s.kvPut)
	mux.HandleFunc("DELETE /v1/kv/{key...}", s.kvDelete)
	mux.HandleFunc("GET /v1/status/leader", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, "127.0.0.1:8300")
	})
	return s.guard(mux)
}

// access is what a request's token may do.
type access int

const (
	accessAll       access = iota // ACLs off, or the management token
	accessAnonymous               // no token: read and write nothing
)

type accessKey struct{}

// guard checks the datacenter and the token before any handler runs, and
// sets the headers every Consul answer has.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Default-ACL-Policy", "allow")
		if s.opts.Token != "" {
			w.Header().Set("X-Consul-Default-ACL-Policy", "deny")
		}
		if dc := r.URL.Query().Get("dc"); dc != "" && dc != s.opts.Datacenter {
			http.Error(w, "No path to datacenter", http.StatusInternalServerError)
			return
		}
		a := accessAll
		if s.opts.Token != "" {
			switch tok := token(r); tok {
			case s.opts.Token:
			case "":
				a = accessAnonymous
			default:
				http.Error(w, "ACL not found", http.StatusForbidden)
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(contextWith(r, a)))
	})
}

// token is the request's token: X-Consul-Token, a bearer token, or
// ?token=, in Consul's order.
func token(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

// denied answers a write the anonymous token may not make, in Consul's
// words.
func denied(w http.ResponseWriter, perm, on string) {
	http.Error(w, fmt.Sprintf("Permission denied: anonymous token lacks permission '%s' on %q", perm, on), http.StatusForbidden)
}

// meta sets the headers of a read: the index and, when the token's
// results were filtered, Consul's header saying so.
func (s *Server) meta(w http.ResponseWriter, filtered bool) {
	w.Header().Set("X-Consul-Index", fmt.Sprint(s.index))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	if filtered {
		w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

// fail answers an error as Consul does for one its RPC layer returns.
func fail(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), http.StatusInternalServerError)
}

// badRequest answers a request Consul could not decode.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

// next advances the index for a write and returns it.
func (s *Server) next() uint64 {
	s.index++
	return s.index
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
