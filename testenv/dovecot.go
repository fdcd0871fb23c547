package testenv

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// MailAccount is one IMAP user of the Dovecot server that [Dovecot] started.
// Its mailbox starts empty.
type MailAccount struct {
	// Addr is 127.0.0.1:PORT speaking plain IMAP; STARTTLS is offered and
	// LOGIN is allowed without it.
	Addr string
	// TLSAddr is 127.0.0.1:PORT speaking IMAP over TLS (imaps).
	TLSAddr string
	// RootCAs trusts the server's certificate, issued for 127.0.0.1.
	RootCAs *x509.CertPool

	User, Password string
}

// Deliver puts raw (an RFC 5322 message, CRLF or LF line ends) into the
// account's INBOX as a new, unseen mail.
func (a MailAccount) Deliver(t testing.TB, raw []byte) {
	t.Helper()
	a.DeliverTo(t, "INBOX", raw)
}

// DeliverTo puts raw into folder, creating the folder when it is missing.
// It uses IMAP APPEND, so Dovecot files and indexes the mail itself, exactly
// as it would one that arrived by LMTP.
func (a MailAccount) DeliverTo(t testing.TB, folder string, raw []byte) {
	t.Helper()
	if err := a.deliver(folder, raw); err != nil {
		t.Fatalf("testenv: deliver mail to %s/%s: %v", a.User, folder, err)
	}
}

func (a MailAccount) deliver(folder string, raw []byte) error {
	c, err := imapclient.DialInsecure(a.Addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.User, a.Password).Wait(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if !strings.EqualFold(folder, "INBOX") {
		// An existing folder answers NO [ALREADYEXISTS], which is fine.
		_ = c.Create(folder, nil).Wait()
	}
	raw = crlf(raw)
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return c.Logout().Wait()
}

// crlf turns bare LF line ends into CRLF, which IMAP requires of an APPENDed
// message, so that tests may write their mails as Go raw strings.
func crlf(raw []byte) []byte {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
}

// Dovecot returns a new account on a Dovecot IMAP server on 127.0.0.1 shared
// by the test binary. Each call gets a user of its own, so tests run in
// parallel without seeing each other's mail. Deliver mail with
// [MailAccount.Deliver].
//
// It skips the test when Dovecot is not installed (Debian: dovecot-imapd),
// unless CI=true. [Main] stops the server; without it, the server dies with
// the test binary.
func Dovecot(t testing.TB) MailAccount {
	t.Helper()
	dovecotOnce.Do(func() {
		dovecotSrv, dovecotErr = startDovecot()
		if dovecotSrv != nil {
			atExit(dovecotSrv.stop)
		}
	})
	if errors.Is(dovecotErr, errDovecotMissing) {
		missing(t, "%v", dovecotErr)
	}
	if dovecotErr != nil {
		t.Fatalf("testenv: start Dovecot: %v", dovecotErr)
	}
	s := dovecotSrv
	return MailAccount{
		Addr:     s.addr,
		TLSAddr:  s.tlsAddr,
		RootCAs:  s.roots,
		User:     mailUserName(t.Name()),
		Password: s.password,
	}
}

var (
	dovecotOnce sync.Once
	dovecotSrv  *dovecotServer
	dovecotErr  error
	mailUserSeq atomic.Int64
)

var errDovecotMissing = errors.New("dovecot is not installed: `apt-get install -y dovecot-imapd` provides it")

// mailUserName makes a user name Dovecot accepts (auth_username_chars) that
// still shows which test it belongs to in the server's log.
func mailUserName(testName string) string {
	return fmt.Sprintf("%s-%d", slug(testName), mailUserSeq.Add(1))
}

// dovecotServer is one Dovecot in a temporary directory: root/dovecot.conf,
// root/log, root/run (base_dir), root/state, root/mail/USER (homes).
type dovecotServer struct {
	root          string
	addr, tlsAddr string
	password      string
	roots         *x509.CertPool
	cmd           *exec.Cmd
	done          chan struct{} // closed when cmd has exited
	watchdog      *exec.Cmd
}

// The greeting tells the readiness probe that the login process answers
// with the auth process behind it (before that, Dovecot greets with
// "Waiting for authentication process to respond").
const dovecotGreeting = "testenv dovecot ready"

// dovecotConfig is a whole configuration: Dovecot reads nothing from /etc
// with -c. Any user name logs in with the one password (a static passdb),
// so accounts need no setup and the server no reload.
const dovecotConfig = `# Written by testenv for one test binary.
protocols = imap
listen = 127.0.0.1
base_dir = {{root}}/run
state_dir = {{root}}/state
log_path = {{root}}/log
login_greeting = ` + dovecotGreeting + `
default_internal_user = {{internal_user}}
default_internal_group = {{internal_group}}
default_login_user = {{login_user}}

ssl = yes
ssl_cert = <{{root}}/cert.pem
ssl_key = <{{root}}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
# A failed login must not slow down the logins of the tests beside it:
# no failure delay, and no penalty per IP (a socket anvil cannot open).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
{{chroot}}}

passdb {
  driver = static
  args = password={{password}}
}
userdb {
  driver = static
  args = uid={{uid}} gid={{gid}} home={{root}}/mail/%u
}
mail_location = maildir:~/Maildir
# Folders nest with "/" as on most servers (Gmail's "[Gmail]/All Mail").
namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{port}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{tls_port}}
  }
{{chroot}}}
`

func startDovecot() (*dovecotServer, error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot" // Debian's, often not in a user's PATH
		if _, err := os.Stat(bin); err != nil {
			return nil, errDovecotMissing
		}
	}
	// Another process may take a port between our probe and Dovecot's bind.
	var lastErr error
	for range 3 {
		s, err := tryDovecot(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryDovecot(bin string) (_ *dovecotServer, err error) {
	root, err := os.MkdirTemp("", "testenv-dovecot-")
	if err != nil {
		return nil, err
	}
	s := &dovecotServer{root: root, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	// The mail user and Dovecot's own users must get through root to their
	// directories.
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	vars, err := dovecotUsers()
	if err != nil {
		return nil, err
	}
	mail := filepath.Join(root, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(mail, mailUID, mailUID); err != nil {
			return nil, fmt.Errorf("give %s to uid %d: %w", mail, mailUID, err)
		}
	}
	certPEM, keyPEM, roots, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	s.roots = roots
	if err := os.WriteFile(filepath.Join(root, "cert.pem"), certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "key.pem"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	s.password = hex.EncodeToString(pw)

	if s.addr, err = freeAddr(); err != nil {
		return nil, err
	}
	if s.tlsAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(s.addr)
	_, tlsPort, _ := net.SplitHostPort(s.tlsAddr)
	vars = append(vars, "{{root}}", root, "{{password}}", s.password, "{{port}}", port, "{{tls_port}}", tlsPort)
	conf := filepath.Join(root, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(strings.NewReplacer(vars...).Replace(dovecotConfig)), 0o644); err != nil {
		return nil, err
	}

	s.cmd = exec.Command(bin, "-F", "-c", conf)
	var out bytes.Buffer // before log_path is open, Dovecot writes to stderr
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	// Its own process group, so stop reaches every Dovecot process;
	// Pdeathsig, so a test binary killed by -timeout takes Dovecot with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("dovecot exited (%v) before answering:\n%s%s", s.cmd.ProcessState, out.Bytes(), s.log())
		default:
		}
		err := greets(s.addr)
		if err == nil {
			s.startWatchdog()
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dovecot at %s did not greet within 30s (last: %v):\n%s%s", s.addr, err, out.Bytes(), s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailUID owns the mail when we are root: Dovecot refuses to run a mail
// process as root, and nobody exists everywhere.
const mailUID = 65534

// dovecotUsers says who Dovecot's processes run as. As root they are the
// Debian package's dovecot and dovenull, and the mail belongs to nobody. As
// anyone else, Dovecot cannot switch users, so everything runs as the
// caller and no process can chroot.
func dovecotUsers() ([]string, error) {
	if os.Geteuid() == 0 {
		for _, name := range []string{"dovecot", "dovenull"} {
			if _, err := user.Lookup(name); err != nil {
				return nil, fmt.Errorf("running as root, where Dovecot needs the user %s, which the dovecot-core package creates: %w", name, err)
			}
		}
		id := strconv.Itoa(mailUID)
		return []string{"{{internal_user}}", "dovecot", "{{internal_group}}", "dovecot", "{{login_user}}", "dovenull",
			"{{uid}}", id, "{{gid}}", id, "{{chroot}}", ""}, nil
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return nil, err
	}
	return []string{"{{internal_user}}", u.Username, "{{internal_group}}", g.Name, "{{login_user}}", u.Username,
		"{{uid}}", u.Uid, "{{gid}}", u.Gid, "{{chroot}}", "  chroot =\n"}, nil
}

// greets reports whether the server at addr answers with the configured
// greeting.
func greets(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.Contains(line, dovecotGreeting) {
			return nil
		}
	}
}

func (s *dovecotServer) log() string {
	b, _ := os.ReadFile(filepath.Join(s.root, "log"))
	return string(b)
}

// startWatchdog starts a process that removes the server's files once this
// test binary is gone without calling Main (Pdeathsig has stopped Dovecot
// by then). Its own process group keeps it from the Ctrl-C meant for `go
// test`.
func (s *dovecotServer) startWatchdog() {
	const script = `while [ -d /proc/$1 ]; do sleep 1; done; kill -KILL -$2 2>/dev/null; sleep 1; rm -rf "$3"`
	cmd := exec.Command("/bin/sh", "-c", script, "testenv-dovecot-watchdog",
		strconv.Itoa(os.Getpid()), strconv.Itoa(s.cmd.Process.Pid), s.root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err == nil {
		s.watchdog = cmd
	}
}

// stop stops Dovecot, removes its files and ends the watchdog.
func (s *dovecotServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	if s.watchdog != nil {
		syscall.Kill(-s.watchdog.Process.Pid, syscall.SIGKILL)
		s.watchdog.Wait()
	}
	os.RemoveAll(s.root)
}

// selfSignedCert makes the server's certificate for 127.0.0.1 and a pool
// that trusts it.
func selfSignedCert() (certPEM, keyPEM []byte, roots *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv dovecot"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), roots, nil
}
