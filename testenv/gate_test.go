package testenv

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

// A gate forwards to its server; shut, its address refuses connections and
// a client's kept-alive connection is cut; opened again, the same address
// reaches the server.
func TestGate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	defer srv.Close()
	g := NewGate(t, srv.Listener.Addr().String())
	client := &http.Client{}
	get := func() (string, error) {
		resp, err := client.Get("http://" + g.Addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(); err != nil || body != "up" {
		t.Fatalf("through the open gate: %q, %v", body, err)
	}
	g.Shut()
	// The kept-alive connection is cut: a request the client sends on it
	// before it has noticed is reset (a busy machine); otherwise the client
	// dials anew and is refused. Either way the next one is refused.
	if _, err := get(); !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("through the shut gate: %v, want connection refused or reset", err)
	}
	if _, err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("through the shut gate again: %v, want connection refused", err)
	}
	g.Open(t)
	if body, err := get(); err != nil || body != "up" {
		t.Errorf("through the gate opened again: %q, %v", body, err)
	}
}
