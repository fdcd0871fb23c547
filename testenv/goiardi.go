package testenv

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-chef/chef"
)

// ChefServer is a goiardi, a Chef Server 11 compatible server, on 127.0.0.1
// with authentication on: every request must be signed with the key of a
// client it knows, exactly as a Chef server checks them.
type ChefServer struct {
	// URL is the server's base URL, http://127.0.0.1:PORT/ (with the
	// trailing slash go-chef resolves paths against).
	URL string
	// AdminName and AdminKey are the admin client goiardi made when it
	// started, and its private key (PEM).
	AdminName, AdminKey string

	dir      string
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	log      *bytes.Buffer
	stopOnce sync.Once
	admin    *chef.Client
}

var errGoiardiMissing = errors.New("goiardi is not installed: `apt-get install -y goiardi` provides it")

// Goiardi starts a goiardi of its own for t, in memory, on a free port, and
// stops it when t is done (or earlier, with [ChefServer.Stop]). It starts in
// well under a second, so each test gets a server no other test touches.
// It skips the test when goiardi is not installed, unless CI=true.
func Goiardi(t testing.TB) *ChefServer {
	t.Helper()
	bin, err := exec.LookPath("goiardi")
	if err != nil {
		missing(t, "%v", errGoiardiMissing)
		return nil
	}
	// Another process may take the port between our probe and goiardi's
	// bind; goiardi then exits, and we try another port.
	var s *ChefServer
	for range 3 {
		if s, err = startGoiardi(bin); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: start goiardi: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func startGoiardi(bin string) (_ *ChefServer, err error) {
	dir, err := os.MkdirTemp("", "testenv-goiardi-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	s := &ChefServer{URL: "http://" + addr + "/", AdminName: "admin", dir: dir, done: make(chan struct{}), log: new(bytes.Buffer)}
	// --conf-root is where goiardi writes the keys it makes at start
	// (admin.pem, chef-validator.pem, chef-webui.pem). Without a data or
	// index file it keeps everything in memory and writes nothing else.
	s.cmd = exec.Command(bin, "-I", host, "-P", port, "-H", host, "--use-auth", "--conf-root", dir, "-g", "error")
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Pdeathsig: a test binary killed by -timeout takes goiardi with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("goiardi exited (%v) before answering:\n%s", s.cmd.ProcessState, s.log)
		default:
		}
		// Any answer will do: unsigned, it is a 401. The keys are written
		// before goiardi listens.
		resp, err := client.Get(s.URL + "nodes")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("goiardi at %s did not answer within 30s (last: %v):\n%s", s.URL, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	key, err := os.ReadFile(filepath.Join(dir, "admin.pem"))
	if err != nil {
		return nil, fmt.Errorf("read the admin key goiardi made: %w", err)
	}
	s.AdminKey = string(key)
	s.admin, err = chef.NewClient(&chef.Config{Name: s.AdminName, Key: s.AdminKey, BaseURL: s.URL, Timeout: 10})
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return s, nil
}

// Stop stops the server and removes its files; requests after it find
// nothing listening. It is safe to call more than once.
func (s *ChefServer) Stop() {
	s.stopOnce.Do(func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		os.RemoveAll(s.dir)
	})
}

// CreateClient creates an API client called name through the server's API,
// as the admin, and returns its private key (PEM), which the server made
// and keeps only the public half of. An admin client may delete any node
// and client (Chef 11's permission model).
func (s *ChefServer) CreateClient(t testing.TB, name string, admin bool) string {
	t.Helper()
	var out struct {
		PrivateKey string `json:"private_key"`
		ChefKey    struct {
			PrivateKey string `json:"private_key"`
		} `json:"chef_key"`
	}
	if err := s.call(http.MethodPost, "clients", map[string]any{"name": name, "admin": admin}, &out); err != nil {
		t.Fatalf("testenv: goiardi: create client %s: %v", name, err)
	}
	key := cmp.Or(out.PrivateKey, out.ChefKey.PrivateKey)
	if !strings.Contains(key, "PRIVATE KEY") {
		t.Fatalf("testenv: goiardi: create client %s: the answer holds no private key", name)
	}
	return key
}

// CreateNode creates a node called name with the given automatic
// attributes (what Ohai reports, like {"ec2": {"instance_id": "i-0abc"}}),
// through the server's API as the admin, and returns once searches find it.
func (s *ChefServer) CreateNode(t testing.TB, name string, automatic map[string]any) {
	t.Helper()
	node := map[string]any{
		"name": name, "chef_type": "node", "json_class": "Chef::Node", "chef_environment": "_default",
		"run_list": []string{}, "automatic": automatic, "normal": map[string]any{},
		"default": map[string]any{}, "override": map[string]any{},
	}
	if err := s.call(http.MethodPost, "nodes", node, nil); err != nil {
		t.Fatalf("testenv: goiardi: create node %s: %v", name, err)
	}
	// goiardi indexes a new node a few milliseconds after it answered (a
	// Chef server's Solr takes longer still): wait until a search finds it.
	q := url.Values{"q": {"name:" + strings.ReplaceAll(name, "-", `\-`)}}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var out struct {
			Total int `json:"total"`
		}
		if err := s.call(http.MethodGet, "search/node?"+q.Encode(), nil, &out); err != nil {
			t.Fatalf("testenv: goiardi: search for node %s: %v", name, err)
		}
		if out.Total > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: goiardi: node %s is not in the search index 5s after it was created", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// HasNode reports whether the server has a node called name.
func (s *ChefServer) HasNode(t testing.TB, name string) bool {
	t.Helper()
	return s.exists(t, "nodes/"+url.PathEscape(name))
}

// HasClient reports whether the server has an API client called name.
func (s *ChefServer) HasClient(t testing.TB, name string) bool {
	t.Helper()
	return s.exists(t, "clients/"+url.PathEscape(name))
}

func (s *ChefServer) exists(t testing.TB, path string) bool {
	t.Helper()
	err := s.call(http.MethodGet, path, nil, nil)
	var cerr *chef.ErrorResponse
	if errors.As(err, &cerr) && cerr.StatusCode() == http.StatusNotFound {
		return false
	}
	if err != nil {
		t.Fatalf("testenv: goiardi: GET %s: %v", path, err)
	}
	return true
}

// call makes one signed request as the admin client.
func (s *ChefServer) call(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := s.admin.NewRequest(method, path, r)
	if err != nil {
		return err
	}
	res, err := s.admin.Do(req.WithContext(ctx), out)
	if res != nil {
		res.Body.Close()
	}
	return err
}
