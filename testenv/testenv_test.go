package testenv

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func TestMain(m *testing.M) { Main(m) }

func TestPostgres(t *testing.T) {
	t.Parallel()
	urlA, urlB := Postgres(t), Postgres(t)
	if urlA == urlB {
		t.Fatalf("two callers got the same database %s", urlA)
	}

	dbA, dbB := open(t, urlA), open(t, urlB)
	if _, err := dbA.Exec(`CREATE TABLE only_in_a (id int)`); err != nil {
		t.Fatalf("create table in A: %v", err)
	}
	var n int
	if err := dbA.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("tables in A = %d, %v; want 1", n, err)
	}
	if err := dbB.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("tables in B = %d, %v; want 0 (a fresh, empty database)", n, err)
	}
}

func TestPostgresParallelCallers(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			db := open(t, Postgres(t))
			if _, err := db.Exec(`CREATE TABLE t (id int)`); err != nil {
				t.Fatalf("create table: %v", err)
			}
		})
	}
}

func TestPostgresDropsDatabaseAfterTest(t *testing.T) {
	t.Parallel()
	var url string
	t.Run("user", func(t *testing.T) { url = Postgres(t) })
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]

	admin := open(t, Postgres(t))
	var n int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestPostgresStopsWithTestBinary runs this test binary again as a child that
// starts a server, and checks that the server is gone once the child is:
// through Main when the child ends normally, through the watchdog when it is
// killed.
func TestPostgresStopsWithTestBinary(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "" {
		t.Skip("already in a child")
	}
	t.Parallel()
	Postgres(t) // skips (or fails in CI) when PostgreSQL is missing

	for _, mode := range []string{"main", "killed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildServer$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTENV_CHILD="+mode)
			out, err := cmd.CombinedOutput()
			if mode == "main" && err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			url, root := field(out, "URL"), field(out, "ROOT")
			if url == "" || root == "" {
				t.Fatalf("child printed no URL and ROOT:\n%s", out)
			}

			if mode == "main" {
				if err := ping(url); err == nil {
					t.Errorf("server at %s still answers after the test binary ended", url)
				}
				if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("server directory %s still exists (stat: %v)", root, err)
				}
				return
			}
			// The watchdog looks once a second; give it a generous bound.
			for ping(url) == nil || exists(root) {
				if ctx.Err() != nil {
					t.Fatalf("server at %s (dir %s) still up after its test binary was killed", url, root)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestChildServer is the child of TestPostgresStopsWithTestBinary.
func TestChildServer(t *testing.T) {
	mode := os.Getenv("TESTENV_CHILD")
	if mode == "" {
		t.Skip("runs only as the child of TestPostgresStopsWithTestBinary")
	}
	url := Postgres(t)
	if err := ping(url); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	fmt.Printf("URL %s\nROOT %s\n", url, pg.root)
	if mode == "killed" {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func TestMissingServer(t *testing.T) {
	tests := []struct {
		ci        string
		wantFatal bool
	}{
		{ci: "true", wantFatal: true},
		{ci: "", wantFatal: false},
		{ci: "false", wantFatal: false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			rec := &recorder{TB: t}
			missing(rec, "no %s here", "thing")
			if got := rec.fatal != ""; got != tt.wantFatal {
				t.Errorf("fatal = %q, skip = %q; want fatal %v", rec.fatal, rec.skip, tt.wantFatal)
			}
			if msg := rec.fatal + rec.skip; !strings.Contains(msg, "no thing here") {
				t.Errorf("message %q does not say what is missing", msg)
			}
		})
	}
}

// recorder is a testing.TB that notes a Fatalf or Skipf instead of ending
// the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Abc/", 40)
	for _, name := range []string{"TestX", "TestX/sub_case#01", long, "Test Ünïcode"} {
		got := databaseName(name)
		if len(got) > 63 {
			t.Errorf("databaseName(%q) = %q, longer than PostgreSQL's 63 bytes", name, got)
		}
		for _, r := range got {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				t.Errorf("databaseName(%q) = %q has %q", name, got, r)
			}
		}
	}
	if first, second := databaseName("TestX"), databaseName("TestX"); first == second {
		t.Error("two calls for one test gave the same name")
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, want 127.0.0.1:PORT", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	l.Close()
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	browser := Browser(t)

	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>switchboard testenv</title><p>hello`)
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(browser, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("load %s: %v", page.URL, err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatalf("read the title: %v", err)
	}
	if title != "switchboard testenv" {
		t.Errorf("title = %q, want %q", title, "switchboard testenv")
	}
}

func TestChromiumFlags(t *testing.T) {
	t.Parallel()
	a, b := ChromiumFlags(), ChromiumFlags()
	for _, want := range []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync"} {
		if !contains(a, want) {
			t.Errorf("ChromiumFlags() lacks %s", want)
		}
	}
	dirA, dirB := userDataDir(a), userDataDir(b)
	if dirA == "" || dirA == dirB {
		t.Fatalf("user data dirs %q and %q: want two different ones", dirA, dirB)
	}
	entries, err := os.ReadDir(dirA)
	if err != nil || len(entries) != 0 {
		t.Errorf("user data dir %s: %d entries, %v; want an empty directory", dirA, len(entries), err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func userDataDir(flags []string) string {
	for _, f := range flags {
		if dir, ok := strings.CutPrefix(f, "--user-data-dir="); ok {
			return dir
		}
	}
	return ""
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	return db
}

func ping(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func field(out []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+" "); ok {
			return v
		}
	}
	return ""
}
