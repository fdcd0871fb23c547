package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var now = time.Date(2024, 5, 14, 9, 0, 0, 0, time.UTC)

// awsNotices selects the two notices of the user story.
var awsNotices = regexp.MustCompile(`Amazon EC2 Maintenance - Maintenance|\[Retirement Notification\]`)

func TestPollOnceHandsMailOnceThenMarksItSeen(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	acct.Deliver(t, readTestdata(t, "retirement.eml"))
	h := &handler{}
	p := newPoller(acct, h)

	n, err := p.PollOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PollOnce = %d, %v; want 1 mail handled", n, err)
	}
	want := switchboard.Event{
		Source:     "mail",
		DeliveryID: "0100018f7520a1b2-retire-1@email.amazonses.com",
		Trigger:    "aws-notices",
		Subject:    "[Retirement Notification] Amazon EC2 Instance scheduled for retirement",
		From:       "Amazon Web Services <no-reply-aws@amazon.com>",
		ReceivedAt: now,
	}
	evs := h.events()
	if len(evs) != 1 {
		t.Fatalf("handler got %d events, want 1", len(evs))
	}
	got := evs[0]
	if !strings.Contains(got.Body, "(instance-ID: i-0abc1234def567890)") {
		t.Errorf("Body does not name the instance:\n%s", got.Body)
	}
	got.Body = ""
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event = %+v\nwant    %+v", got, want)
	}
	if unseen := unseenSubjects(t, acct, "INBOX"); len(unseen) != 0 {
		t.Errorf("unseen after handling: %q, want none", unseen)
	}

	n, err = p.PollOnce(context.Background())
	if err != nil || n != 0 {
		t.Errorf("second PollOnce = %d, %v; want nothing handled", n, err)
	}
	if len(h.events()) != 1 {
		t.Errorf("handler got %d events after the second poll, want still 1", len(h.events()))
	}
}

func TestPollOncePassesTheSameIDForADuplicateMail(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	for _, file := range []string{"maintenance.eml", "maintenance.eml", "no-message-id.eml", "no-message-id.eml"} {
		acct.Deliver(t, readTestdata(t, file))
	}
	h := &handler{}
	p := newPoller(acct, h)

	n, err := p.PollOnce(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("PollOnce = %d, %v; want 4 mails handled", n, err)
	}
	evs := h.events()
	if len(evs) != 4 {
		t.Fatalf("handler got %d events, want 4", len(evs))
	}
	// The handler deduplicates: the poller's part is the same id for the
	// same mail.
	if evs[0].DeliveryID != "0100018f7a11c3d4-maint-2@email.amazonses.com" || evs[1].DeliveryID != evs[0].DeliveryID {
		t.Errorf("ids of the delivered-twice mail = %q, %q; want its Message-ID twice", evs[0].DeliveryID, evs[1].DeliveryID)
	}
	if evs[2].DeliveryID == "" || evs[3].DeliveryID != evs[2].DeliveryID || evs[2].DeliveryID == evs[0].DeliveryID {
		t.Errorf("ids of the mail without Message-ID = %q, %q; want one id of its own, twice", evs[2].DeliveryID, evs[3].DeliveryID)
	}
	if unseen := unseenSubjects(t, acct, "INBOX"); len(unseen) != 0 {
		t.Errorf("unseen after handling: %q, want none", unseen)
	}
}

func TestPollOnceLeavesMailUnseenWhenTheHandlerFails(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	acct.Deliver(t, readTestdata(t, "retirement.eml"))
	h := &handler{failures: 1}
	p := newPoller(acct, h)

	n, err := p.PollOnce(context.Background())
	if n != 0 || !errors.Is(err, errStore) {
		t.Fatalf("PollOnce = %d, %v; want 0 handled and the handler's error", n, err)
	}
	if unseen := unseenSubjects(t, acct, "INBOX"); len(unseen) != 1 {
		t.Fatalf("unseen after a failed handler: %q, want the mail", unseen)
	}

	n, err = p.PollOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PollOnce after the handler recovered = %d, %v; want 1 handled", n, err)
	}
	evs := h.events()
	if len(evs) != 2 || evs[0].DeliveryID != evs[1].DeliveryID {
		t.Errorf("handler got %d events (%+v); want the same mail twice", len(evs), evs)
	}
	if unseen := unseenSubjects(t, acct, "INBOX"); len(unseen) != 0 {
		t.Errorf("unseen after the retry: %q, want none", unseen)
	}
}

func TestPollOnceFilters(t *testing.T) {
	t.Parallel()
	newsletter := "From: News <news@example.com>\nSubject: This week at Example\nMessage-ID: <news-1@example.com>\n\nHello\n"
	phish := "From: Amazon <security@amazon-alerts.example>\nSubject: [Retirement Notification] click here\nMessage-ID: <phish-1@example.com>\n\nclick\n"
	tests := []struct {
		name        string
		subject     *regexp.Regexp
		from        *regexp.Regexp
		filters     []Filter
		wantHandled []string // subjects
		wantUnseen  []string
	}{
		{
			name:        "subject",
			subject:     awsNotices,
			wantHandled: []string{"[Retirement Notification] Amazon EC2 Instance scheduled for retirement", "[Retirement Notification] click here"},
			wantUnseen:  []string{"This week at Example"},
		},
		{
			name:        "subject and sender",
			subject:     awsNotices,
			from:        regexp.MustCompile(`<no-reply-aws@amazon\.com>$`),
			wantHandled: []string{"[Retirement Notification] Amazon EC2 Instance scheduled for retirement"},
			wantUnseen:  []string{"This week at Example", "[Retirement Notification] click here"},
		},
		{
			name: "any of the triggers",
			filters: []Filter{
				{Subject: regexp.MustCompile(`^\[Retirement Notification\]`), From: regexp.MustCompile(`@amazon\.com>$`)},
				{From: regexp.MustCompile(`^News `)},
			},
			wantHandled: []string{"[Retirement Notification] Amazon EC2 Instance scheduled for retirement", "This week at Example"},
			wantUnseen:  []string{"[Retirement Notification] click here"},
		},
		{
			name:        "mailbox filter and triggers",
			subject:     awsNotices,
			filters:     []Filter{{From: regexp.MustCompile(`^News `)}, {From: regexp.MustCompile(`amazon-alerts`)}},
			wantHandled: []string{"[Retirement Notification] click here"},
			wantUnseen:  []string{"[Retirement Notification] Amazon EC2 Instance scheduled for retirement", "This week at Example"},
		},
		{
			name:        "none",
			wantHandled: []string{"[Retirement Notification] Amazon EC2 Instance scheduled for retirement", "This week at Example", "[Retirement Notification] click here"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acct := testenv.Dovecot(t)
			acct.Deliver(t, readTestdata(t, "retirement.eml"))
			acct.Deliver(t, []byte(newsletter))
			acct.Deliver(t, []byte(phish))
			h := &handler{}
			p := newPoller(acct, h)
			p.SubjectMatch, p.FromMatch, p.Filters = tt.subject, tt.from, tt.filters

			for range 2 { // the second poll hands nothing more
				if _, err := p.PollOnce(context.Background()); err != nil {
					t.Fatalf("PollOnce: %v", err)
				}
			}
			var handled []string
			for _, ev := range h.events() {
				handled = append(handled, ev.Subject)
			}
			if fmt.Sprint(handled) != fmt.Sprint(tt.wantHandled) {
				t.Errorf("handled %q, want %q", handled, tt.wantHandled)
			}
			if unseen := unseenSubjects(t, acct, "INBOX"); fmt.Sprint(unseen) != fmt.Sprint(tt.wantUnseen) {
				t.Errorf("unseen %q, want %q (mails the filters turn down stay untouched)", unseen, tt.wantUnseen)
			}
		})
	}
}

func TestPollOnceReadsMIMEMail(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	acct.Deliver(t, readTestdata(t, "maintenance.eml"))
	acct.Deliver(t, readTestdata(t, "retirement-ja.eml"))
	h := &handler{}
	if _, err := newPoller(acct, h).PollOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := h.events()
	if len(evs) != 2 {
		t.Fatalf("handler got %d events, want 2", len(evs))
	}
	if b := evs[0].Body; !strings.Contains(b, "your instance will be rebooted.\n\nInstance ID: i-0abc1234def567890\n") || strings.Contains(b, "HTML VERSION") {
		t.Errorf("multipart mail: body is not the decoded text part:\n%s", b)
	}
	if s := evs[1].Subject; s != "[Retirement Notification] インスタンスのリタイア予定" {
		t.Errorf("ISO-2022-JP subject = %q", s)
	}
	if b := evs[1].Body; !strings.Contains(b, "インスタンス i-0abc1234def567890 は") {
		t.Errorf("ISO-2022-JP body not decoded:\n%s", b)
	}
}

func TestPollOnceConnections(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	tests := []struct {
		name    string
		change  func(p *Poller)
		wantErr string
	}{
		{name: "tls", change: func(p *Poller) { p.Addr, p.TLS = acct.TLSAddr, TLS }},
		{name: "tls is the default", change: func(p *Poller) { p.Addr, p.TLS = acct.TLSAddr, "" }},
		{name: "starttls", change: func(p *Poller) { p.TLS = StartTLS }},
		{name: "plain", change: func(p *Poller) { p.TLS = Plain }},
		{name: "folder", change: func(p *Poller) { p.TLS, p.Folder = Plain, "AWS/Notices" }},
		{
			name:    "untrusted certificate",
			change:  func(p *Poller) { p.Addr, p.TLS, p.TLSConfig = acct.TLSAddr, TLS, nil },
			wantErr: "certificate",
		},
		{name: "wrong password", change: func(p *Poller) { p.TLS, p.Password = Plain, "wrong" }, wantErr: "log in to"},
		{name: "missing folder", change: func(p *Poller) { p.TLS, p.Folder = Plain, "Nope" }, wantErr: "open folder Nope"},
		{name: "no server", change: func(p *Poller) { p.TLS, p.Addr = Plain, closedAddr(t) }, wantErr: "connect to"},
		{name: "bad tls setting", change: func(p *Poller) { p.TLS = "ssl" }, wantErr: "tls is \"ssl\""},
	}
	acct.DeliverTo(t, "AWS/Notices", readTestdata(t, "retirement.eml"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPoller(acct, &handler{})
			p.TLSConfig = &tls.Config{RootCAs: acct.RootCAs}
			tt.change(p)
			_, err := p.PollOnce(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Errorf("PollOnce: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("PollOnce error = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	h := &handler{got: make(chan switchboard.Event, 10)}
	p := newPoller(acct, h)
	p.PollInterval = 10 * time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	// A mail that arrives while Run polls is handed over.
	acct.Deliver(t, readTestdata(t, "retirement.eml"))
	select {
	case ev := <-h.got:
		if ev.Trigger != "aws-notices" {
			t.Errorf("event from %q", ev.Trigger)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not hand over the mail")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
}

func TestRunRejectsABadMailbox(t *testing.T) {
	t.Parallel()
	p := &Poller{Mailbox: Mailbox{Name: "x", Addr: "imap.example.com", Username: "u", TLS: "ssl"}, Handler: &handler{}}
	err := p.Run(context.Background())
	if switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("Run = %v, want an EINVALID error", err)
	}
}

func TestMailboxValidate(t *testing.T) {
	t.Parallel()
	ok := Mailbox{Name: "aws", Addr: "imap.example.com", Username: "ops"}
	tests := []struct {
		name   string
		change func(*Mailbox)
		want   string // in the message; "" for valid
		key    string // the setting the error names
	}{
		{name: "defaults", change: func(*Mailbox) {}},
		{name: "port", change: func(m *Mailbox) { m.Addr = "imap.example.com:1993" }},
		{name: "ipv6", change: func(m *Mailbox) { m.Addr = "::1" }},
		{name: "no name", change: func(m *Mailbox) { m.Name = "" }, want: "needs a name"},
		{name: "no addr", change: func(m *Mailbox) { m.Addr = "" }, want: "address of its IMAP server", key: "addr"},
		{name: "bad addr", change: func(m *Mailbox) { m.Addr = "[::1" }, want: "is not host or host:port", key: "addr"},
		{name: "no user", change: func(m *Mailbox) { m.Username = "" }, want: "username", key: "username"},
		{name: "tls", change: func(m *Mailbox) { m.TLS = "yes" }, want: `use "tls"`, key: "tls"},
		{name: "interval", change: func(m *Mailbox) { m.PollInterval = -time.Second }, want: "poll interval", key: "poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.change(&m)
			err := m.Validate()
			if tt.want == "" && err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
			if tt.want == "" {
				return
			}
			if !strings.Contains(switchboard.ErrorMessage(err), tt.want) || switchboard.ErrorCode(err) != switchboard.EINVALID {
				t.Errorf("Validate = %v, want an EINVALID message with %q", err, tt.want)
			}
			var setting interface{ ConfigKey() string }
			if !errors.As(err, &setting) {
				t.Errorf("Validate = %v names no setting, want %q", err, tt.key)
			} else if setting.ConfigKey() != tt.key {
				t.Errorf("Validate = %v names the setting %q, want %q", err, setting.ConfigKey(), tt.key)
			}
		})
	}
}

// report is one call of a Poller's ReportFunc.
type report struct {
	err  error
	next time.Duration
}

// A mailbox whose server does not answer is tried again later and later,
// each failure reported with the wait before the next try.
func TestRunReportsFailuresAndBacksOff(t *testing.T) {
	t.Parallel()
	reports := make(chan report, 100)
	p := &Poller{
		Mailbox:    Mailbox{Name: "down", Addr: closedAddr(t), Username: "u", Password: "hunter2-secret", TLS: Plain, PollInterval: 20 * time.Millisecond},
		Handler:    &handler{},
		Logger:     slog.New(slog.DiscardHandler),
		ReportFunc: func(err error, next time.Duration) { reports <- report{err, next} },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for i := 1; i <= 4; i++ {
		r := <-reports
		if r.err == nil || !strings.Contains(r.err.Error(), "connection refused") {
			t.Fatalf("report %d: %v, want the refused connection", i, r.err)
		}
		if strings.Contains(r.err.Error(), "hunter2") {
			t.Errorf("report %d shows the password: %v", i, r.err)
		}
		if ceiling := retryDelay(p.PollInterval, i); r.next < ceiling/2 || r.next > ceiling {
			t.Errorf("report %d: next try in %v, want between %v and %v", i, r.next, ceiling/2, ceiling)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// Run reads the mailbox only while LeadFunc says so, and reports a poll
// that works.
func TestRunPollsOnlyWhileLeading(t *testing.T) {
	t.Parallel()
	acct := testenv.Dovecot(t)
	h := &handler{got: make(chan switchboard.Event, 10)}
	p := newPoller(acct, h)
	p.PollInterval = 10 * time.Millisecond
	var mu sync.Mutex
	lead, asked := false, 0
	p.LeadFunc = func(context.Context) bool {
		mu.Lock()
		defer mu.Unlock()
		asked++
		return lead
	}
	reports := make(chan report, 1000)
	p.ReportFunc = func(err error, next time.Duration) { reports <- report{err, next} }
	acct.Deliver(t, readTestdata(t, "retirement.eml"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	if asked < 2 {
		t.Errorf("LeadFunc asked %d times in 200ms of 10ms intervals", asked)
	}
	if len(reports) > 0 || len(h.events()) > 0 {
		t.Errorf("Run polled without the lead: %d reports, %d events", len(reports), len(h.events()))
	}
	lead = true
	mu.Unlock()
	select {
	case <-h.got:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not hand over the mail once it led")
	}
	if r := <-reports; r.err != nil || r.next != p.PollInterval {
		t.Errorf("report after a good poll: %v, next %v; want nil and the interval", r.err, r.next)
	}
	cancel()
	<-done
}

func TestJitter(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, time.Nanosecond, time.Second, 5 * time.Minute} {
		for range 100 {
			if got := jitter(d); got < d/2 || got > d {
				t.Fatalf("jitter(%v) = %v, want between %v and %v", d, got, d/2, d)
			}
		}
	}
}

func TestMailboxAddrDefaultPort(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, tls, want string }{
		{"imap.example.com", "", "imap.example.com:993"},
		{"imap.example.com", StartTLS, "imap.example.com:143"},
		{"imap.example.com", Plain, "imap.example.com:143"},
		{"imap.example.com:1143", TLS, "imap.example.com:1143"},
		{"::1", TLS, "[::1]:993"},
	}
	for _, tt := range tests {
		got, err := Mailbox{Addr: tt.addr, TLS: tt.tls}.addr()
		if err != nil || got != tt.want {
			t.Errorf("addr(%q, %q) = %q, %v; want %q", tt.addr, tt.tls, got, err, tt.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 1, 30 * time.Second},
		{30 * time.Second, 2, time.Minute},
		{30 * time.Second, 4, 4 * time.Minute},
		{30 * time.Second, 5, 5 * time.Minute},
		{30 * time.Second, 1000, 5 * time.Minute},
		{time.Hour, 3, time.Hour},
		{10 * time.Millisecond, 3, 40 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := retryDelay(tt.interval, tt.failures); got != tt.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", tt.interval, tt.failures, got, tt.want)
		}
	}
}

// handler records the events it gets; it fails its first failures calls.
type handler struct {
	mu       sync.Mutex
	evs      []switchboard.Event
	failures int
	got      chan switchboard.Event // when not nil, gets every event too
}

var _ switchboard.EventHandler = (*handler)(nil)

var errStore = errors.New("store unavailable")

func (h *handler) HandleEvent(ctx context.Context, ev switchboard.Event) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evs = append(h.evs, ev)
	if h.got != nil {
		h.got <- ev
	}
	if h.failures > 0 {
		h.failures--
		return nil, errStore
	}
	return []string{fmt.Sprintf("run-%d", len(h.evs))}, nil
}

func (h *handler) events() []switchboard.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]switchboard.Event(nil), h.evs...)
}

func newPoller(acct testenv.MailAccount, h switchboard.EventHandler) *Poller {
	return &Poller{
		Mailbox: Mailbox{
			Name:         "aws-notices",
			Addr:         acct.Addr,
			Username:     acct.User,
			Password:     acct.Password,
			TLS:          Plain,
			SubjectMatch: awsNotices,
		},
		Handler: h,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		NowFunc: func() time.Time { return now },
	}
}

// unseenSubjects lists the subjects of the mails in folder without \Seen,
// looking without changing anything.
func unseenSubjects(t *testing.T, acct testenv.MailAccount, folder string) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(acct.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(acct.User, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.Envelope.Subject)
	}
	return subjects
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
