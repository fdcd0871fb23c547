package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestDovecot(t *testing.T) {
	t.Parallel()
	a, b := Dovecot(t), Dovecot(t)
	if a.User == b.User {
		t.Fatalf("two callers got the same user %s", a.User)
	}
	a.Deliver(t, []byte("From: aws@example.com\nSubject: one\nMessage-ID: <1@example.com>\n\nbody\n"))
	a.DeliverTo(t, "Alerts", []byte("Subject: two\n\nbody\n"))

	tests := []struct {
		name    string
		account MailAccount
		folder  string
		want    []string // subjects, unseen
	}{
		{name: "inbox", account: a, folder: "INBOX", want: []string{"one"}},
		{name: "folder", account: a, folder: "Alerts", want: []string{"two"}},
		{name: "other user", account: b, folder: "INBOX", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := login(t, tt.account, "plain")
			sel, err := c.Select(tt.folder, nil).Wait()
			if err != nil {
				t.Fatalf("select %s: %v", tt.folder, err)
			}
			var msgs []*imapclient.FetchMessageBuffer
			if sel.NumMessages > 0 {
				all := imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}
				if msgs, err = c.Fetch(all, &imap.FetchOptions{Envelope: true, Flags: true}).Collect(); err != nil {
					t.Fatalf("fetch: %v", err)
				}
			}
			var got []string
			for _, m := range msgs {
				for _, f := range m.Flags {
					if f == imap.FlagSeen {
						t.Errorf("mail %q is \\Seen right after delivery", m.Envelope.Subject)
					}
				}
				got = append(got, m.Envelope.Subject)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("subjects = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDovecotTLS(t *testing.T) {
	t.Parallel()
	a := Dovecot(t)
	for _, mode := range []string{"tls", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := login(t, a, mode)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("select: %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		c, err := imapclient.DialInsecure(a.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(a.User, "not-"+a.Password).Wait(); err == nil {
			t.Error("login with a wrong password succeeded")
		}
	})
}

// TestDovecotStopsWithTestBinary runs this test binary again as a child that
// starts Dovecot, and checks that the server and its files are gone once the
// child is: through Main when the child ends normally, through Pdeathsig and
// the watchdog when it is killed.
func TestDovecotStopsWithTestBinary(t *testing.T) {
	if os.Getenv("TESTENV_DOVECOT_CHILD") != "" {
		t.Skip("already in a child")
	}
	t.Parallel()
	Dovecot(t) // skips (or fails in CI) when Dovecot is missing

	for _, mode := range []string{"main", "killed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildDovecot$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTENV_DOVECOT_CHILD="+mode)
			out, err := cmd.CombinedOutput()
			if mode == "main" && err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			addr, root := field(out, "ADDR"), field(out, "ROOT")
			if addr == "" || root == "" {
				t.Fatalf("child printed no ADDR and ROOT:\n%s", out)
			}
			if mode == "main" {
				if err := greets(addr); err == nil {
					t.Errorf("Dovecot at %s still answers after the test binary ended", addr)
				}
				if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("server directory %s still exists (stat: %v)", root, err)
				}
				return
			}
			// The watchdog looks once a second; give it a generous bound.
			for greets(addr) == nil || exists(root) {
				if ctx.Err() != nil {
					t.Fatalf("Dovecot at %s (dir %s) still up after its test binary was killed", addr, root)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestChildDovecot is the child of TestDovecotStopsWithTestBinary.
func TestChildDovecot(t *testing.T) {
	mode := os.Getenv("TESTENV_DOVECOT_CHILD")
	if mode == "" {
		t.Skip("runs only as the child of TestDovecotStopsWithTestBinary")
	}
	a := Dovecot(t)
	a.Deliver(t, []byte("Subject: hi\n\nhello\n"))
	fmt.Printf("ADDR %s\nROOT %s\n", a.Addr, dovecotSrv.root)
	if mode == "killed" {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func TestMailUserName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"TestX", "TestX/sub case#01", strings.Repeat("Abc/", 40), "Test Ünïcode"} {
		got := mailUserName(name)
		for _, r := range got {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789_-", r) {
				t.Errorf("mailUserName(%q) = %q, has %q outside Dovecot's auth_username_chars", name, got, r)
			}
		}
	}
}

// login connects to a's server as mode says (plain, tls, starttls) and logs
// in; the client is closed when t ends.
func login(t *testing.T, a MailAccount, mode string) *imapclient.Client {
	t.Helper()
	opts := &imapclient.Options{
		Dialer:    &net.Dialer{Timeout: 10 * time.Second},
		TLSConfig: &tls.Config{RootCAs: a.RootCAs, ServerName: "127.0.0.1"},
	}
	var c *imapclient.Client
	var err error
	switch mode {
	case "tls":
		c, err = imapclient.DialTLS(a.TLSAddr, opts)
	case "starttls":
		c, err = imapclient.DialStartTLS(a.Addr, opts)
	default:
		c, err = imapclient.DialInsecure(a.Addr, opts)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", mode, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(a.User, a.Password).Wait(); err != nil {
		t.Fatalf("login as %s over %s: %v", a.User, mode, err)
	}
	return c
}
