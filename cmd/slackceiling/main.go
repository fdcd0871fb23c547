// Command slackceiling is the ceiling in Switchboard's side-by-side benchmark
// (bench/compare/run.sh): the least a server can do and still answer a Slack
// slash command correctly. It verifies Slack's v0 signature over the raw body
// (HMAC-SHA256, timestamp within five minutes), acks with an ephemeral
// message, and posts the answer to the command's response_url from a
// goroutine. Nothing is stored and nothing is retried: an answer lost to a
// crash or a failed post is lost. It is a yardstick, not a server to run.
//
//	SLACK_SIGNING_SECRET=... slackceiling -addr 127.0.0.1:8080
//
// It serves POST /slack/commands and GET /healthz, listens on loopback only,
// and posts answers only to loopback response_urls.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "slackceiling: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it as main does. It serves until ctx
// is done.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("slackceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "loopback `address` to listen on (port 0 picks a free one)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	secret := getenv("SLACK_SIGNING_SECRET")
	if secret == "" {
		return errors.New("set SLACK_SIGNING_SECRET to the signing secret the commands are signed with")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("-addr %q: slackceiling listens on a loopback address only, e.g. 127.0.0.1:8080", *addr)
	}

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	c := newCeiling(secret, log.New(stderr, "slackceiling: ", 0))
	defer c.wait()
	srv := &http.Server{Handler: c.routes(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "slackceiling listening on http://%s/slack/commands\n", l.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// ceiling answers slash commands with nothing but a signature check.
type ceiling struct {
	secret string
	client *http.Client
	logger *log.Logger
	now    func() time.Time
	posts  sync.WaitGroup // answers still being posted
}

func newCeiling(secret string, logger *log.Logger) *ceiling {
	return &ceiling{
		secret: secret,
		logger: logger,
		now:    time.Now,
		client: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil, // answers go to loopback, never through a proxy
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256, // keep-alive to the one receiver, as undici does for Bolt
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
}

// wait lets the answers in flight finish, so that a stopped server has
// posted what it acked (at most the client's timeout).
func (c *ceiling) wait() { c.posts.Wait() }

func (c *ceiling) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /slack/commands", c.command)
	return mux
}

// maxSkew is how old (or how far ahead) a request's timestamp may be: Slack's
// advice against replayed requests.
const maxSkew = 5 * time.Minute

func (c *ceiling) command(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return
	}
	if err := c.verify(r.Header, body); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "the body is not a form", http.StatusBadRequest)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(message{
		ResponseType: "ephemeral",
		Text:         "Checking tools (i-0123456789abcdef0) — I'll report back here.",
	})

	responseURL := form.Get("response_url")
	if responseURL == "" {
		return
	}
	c.posts.Go(func() {
		f := false
		c.answer(responseURL, message{
			ResponseType:    "in_channel",
			ReplaceOriginal: &f,
			Text:            "tools (i-0123456789abcdef0) is running at 198.51.100.1.",
		})
	})
}

// verify checks Slack's v0 signature over the raw body.
func (c *ceiling) verify(h http.Header, body []byte) error {
	ts := h.Get("X-Slack-Request-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or malformed X-Slack-Request-Timestamp")
	}
	if skew := c.now().Sub(time.Unix(sec, 0)); skew > maxSkew || skew < -maxSkew {
		return errors.New("X-Slack-Request-Timestamp is more than five minutes off")
	}
	got, ok := bytes.CutPrefix([]byte(h.Get("X-Slack-Signature")), []byte("v0="))
	if !ok {
		return errors.New("missing or malformed X-Slack-Signature")
	}
	want := make([]byte, hex.EncodedLen(sha256.Size))
	hex.Encode(want, sign(c.secret, ts, body))
	if !hmac.Equal(got, want) {
		return errors.New("X-Slack-Signature does not match")
	}
	return nil
}

// sign is HMAC-SHA256(secret, "v0:" + timestamp + ":" + body).
func sign(secret, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, "v0:"+timestamp+":")
	mac.Write(body)
	return mac.Sum(nil)
}

type message struct {
	ResponseType    string `json:"response_type"`
	ReplaceOriginal *bool  `json:"replace_original,omitempty"`
	Text            string `json:"text"`
}

// answer posts once; a failure is logged and the answer is gone, which is
// the point of a ceiling: no store, no retry.
func (c *ceiling) answer(responseURL string, m message) {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopback(u.Hostname()) {
		c.logger.Printf("not answering %q: only loopback response_urls are answered", responseURL)
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.logger.Printf("encode answer: %v", err)
		return
	}
	resp, err := c.client.Post(responseURL, "application/json", bytes.NewReader(b))
	if err != nil {
		c.logger.Printf("post answer to %s: %v", responseURL, err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.logger.Printf("post answer to %s: %s", responseURL, resp.Status)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
