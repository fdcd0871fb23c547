package testenv

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Gate stands at a loopback address of its own in front of a server and
// forwards every connection to it, until it is shut: then the address
// refuses connections, and the ones open are cut, as when the server
// behind it goes down. Opened again, it listens at the same address, as
// when the server comes back. Use it for a peer that stops and starts
// under a client that keeps its address (Consul, a Chef server, an API).
type Gate struct {
	// Addr is where clients connect: 127.0.0.1:PORT.
	Addr   string
	target string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewGate starts a gate, open, in front of target (HOST:PORT) and closes it
// when t is done.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: gate: %v", err)
	}
	g := &Gate{Addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	g.serve(l)
	t.Cleanup(func() { g.Shut(); g.wg.Wait() })
	return g
}

// Shut stops listening and cuts every connection that goes through the
// gate: the next connection is refused.
func (g *Gate) Shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.l != nil {
		g.l.Close()
		g.l = nil
	}
	for c := range g.conns {
		c.Close()
	}
}

// Open listens at Addr again. The port was the gate's until Shut; an
// outgoing connection may hold it as its local port for a moment, so
// Open tries for a few seconds.
func (g *Gate) Open(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	open := g.l != nil
	g.mu.Unlock()
	if open {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := net.Listen("tcp", g.Addr)
		if err == nil {
			g.mu.Lock()
			g.serve(l)
			g.mu.Unlock()
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("testenv: gate: listen on %s again: %v", g.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve accepts on l until it is closed; g.mu is held or g is not shared
// yet.
func (g *Gate) serve(l net.Listener) {
	g.l = l
	g.wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", g.target)
			if err != nil {
				in.Close()
				continue
			}
			g.mu.Lock()
			if g.l != l { // shut while dialing
				g.mu.Unlock()
				in.Close()
				out.Close()
				continue
			}
			g.conns[in], g.conns[out] = struct{}{}, struct{}{}
			g.mu.Unlock()
			done := func() {
				in.Close()
				out.Close()
				g.mu.Lock()
				delete(g.conns, in)
				delete(g.conns, out)
				g.mu.Unlock()
			}
			g.wg.Go(func() { io.Copy(out, in); done() })
			g.wg.Go(func() { io.Copy(in, out); done() })
		}
	})
}
