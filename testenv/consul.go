package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ConsulAgent is a `consul agent -dev` on 127.0.0.1 with ACLs on (default
// policy deny).
type ConsulAgent struct {
	// Addr is the HTTP API, 127.0.0.1:PORT.
	Addr string
	// Token is the management token (the agent's initial_management).
	Token string
}

var (
	consulOnce sync.Once
	consulSrv  *consulServer
	consulErr  error
)

type consulServer struct {
	agent ConsulAgent
	cmd   *exec.Cmd
	done  chan struct{}
	log   *bytes.Buffer
}

// Consul returns a `consul agent -dev` shared by the test binary, started on
// first use on free loopback ports (HTTP, serf LAN and WAN, server RPC; DNS
// and gRPC off). Its state is in memory; tests share it, so each uses
// names of its own. [Main] stops it.
//
// Unlike the other helpers, it skips the test when there is no consul binary
// on PATH even when CI=true: Consul is not packaged for Debian and its
// module's replace directives stop `go install`, so no CI here can have it;
// tests run against a local stand-in always, and against Consul where
// someone installed it.
func Consul(t testing.TB) ConsulAgent {
	t.Helper()
	bin, err := exec.LookPath("consul")
	if err != nil {
		t.Skip("testenv: no consul binary on PATH, so this suite did not run against a real Consul (it ran against the local stand-in); put a consul binary on PATH to run it")
	}
	consulOnce.Do(func() {
		for range 3 {
			if consulSrv, consulErr = startConsul(bin); consulErr == nil {
				atExit(consulSrv.stop)
				return
			}
		}
	})
	if consulErr != nil {
		t.Fatalf("testenv: start consul: %v", consulErr)
	}
	return consulSrv.agent
}

func startConsul(bin string) (*consulServer, error) {
	ports := make([]string, 4)
	for i := range ports {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, ports[i], _ = net.SplitHostPort(addr)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok[:4]) + "-" + hex.EncodeToString(tok[4:6]) + "-" + hex.EncodeToString(tok[6:8]) + "-" +
		hex.EncodeToString(tok[8:10]) + "-" + hex.EncodeToString(tok[10:])
	s := &consulServer{agent: ConsulAgent{Addr: "127.0.0.1:" + ports[0], Token: token}, done: make(chan struct{}), log: new(bytes.Buffer)}
	// Every port in one -hcl fragment, which -dev's defaults give way to;
	// the ones not needed are off (-1).
	s.cmd = exec.Command(bin, "agent", "-dev", "-node", "testenv", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "warn",
		"-hcl", fmt.Sprintf(`ports { http = %s, serf_lan = %s, serf_wan = %s, server = %s, dns = -1, grpc = -1, grpc_tls = -1 }`,
			ports[0], ports[1], ports[2], ports[3]),
		"-hcl", fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q } }`, token))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()

	// Ready when a leader is elected and the management token works, which
	// takes the leader a moment after the election.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("consul exited (%v) before answering:\n%s", s.cmd.ProcessState, s.log)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.agent.Addr+"/v1/catalog/nodes", nil)
		req.Header.Set("X-Consul-Token", token)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"testenv"`) {
				return s, nil
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("consul at %s was not ready within a minute (last: %s):\n%s", s.agent.Addr, last, s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *consulServer) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}
