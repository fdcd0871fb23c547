package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// One moto server per test binary: it takes seconds to start, while a region
// of its own isolates each caller (moto keeps a separate account state per
// region) and lets them run in parallel. A reset per test would wipe the
// state of the tests running beside it.

var (
	motoOnce sync.Once
	motoSrv  *motoServer
	motoErr  error
)

// motoRegions are regions moto knows, one per test that needs moto.
var motoRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2",
	"eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-southeast-1",
	"ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ca-central-1", "sa-east-1",
}

var motoRegionN atomic.Int64

// errMotoMissing says that moto is not installed, as opposed to a moto that
// failed to start.
var errMotoMissing = errors.New("moto is not installed: `python3 -m pip install 'moto[server]'` provides moto_server")

type motoServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *bytes.Buffer
}

// Moto returns the endpoint of a moto server (AWS EC2, Route53, SQS,
// EventBridge on 127.0.0.1) shared by the test binary, and a region no other
// caller in the binary got: moto keeps each region's state apart, so tests
// isolate themselves by region and run in parallel. Use dummy credentials
// ("testing"/"testing"). It skips the test when moto is not installed,
// unless CI=true. [Main] stops the server.
func Moto(t testing.TB) (endpoint, region string) {
	t.Helper()
	motoOnce.Do(func() {
		motoSrv, motoErr = startMoto()
		if motoSrv != nil {
			atExit(motoSrv.stop)
		}
	})
	if errors.Is(motoErr, errMotoMissing) {
		missing(t, "%v", motoErr)
	}
	if motoErr != nil {
		t.Fatalf("testenv: start moto: %v", motoErr)
	}
	n := int(motoRegionN.Add(1)) - 1
	if n >= len(motoRegions) {
		t.Fatalf("testenv: more moto callers than regions to isolate them in; add regions to motoRegions")
	}
	return motoSrv.url, motoRegions[n]
}

// motoCommand finds moto: moto_server on PATH, else python3's moto.server.
func motoCommand(port string) (*exec.Cmd, error) {
	args := []string{"-H", "127.0.0.1", "-p", port}
	if path, err := exec.LookPath("moto_server"); err == nil {
		return exec.Command(path, args...), nil
	}
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		return exec.Command(py, append([]string{"-m", "moto.server"}, args...)...), nil
	}
	return nil, errMotoMissing
}

func startMoto() (*motoServer, error) {
	// Another process may take the port between our probe and moto's bind.
	var lastErr error
	for range 3 {
		s, err := tryMoto()
		if err == nil || errors.Is(err, errMotoMissing) {
			return s, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryMoto() (*motoServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd, err := motoCommand(port)
	if err != nil {
		return nil, err
	}
	s := &motoServer{url: "http://127.0.0.1:" + port, cmd: cmd, done: make(chan struct{}), log: new(bytes.Buffer)}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Its own process group, so stop reaches whatever the pyenv shim
	// started; Pdeathsig, so a test binary killed by -timeout takes moto
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(s.done) }()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			if cmd.ProcessState.ExitCode() == 127 {
				// A pyenv shim for a Python that lacks moto.
				return nil, errMotoMissing
			}
			return nil, fmt.Errorf("%s exited (%v) before answering:\n%s", cmd.Path, cmd.ProcessState, s.log)
		default:
		}
		// The reset answers once the server is up, and leaves it empty.
		resp, err := client.Post(s.url+"/moto-api/reset", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("moto at %s did not answer within a minute (last: %v):\n%s", s.url, err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *motoServer) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}
