package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres returns the URL of a fresh, empty database owned by the superuser
// "postgres" (trust authentication, no password), for example
// postgres://postgres@127.0.0.1:PORT/test_name_1?sslmode=disable. The database
// is dropped when t is done.
//
// The first call starts one PostgreSQL server for the whole test binary;
// later calls only create a database (about 0.1 s on tmpfs), so tests can each
// ask for their own and run in parallel. [Main] stops the server.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pg, pgErr = startPostgres() })
	var m *missingError
	if errors.As(pgErr, &m) {
		missing(t, "%s", m.msg)
	}
	if pgErr != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", pgErr)
	}

	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pg.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a pool the test forgot to close must not keep its database.
		if err := pg.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	return pg.url(name)
}

var (
	pgOnce sync.Once
	pg     *pgServer
	pgErr  error
	dbSeq  atomic.Int64
)

// missingError says that PostgreSQL cannot run here at all, as opposed to a
// server that is installed but failed to start.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

// databaseName makes a valid, unique database name that still shows which
// test it belongs to when someone looks at the server.
func databaseName(testName string) string {
	return fmt.Sprintf("test_%s_%d", slug(testName), dbSeq.Add(1))
}

// slug turns a test name into lower-case letters, digits and _, at most 40
// of them: a name every server here accepts for a database or a user.
func slug(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// pgServer is one PostgreSQL server in a temporary directory:
// root/data (cluster), root/sock (Unix socket), root/log (server log).
type pgServer struct {
	root     string
	bin      string // directory holding initdb, pg_ctl and postgres
	port     int
	cred     *syscall.Credential // the postgres user's, when we are root
	watchdog *exec.Cmd
}

func (s *pgServer) data() string { return filepath.Join(s.root, "data") }

func (s *pgServer) url(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// exec runs one statement in the maintenance database. A connection per call
// costs a few milliseconds and cannot be left broken for the next caller.
func (s *pgServer) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// command runs a PostgreSQL program as the postgres user when we are root:
// initdb and pg_ctl refuse to run as root. Setting the credential directly
// does what `runuser -u postgres --` would, without needing runuser.
func (s *pgServer) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.root
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// pg_ctl's server writes to root/log, but should anything keep our pipes
	// open, do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (s *pgServer) run(ctx context.Context, name string, args ...string) error {
	out, err := s.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func startPostgres() (*pgServer, error) {
	bin, ok := findPostgresBin()
	if !ok {
		return nil, &missingError{"PostgreSQL server programs (initdb, pg_ctl, postgres) are not in PATH nor in /usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql`"}
	}
	s := &pgServer{bin: bin}

	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, &missingError{"running as root, where initdb must run as the user postgres, but there is no such user; install the postgresql package or `useradd --system postgres`"}
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user postgres: %w", err)
		}
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	root, err := os.MkdirTemp(scratchDir(), "testenv-pg-")
	if err != nil {
		return nil, err
	}
	s.root = root
	ok = false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	if err := os.Mkdir(filepath.Join(root, "sock"), 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, dir := range []string{root, filepath.Join(root, "sock")} {
			if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return nil, fmt.Errorf("give %s to postgres: %w", dir, err)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// --no-sync and fsync=off: test data need not survive a power cut.
	if err := s.run(ctx, "initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, err
	}

	// Another process may take the port between our probe and the server's
	// bind, so try a few ports before giving up.
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		s.port, _ = strconv.Atoi(port)
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
			s.port, filepath.Join(root, "sock"))
		err = s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(root, "log"), "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			break
		}
		if attempt == 3 {
			log, _ := os.ReadFile(filepath.Join(root, "log"))
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, bytes.TrimSpace(log))
		}
	}

	s.startWatchdog()
	atExit(s.stop)
	ok = true
	return s, nil
}

// startWatchdog starts a process that stops the server once this test binary
// is gone, for binaries whose TestMain does not call Main and for a binary
// killed by a panic, a -timeout or Ctrl-C. It gets its own process group so
// that the Ctrl-C meant for `go test` does not kill it first.
func (s *pgServer) startWatchdog() {
	const script = `while [ -d /proc/$1 ]; do sleep 1; done; "$2" -D "$3" -m fast stop >/dev/null 2>&1; rm -rf "$4"`
	cmd := exec.Command("/bin/sh", "-c", script, "testenv-pg-watchdog",
		strconv.Itoa(os.Getpid()), filepath.Join(s.bin, "pg_ctl"), s.data(), s.root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	if err := cmd.Start(); err == nil {
		s.watchdog = cmd
	}
	// Without /bin/sh or /proc, Main is the only way the server stops.
}

// stop stops the server, removes its files and ends the watchdog.
func (s *pgServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
		if err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", "fast", "-w", "stop"); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop PostgreSQL: %v\n", err)
		}
	}
	if s.root != "" {
		os.RemoveAll(s.root)
	}
	if s.watchdog != nil {
		// The whole group: the shell and the sleep it may be waiting on.
		syscall.Kill(-s.watchdog.Process.Pid, syscall.SIGKILL)
		s.watchdog.Wait()
	}
}

// scratchDir is where the server's files go: /dev/shm when it is there,
// because creating a database copies its template and on tmpfs that is about
// three times faster than on disk; test data need not survive a reboot.
func scratchDir() string {
	const shm = "/dev/shm"
	if dir, err := os.MkdirTemp(shm, "testenv-probe-"); err == nil {
		os.Remove(dir)
		return shm
	}
	return os.TempDir()
}

// findPostgresBin finds the directory of initdb and pg_ctl, which must come
// from the same installation: first through PATH (following symlinks such as
// /usr/local/bin/pg_ctl), then the newest /usr/lib/postgresql/*/bin.
func findPostgresBin() (string, bool) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), true
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, true
		}
	}
	return "", false
}
