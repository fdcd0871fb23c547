// Package imap is the mail trigger: it watches IMAP mailboxes for mails that
// should start a workflow (AWS's "Amazon EC2 Maintenance" and "[Retirement
// Notification]" notices, a monitoring system's alerts) and hands each one
// to a switchboard.EventHandler.
//
// A mail is marked \Seen only once the handler has durably recorded its runs,
// so a crash in between hands it again on the next poll, and the handler
// deduplicates it by its Message-ID. Mails the filters do not select are
// never touched: the mailbox may have other readers.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"

	"github.com/switchboardhq/switchboard"
)

// Connection security of a Mailbox.
const (
	TLS      = "tls"      // IMAP over TLS (imaps, port 993), the default
	StartTLS = "starttls" // plain IMAP upgraded with STARTTLS (port 143)
	Plain    = "plain"    // no encryption: only for a server on the same host
)

// Defaults of a Mailbox.
const (
	DefaultFolder       = "INBOX"
	DefaultPollInterval = 30 * time.Second
)

// Mailbox is one IMAP folder to watch, as configured.
type Mailbox struct {
	// Name names the mailbox in events (Event.Trigger) and logs.
	Name string
	// Addr is host:port; without a port, 993 for TLS and 143 otherwise.
	Addr               string
	Username, Password string
	// TLS is TLS (the default when empty), StartTLS or Plain.
	TLS string
	// Folder is the folder to watch, INBOX when empty.
	Folder string
	// SubjectMatch and FromMatch select the mails to hand over; nil selects
	// any. From is matched as "Name <address>".
	SubjectMatch *regexp.Regexp
	FromMatch    *regexp.Regexp
	// Filters are the mail triggers of the workflows that read this
	// mailbox: when there are any, a mail must also match one of them.
	// Mails no workflow wants are then left alone instead of being marked
	// seen with nothing started.
	Filters []Filter
	// PollInterval is the time between polls, DefaultPollInterval when 0.
	PollInterval time.Duration
}

// Filter selects mails by subject and sender, like a workflow's mail
// trigger. A nil pattern matches anything.
type Filter struct {
	Subject *regexp.Regexp
	From    *regexp.Regexp // matched against "Name <address>"
}

// Matches reports whether a mail with this subject and sender passes f.
func (f Filter) Matches(subject, from string) bool {
	return (f.Subject == nil || f.Subject.MatchString(subject)) && (f.From == nil || f.From.MatchString(from))
}

// selects reports whether the mailbox's filters let a mail through.
func (m Mailbox) selects(subject, from string) bool {
	if !(Filter{Subject: m.SubjectMatch, From: m.FromMatch}).Matches(subject, from) {
		return false
	}
	if len(m.Filters) == 0 {
		return true
	}
	for _, f := range m.Filters {
		if f.Matches(subject, from) {
			return true
		}
	}
	return false
}

func (m Mailbox) filtered() bool {
	return m.SubjectMatch != nil || m.FromMatch != nil || len(m.Filters) > 0
}

// Validate says what is wrong with m in a sentence for whoever wrote the
// configuration. The error has a ConfigKey method naming the setting as the
// configuration file does (addr, username, tls, poll), empty for the name.
func (m Mailbox) Validate() error {
	switch {
	case m.Name == "":
		return invalid("", "A mailbox needs a name.")
	case m.Addr == "":
		return invalid("addr", "Mailbox %s needs the address of its IMAP server (host or host:port).", m.Name)
	case m.Username == "":
		return invalid("username", "Mailbox %s needs a username to log in with.", m.Name)
	case m.TLS != "" && m.TLS != TLS && m.TLS != StartTLS && m.TLS != Plain:
		return invalid("tls", "Mailbox %s: tls is %q; use %q (the default), %q or %q.", m.Name, m.TLS, TLS, StartTLS, Plain)
	case m.PollInterval < 0:
		return invalid("poll", "Mailbox %s: the poll interval must be positive.", m.Name)
	}
	if _, err := m.addr(); err != nil {
		return invalid("addr", "Mailbox %s: address %q is not host or host:port.", m.Name, m.Addr)
	}
	return nil
}

// settingError is a Mailbox setting that cannot work: an EINVALID error
// that also names the setting.
type settingError struct {
	key string
	err *switchboard.Error
}

func (e *settingError) Error() string { return e.err.Error() }
func (e *settingError) Unwrap() error { return e.err }

// ConfigKey names the setting as the configuration file does.
func (e *settingError) ConfigKey() string { return e.key }

func invalid(key, format string, args ...any) error {
	return &settingError{key: key, err: switchboard.Errorf(switchboard.EINVALID, format, args...)}
}

func (m Mailbox) security() string {
	if m.TLS == "" {
		return TLS
	}
	return m.TLS
}

func (m Mailbox) folder() string {
	if m.Folder == "" {
		return DefaultFolder
	}
	return m.Folder
}

func (m Mailbox) pollInterval() time.Duration {
	if m.PollInterval <= 0 {
		return DefaultPollInterval
	}
	return m.PollInterval
}

// addr adds the default port for the connection security when Addr has
// none.
func (m Mailbox) addr() (string, error) {
	if _, _, err := net.SplitHostPort(m.Addr); err == nil {
		return m.Addr, nil
	}
	port := "143"
	if m.security() == TLS {
		port = "993"
	}
	addr := net.JoinHostPort(m.Addr, port)
	_, _, err := net.SplitHostPort(addr)
	return addr, err
}

// maxFetchBytes caps how much of one mail is fetched. The text comes first
// in any mail a workflow cares about; what follows is attachments.
const maxFetchBytes = 4 << 20

// ioTimeout bounds each exchange with the server, so that a server that
// stops answering fails the poll instead of hanging it.
const ioTimeout = time.Minute

// Poller hands the selected unseen mails of one mailbox to Handler. Use a
// pointer: a Poller remembers between polls which mails the filters turned
// down.
type Poller struct {
	Mailbox
	Handler switchboard.EventHandler
	Logger  *slog.Logger // slog.Default() when nil
	NowFunc func() time.Time
	// TLSConfig is for a server whose certificate the system does not
	// trust; nil uses the system's roots. ServerName defaults to Addr's
	// host.
	TLSConfig *tls.Config
	// LeadFunc, when set, is asked before each poll of Run whether this
	// process should read the mailbox now; serve passes one that holds a
	// lease in the store, so that one replica at a time reads a mailbox.
	LeadFunc func(ctx context.Context) bool
	// ReportFunc, when set, hears how each poll of Run went: err is nil
	// when the server answered and every selected mail was handled;
	// otherwise it is the failure, and next is the wait before the next
	// try.
	ReportFunc func(err error, next time.Duration)

	mu          sync.Mutex // one poll at a time
	uidValidity uint32
	// passed holds the UIDs the filters turned down (or that could not be
	// read), valid while uidValidity is: they are not fetched again.
	passed    map[imap.UID]bool
	plainOnce sync.Once
}

// PollOnce connects, hands every selected unseen mail to the Handler and
// marks it \Seen once the Handler returned, and disconnects. It returns how
// many mails were handed over and marked. A mail whose Handler call failed
// stays unseen for the next poll; PollOnce then still handles the others and
// returns the failures joined.
func (p *Poller) PollOnce(ctx context.Context) (handled int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if p.Handler == nil {
		return 0, fmt.Errorf("mailbox %s: no Handler", p.Name)
	}
	s, err := p.connect(ctx)
	if err != nil {
		return 0, err
	}
	defer s.close()
	handled, err = p.poll(ctx, s)
	if !s.broken() && ctx.Err() == nil {
		// A failed goodbye changes nothing.
		_ = s.do(func() error { return s.c.Logout().Wait() })
	}
	return handled, err
}

func (p *Poller) poll(ctx context.Context, s *session) (int, error) {
	folder := p.folder()
	var sel *imap.SelectData
	if err := s.do(func() (err error) { sel, err = s.c.Select(folder, nil).Wait(); return err }); err != nil {
		return 0, p.errorf(ctx, err, "open folder %s", folder)
	}
	if sel.UIDValidity != p.uidValidity || p.passed == nil {
		// UIDs of another validity name other mails.
		p.uidValidity, p.passed = sel.UIDValidity, map[imap.UID]bool{}
	}
	if sel.NumMessages == 0 {
		return 0, nil
	}

	var found *imap.SearchData
	criteria := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	if err := s.do(func() (err error) { found, err = s.c.UIDSearch(criteria, nil).Wait(); return err }); err != nil {
		return 0, p.errorf(ctx, err, "search unseen mail in %s", folder)
	}
	var uids []imap.UID
	passed := map[imap.UID]bool{}
	for _, uid := range found.AllUIDs() {
		if p.passed[uid] {
			passed[uid] = true
		} else {
			uids = append(uids, uid)
		}
	}
	// Forget the mails that are gone or that someone else has read.
	p.passed = passed
	if len(uids) == 0 {
		return 0, nil
	}
	uids, err := p.filter(ctx, s, uids)
	if err != nil {
		return 0, err
	}

	var handled int
	var failed []error
	for _, uid := range uids {
		if ctx.Err() != nil {
			break
		}
		ok, err := p.handle(ctx, s, uid)
		if err != nil && s.broken() {
			return handled, err
		}
		if err != nil {
			failed = append(failed, err)
		}
		if ok {
			handled++
		}
	}
	if err := ctx.Err(); err != nil && len(failed) == 0 {
		return handled, err
	}
	return handled, errors.Join(failed...)
}

// filter fetches the headers of uids and keeps those the filters select.
func (p *Poller) filter(ctx context.Context, s *session, uids []imap.UID) ([]imap.UID, error) {
	if !p.filtered() {
		return uids, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}, Peek: true}
	var msgs []*imapclient.FetchMessageBuffer
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}
	if err := s.do(func() (err error) { msgs, err = s.c.Fetch(imap.UIDSetNum(uids...), opts).Collect(); return err }); err != nil {
		return nil, p.errorf(ctx, err, "fetch mail headers in %s", p.folder())
	}
	var keep []imap.UID
	for _, m := range msgs {
		subject, from := parseHeader(m.FindBodySection(section))
		if p.selects(subject, from) {
			keep = append(keep, m.UID)
			continue
		}
		p.passed[m.UID] = true
		p.logger().Debug("mail not selected by the filters", "uid", m.UID, "subject", subject, "from", from)
	}
	return keep, nil
}

// handle hands one mail to the Handler and marks it seen. It reports
// whether it did both.
func (p *Poller) handle(ctx context.Context, s *session, uid imap.UID) (bool, error) {
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: maxFetchBytes}}
	var msgs []*imapclient.FetchMessageBuffer
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}
	if err := s.do(func() (err error) { msgs, err = s.c.Fetch(imap.UIDSetNum(uid), opts).Collect(); return err }); err != nil {
		return false, p.errorf(ctx, err, "fetch mail %d in %s", uid, p.folder())
	}
	if len(msgs) == 0 || len(msgs[0].BodySection) == 0 {
		// Deleted by another reader since the search.
		return false, nil
	}
	raw := msgs[0].BodySection[0].Bytes
	msg, err := ParseMessage(raw)
	if err != nil {
		// It will not read better next time: leave it to the people.
		p.passed[uid] = true
		p.logger().Warn("mail cannot be read; left unseen and skipped", "uid", uid, "err", err)
		return false, nil
	}
	log := p.logger().With("uid", uid, "message_id", msg.MessageID, "subject", msg.Subject)

	ev := switchboard.Event{
		Source:     "mail",
		DeliveryID: msg.DeliveryID(),
		Trigger:    p.Name,
		Subject:    msg.Subject,
		From:       msg.From,
		Body:       msg.Body,
		ReceivedAt: p.now(),
	}
	runIDs, err := p.Handler.HandleEvent(ctx, ev)
	if err != nil {
		log.Error("mail not handled; left unseen for the next poll", "err", err)
		return false, fmt.Errorf("mailbox %s: handle mail %q: %w", p.Name, msg.Subject, err)
	}
	seen := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
	if err := s.do(func() error { return s.c.Store(imap.UIDSetNum(uid), seen, nil).Close() }); err != nil {
		// The runs are recorded: the next poll hands the mail again and
		// the handler answers with the same runs.
		return false, p.errorf(ctx, err, "mark mail %d seen in %s", uid, p.folder())
	}
	log.Info("mail handled", "runs", runIDs)
	return true, nil
}

// Run polls every PollInterval until ctx is done, and then returns nil.
// After a failed poll it waits longer each time, up to five minutes (or
// PollInterval when that is longer), with jitter, so a server that is down
// is not hammered; the first poll that works brings back the interval. It
// polls only while LeadFunc says so, and tells ReportFunc how each poll
// went. It returns an error only for a configuration that cannot work.
func (p *Poller) Run(ctx context.Context) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Handler == nil {
		return fmt.Errorf("mailbox %s: no Handler", p.Name)
	}
	failures := 0
	for {
		wait := p.pollInterval()
		if p.LeadFunc == nil || p.LeadFunc(ctx) {
			_, err := p.PollOnce(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				failures++
				wait = jitter(retryDelay(p.pollInterval(), failures))
				p.logger().Warn("poll failed; trying again later", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
			} else {
				failures = 0
			}
			if p.ReportFunc != nil {
				p.ReportFunc(err, wait)
			}
		} else {
			// Another replica reads the mailbox; its failures are its own.
			// Ask again soon: if it dies, this one takes over within
			// seconds, not at its next poll.
			failures = 0
			wait = min(wait, StandbyCheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// StandbyCheck is how often a replica that does not read the mailbox asks
// whether it should.
const StandbyCheck = 5 * time.Second

// maxRetryDelay caps the wait after failed polls.
const maxRetryDelay = 5 * time.Minute

// retryDelay is the longest wait before the next poll after failures failed
// polls in a row: the interval, doubled for each failure after the first.
func retryDelay(interval time.Duration, failures int) time.Duration {
	limit := max(maxRetryDelay, interval)
	d := interval
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter returns a random wait between half of d and d, so that replicas
// and mailboxes that failed together do not retry together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func (p *Poller) logger() *slog.Logger {
	l := p.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("mailbox", p.Name)
}

func (p *Poller) now() time.Time {
	if p.NowFunc != nil {
		return p.NowFunc()
	}
	return time.Now()
}

// errorf wraps a failed exchange with what was being done; when ctx ended
// the exchange, it says so instead of reporting a closed connection.
func (p *Poller) errorf(ctx context.Context, err error, format string, args ...any) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return fmt.Errorf("mailbox %s: %s: %w", p.Name, fmt.Sprintf(format, args...), err)
}

// session is one connection to the server, logged in.
type session struct {
	conn net.Conn
	c    *imapclient.Client
	stop func() bool // ends the watch on ctx
	err  error       // the first failed exchange
}

// connect dials, secures and logs in. The connection closes when ctx is
// done, which ends whatever exchange is under way.
func (p *Poller) connect(ctx context.Context) (*session, error) {
	addr, _ := p.addr() // checked by Validate
	host, _, _ := net.SplitHostPort(addr)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.TLSConfig != nil {
		cfg = p.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	opts := &imapclient.Options{
		TLSConfig: cfg,
		// Japanese notices come as ISO-2022-JP encoded words.
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
	}

	dialer := &net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	var err error
	if p.security() == TLS {
		cfg.NextProtos = []string{"imap"}
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: connect to %s: %w", p.Name, addr, err)
	}
	s := &session{conn: conn}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })

	switch p.security() {
	case StartTLS:
		err = s.do(func() (err error) { s.c, err = imapclient.NewStartTLS(conn, opts); return err })
		if err != nil {
			s.close()
			return nil, p.errorf(ctx, err, "STARTTLS with %s", addr)
		}
	case Plain:
		p.plainOnce.Do(func() {
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				p.logger().Warn("mailbox uses plain IMAP: the password and the mails cross the network unencrypted; use tls or starttls", "addr", addr)
			}
		})
		s.c = imapclient.New(conn, opts)
	default:
		s.c = imapclient.New(conn, opts)
	}
	if err := s.do(func() error { return s.c.Login(p.Username, p.Password).Wait() }); err != nil {
		s.close()
		return nil, p.errorf(ctx, err, "log in to %s as %s", addr, p.Username)
	}
	return s, nil
}

// do runs one exchange with the server under ioTimeout.
func (s *session) do(f func() error) error {
	s.conn.SetDeadline(time.Now().Add(ioTimeout))
	err := f()
	// No deadline while the handler works between exchanges.
	s.conn.SetDeadline(time.Time{})
	if err != nil && s.err == nil && !isIMAPError(err) {
		s.err = err
	}
	return err
}

// broken reports whether the connection failed, as opposed to the server
// refusing one command.
func (s *session) broken() bool { return s.err != nil }

func isIMAPError(err error) bool {
	var e *imap.Error
	return errors.As(err, &e)
}

func (s *session) close() {
	s.stop()
	if s.c != nil {
		s.c.Close()
	} else {
		s.conn.Close()
	}
}
