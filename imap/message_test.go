package imap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file        string
		wantID      string
		wantSubject string
		wantFrom    string
		wantDate    time.Time
		wantBody    []string // substrings, in order
		notInBody   []string
	}{
		{
			file:        "retirement.eml",
			wantID:      "0100018f7520a1b2-retire-1@email.amazonses.com",
			wantSubject: "[Retirement Notification] Amazon EC2 Instance scheduled for retirement",
			wantFrom:    "Amazon Web Services <no-reply-aws@amazon.com>",
			wantDate:    time.Date(2024, 5, 14, 8, 12, 45, 0, time.UTC),
			wantBody:    []string{"Dear Amazon EC2 Customer,", "(instance-ID: i-0abc1234def567890)", "\ni-0abc1234def567890\n"},
		},
		{
			file:        "maintenance.eml",
			wantID:      "0100018f7a11c3d4-maint-2@email.amazonses.com",
			wantSubject: "Amazon EC2 Maintenance - Maintenance",
			wantFrom:    "Amazon Web Services, Inc. <no-reply-aws@amazon.com>",
			wantDate:    time.Date(2024, 5, 14, 17, 3, 4, 0, time.UTC),
			// Quoted-printable soft line breaks joined, =E2=80=93 decoded;
			// the text part chosen over the HTML one.
			wantBody:  []string{"is scheduled for maintenance. During the maintenance window your instance will be rebooted.", "\nInstance ID: i-0abc1234def567890\n", "15:00 – 17:00 UTC"},
			notInBody: []string{"HTML VERSION", "<p>", "=\n"},
		},
		{
			file:        "html-only.eml",
			wantID:      "html-only-3@aws.example",
			wantSubject: "[Action Required] EC2 メンテナンス",
			wantFrom:    "AWS Health <health@aws.example>",
			wantDate:    time.Date(2024, 5, 16, 10, 0, 0, 0, time.UTC),
			wantBody:    []string{"Scheduled Event\n", "Instance <i-0abc1234def567890> will be rebooted.", "Start 2024-05-20"},
			notInBody:   []string{"<b>", "Ignored", "var x"},
		},
		{
			file:        "retirement-ja.eml",
			wantID:      "jp-retire-4@email.amazonses.com",
			wantSubject: "[Retirement Notification] インスタンスのリタイア予定",
			wantFrom:    "アマゾン ウェブ サービス <no-reply-aws@amazon.com>",
			wantDate:    time.Date(2024, 5, 17, 0, 0, 0, 0, time.UTC),
			wantBody:    []string{"お客様各位\n\nインスタンス i-0abc1234def567890 は 2024-05-28 にリタイアします。"},
		},
		{
			file:        "no-message-id.eml",
			wantID:      "",
			wantSubject: "Amazon EC2 Maintenance - Maintenance",
			wantFrom:    "monitor@example.com",
			wantDate:    time.Date(2024, 5, 18, 12, 0, 0, 0, time.UTC),
			wantBody:    []string{"Instance i-0abc1234def567890 needs a reboot."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMessage(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if m.MessageID != tt.wantID {
				t.Errorf("MessageID = %q, want %q", m.MessageID, tt.wantID)
			}
			if m.Subject != tt.wantSubject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.wantSubject)
			}
			if m.From != tt.wantFrom {
				t.Errorf("From = %q, want %q", m.From, tt.wantFrom)
			}
			if !m.Date.Equal(tt.wantDate) {
				t.Errorf("Date = %v, want %v", m.Date, tt.wantDate)
			}
			rest := m.Body
			for _, s := range tt.wantBody {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("Body lacks %q (in order); body:\n%s", s, m.Body)
				}
				rest = rest[i+len(s):]
			}
			for _, s := range tt.notInBody {
				if strings.Contains(m.Body, s) {
					t.Errorf("Body has %q; body:\n%s", s, m.Body)
				}
			}
			if strings.Contains(m.Body, "\r") {
				t.Errorf("Body keeps CR line ends")
			}
		})
	}
}

func TestParseMessageFailsWithoutHeader(t *testing.T) {
	t.Parallel()
	if _, err := ParseMessage([]byte("no colon here\r\n\r\nbody")); err == nil {
		t.Error("ParseMessage accepted a mail whose header is not a header")
	}
}

func TestParseMessageCapsBody(t *testing.T) {
	t.Parallel()
	// A multi-byte character straddles the cap.
	body := "x" + strings.Repeat("é", MaxBodyBytes)
	m, err := ParseMessage([]byte("Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Body) > MaxBodyBytes || len(m.Body) < MaxBodyBytes-utf8.UTFMax {
		t.Errorf("len(Body) = %d, want just under %d", len(m.Body), MaxBodyBytes)
	}
	if !utf8.ValidString(m.Body) {
		t.Error("the cap split a character")
	}
}

func TestDeliveryID(t *testing.T) {
	t.Parallel()
	date := time.Date(2024, 5, 18, 12, 0, 0, 0, time.UTC)
	noID := Message{Subject: "s", From: "f", Date: date, Body: "b"}
	long := strings.Repeat("x", maxMessageIDBytes+1)
	tests := []struct {
		name   string
		a, b   Message
		same   bool
		wantID string // when not empty, a's id
	}{
		{name: "message-id is the id", a: Message{MessageID: "1@x", Subject: "a"}, b: Message{MessageID: "1@x", Subject: "b"}, same: true, wantID: "1@x"},
		{name: "other message-id", a: Message{MessageID: "1@x"}, b: Message{MessageID: "2@x"}, same: false},
		{name: "no message-id, same mail", a: noID, b: noID, same: true},
		{name: "no message-id, other body", a: noID, b: Message{Subject: "s", From: "f", Date: date, Body: "c"}, same: false},
		{name: "no message-id, other date", a: noID, b: Message{Subject: "s", From: "f", Date: date.Add(time.Second), Body: "b"}, same: false},
		{name: "huge message-id is hashed", a: Message{MessageID: long}, b: Message{MessageID: long}, same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := tt.a.DeliveryID(), tt.b.DeliveryID()
			if (a == b) != tt.same {
				t.Errorf("ids %q and %q: same = %v, want %v", a, b, a == b, tt.same)
			}
			if tt.wantID != "" && a != tt.wantID {
				t.Errorf("id = %q, want %q", a, tt.wantID)
			}
			if a == "" || len(a) > maxMessageIDBytes {
				t.Errorf("id %q is empty or too long", a)
			}
		})
	}
}

func TestStripTags(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"<p>a</p><p>b</p>", "a\n\nb"},
		{"line<br>next<br/>last", "line\nnext\nlast"},
		{"a &amp; b &lt;i-1&gt; &nbsp;c", "a & b <i-1> c"},
		{"<style>p{}</style><!-- hidden -->shown", "shown"},
		{"wrapped\nin source", "wrapped in source"},
		{"<table><tr><td>k</td><td>v</td></tr></table>", "k v"},
		{"no html at all", "no html at all"},
		{"<unclosed", "<unclosed"},
	}
	for _, tt := range tests {
		if got := stripTags(tt.in); got != tt.want {
			t.Errorf("stripTags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseMessage checks that no mail, however broken, makes the parser
// panic or hand out invalid UTF-8 or an oversized body.
func FuzzParseMessage(f *testing.F) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed mails in testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>cut"))
	f.Add([]byte("Subject: =?unknown?Q?x?=\r\nContent-Type: text/plain; charset=klingon\r\nContent-Transfer-Encoding: rot13\r\n\r\n\xff\xfe"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw)
		if err != nil {
			return
		}
		for name, s := range map[string]string{"MessageID": m.MessageID, "Subject": m.Subject, "From": m.From, "Body": m.Body} {
			if !utf8.ValidString(s) {
				t.Errorf("%s %q is not valid UTF-8", name, s)
			}
		}
		if len(m.Body) > MaxBodyBytes {
			t.Errorf("len(Body) = %d, over MaxBodyBytes", len(m.Body))
		}
		if id := m.DeliveryID(); id == "" {
			t.Error("empty DeliveryID")
		}
	})
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
