package imap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // ISO-2022-JP, Shift_JIS, Latin-1... in bodies and headers
	"github.com/emersion/go-message/mail"
)

// MaxBodyBytes caps Message.Body: a workflow needs the notice's text (the
// instance ids, the dates), not a newsletter's worth of it.
const MaxBodyBytes = 1 << 20

// maxMessageIDBytes caps a Message-ID used as is; a longer one is hashed so
// that a hostile mail cannot make a huge delivery id.
const maxMessageIDBytes = 512

// Message is what a workflow gets to see of a mail.
type Message struct {
	// MessageID is the Message-ID without angle brackets, "" when the mail
	// has none.
	MessageID string
	Subject   string // decoded (RFC 2047) to UTF-8
	// From is the first sender as "Name <address>", or just the address.
	From string
	// Date is the Date header, zero when missing or unreadable.
	Date time.Time
	// Body is the text of the mail in UTF-8: the first text/plain part that
	// is not an attachment, else the first text/html part without its tags;
	// at most MaxBodyBytes.
	Body string
}

// DeliveryID identifies the mail for deduplication: its Message-ID, or when
// it has none, a hash of what it says, so that the same mail delivered twice
// (or fetched again after a crash) gets the same id.
func (m Message) DeliveryID() string {
	if m.MessageID != "" && len(m.MessageID) <= maxMessageIDBytes {
		return m.MessageID
	}
	h := sha256.New()
	if m.MessageID != "" {
		fmt.Fprintf(h, "message-id\n%s", m.MessageID)
	} else {
		var date string
		if !m.Date.IsZero() {
			date = m.Date.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(h, "%s\n%s\n%s\n%s", date, m.From, m.Subject, m.Body)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:32]
}

// ParseMessage reads a raw RFC 5322 mail. It fails only when the header
// cannot be read at all: a body with an unknown charset or encoding, or one
// cut short, yields what could be read of it.
func ParseMessage(raw []byte) (Message, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return Message{}, fmt.Errorf("read mail header: %w", err)
	}
	h := mail.Header{Header: e.Header}
	subject, _ := h.Subject() // undecodable words stay as they are
	m := Message{
		MessageID: messageID(h),
		Subject:   clean(subject),
		From:      clean(sender(h)),
		Body:      clean(text(e)),
	}
	m.Date, _ = h.Date()
	if len(m.Body) > MaxBodyBytes {
		m.Body = truncate(m.Body, MaxBodyBytes)
	}
	return m, nil
}

// parseHeader reads only what the filters look at, from a header fetched
// without the body, the same way ParseMessage does.
func parseHeader(raw []byte) (subject, from string) {
	e, _ := message.Read(bytes.NewReader(raw))
	if e == nil {
		return "", ""
	}
	h := mail.Header{Header: e.Header}
	subject, _ = h.Subject()
	return clean(subject), clean(sender(h))
}

func messageID(h mail.Header) string {
	if id, err := h.MessageID(); err == nil && id != "" {
		return clean(id)
	}
	// Not RFC 5322 (no @, spaces inside...): still an identifier the sender
	// chose, and the same on every copy of the mail.
	raw := strings.Join(strings.Fields(h.Get("Message-Id")), " ")
	return clean(strings.TrimSuffix(strings.TrimPrefix(raw, "<"), ">"))
}

func sender(h mail.Header) string {
	if list, err := h.AddressList("From"); err == nil && len(list) > 0 {
		a := list[0]
		if a.Name == "" {
			return a.Address
		}
		return a.Name + " <" + a.Address + ">"
	}
	from, _ := h.Text("From")
	return strings.TrimSpace(from)
}

// text finds the body a person would read, walking the MIME tree.
func text(e *message.Entity) string {
	var plain, htm []byte
	var havePlain, haveHTML bool
	// Walk stops at a part it cannot parse (a truncated multipart); what
	// was found before stays good.
	_ = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		if disp, _, _ := part.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		t, _, _ := part.Header.ContentType()
		switch {
		case (t == "text/plain" || t == "") && !havePlain:
			plain, havePlain = readUpTo(part.Body, MaxBodyBytes+utf8.UTFMax), true
		case t == "text/html" && !haveHTML:
			// Tags take room: read more than will be kept.
			htm, haveHTML = readUpTo(part.Body, 4*MaxBodyBytes), true
		}
		return nil
	})
	switch {
	case havePlain && len(bytes.TrimSpace(plain)) > 0:
		return normalize(string(plain))
	case haveHTML:
		return stripTags(string(htm))
	default:
		return normalize(string(plain))
	}
}

func readUpTo(r io.Reader, n int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, n)) // keep what came before an error
	return b
}

// normalize makes line ends LF and drops surrounding blank space.
func normalize(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.TrimSpace(s)
}

// clean makes s valid UTF-8: events end up in JSON and in chat messages.
func clean(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var (
	invisible  = regexp.MustCompile(`(?is)<(script|style|head|title)\b.*?</(script|style|head|title)\s*>|<!--.*?-->`)
	lineBreak  = regexp.MustCompile(`(?i)<(br|/?p|/?div|/?tr|/?li|/?h[1-6]|/?table|/?ul|/?ol|/?blockquote|hr)\b[^>]*>`)
	cell       = regexp.MustCompile(`(?i)</?t[dh]\b[^>]*>`)
	tag        = regexp.MustCompile(`<[^>]*>`)
	spaces     = regexp.MustCompile(`[ \t\f\v\x{00A0}]+`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// stripTags turns an HTML mail into its text: enough to read a notice and
// find the instance ids in it, not a renderer.
func stripTags(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = invisible.ReplaceAllString(s, "")
	// Line ends in the source are just spaces in HTML.
	s = strings.ReplaceAll(s, "\n", " ")
	s = lineBreak.ReplaceAllString(s, "\n")
	s = cell.ReplaceAllString(s, " ")
	s = tag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(spaces.ReplaceAllString(l, " "))
	}
	s = blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(s)
}
