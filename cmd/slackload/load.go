package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// attempt is one slash command and what became of it.
type attempt struct {
	sent        time.Time
	ack         time.Duration // HTTP round trip; zero when the request failed
	ok          bool          // acked with 200
	failure     string        // kind of failure when !ok: "HTTP 500", "timeout", ...
	answers     int
	firstAnswer time.Duration // sent -> first answer at the response_url
}

// test is one run of the load generator.
type test struct {
	cfg      config
	client   *http.Client
	runID    uint64
	answerTo string // base of every response_url: http://127.0.0.1:PORT/r/

	mu           sync.Mutex
	attempts     []*attempt
	start, end   time.Time // first send, last ack
	stray        int       // answers at a path that names no command we sent
	failSamples  map[string]string
	sampleAck    string
	sampleAnswer string
}

func loadTest(ctx context.Context, cfg config) (*report, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	idle := cfg.Concurrency
	if cfg.Rate > 0 {
		idle = 1024
	}
	lt := &test{
		cfg:         cfg,
		runID:       binary.BigEndian.Uint64(b[:]) >> 1, // trigger_ids stay unique across runs against one server
		failSamples: map[string]string{},
		client: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				Proxy:               nil, // measure the server, never a proxy
				MaxIdleConns:        idle,
				MaxIdleConnsPerHost: idle,
				DisableCompression:  true,
			},
		},
	}
	defer lt.client.CloseIdleConnections()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the response_url receiver: %w", err)
	}
	lt.answerTo = "http://" + l.Addr().String() + "/r/"
	receiver := &http.Server{Handler: lt.receiver(), ReadHeaderTimeout: 10 * time.Second}
	go receiver.Serve(l)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		receiver.Shutdown(sctx)
	}()

	if cfg.Rate > 0 {
		lt.openLoop(ctx)
	} else {
		lt.closedLoop(ctx)
	}
	lt.awaitAnswers(ctx)

	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.report(ctx.Err() != nil), nil
}

// next registers the next command, or says that the run has sent enough.
func (lt *test) next(deadline time.Time) (int, *attempt, bool) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.cfg.N > 0 && len(lt.attempts) >= lt.cfg.N {
		return 0, nil, false
	}
	now := time.Now()
	if !deadline.IsZero() && !now.Before(deadline) {
		return 0, nil, false
	}
	if lt.start.IsZero() {
		lt.start = now
	}
	a := &attempt{}
	lt.attempts = append(lt.attempts, a)
	return len(lt.attempts) - 1, a, true
}

func (lt *test) deadline() time.Time {
	if lt.cfg.Duration == 0 {
		return time.Time{}
	}
	return time.Now().Add(lt.cfg.Duration)
}

// closedLoop keeps -concurrency commands in flight: each worker sends its
// next command as soon as the previous one is acked.
func (lt *test) closedLoop(ctx context.Context) {
	deadline := lt.deadline()
	var wg sync.WaitGroup
	for range lt.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				n, a, ok := lt.next(deadline)
				if !ok {
					return
				}
				lt.send(ctx, n, a)
			}
		})
	}
	wg.Wait()
}

// openLoop sends -rate commands a second on a fixed schedule, whether or not
// the server keeps up, so that a slow server shows as latency rather than as
// fewer requests.
func (lt *test) openLoop(ctx context.Context) {
	deadline := lt.deadline()
	interval := time.Duration(float64(time.Second) / lt.cfg.Rate)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !deadline.IsZero() && !at.Before(deadline) {
			return
		}
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		n, a, ok := lt.next(deadline)
		if !ok {
			return
		}
		wg.Go(func() { lt.send(ctx, n, a) })
	}
}

// send posts slash command n the way Slack does and records the ack.
func (lt *test) send(ctx context.Context, n int, a *attempt) {
	body := lt.body(n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lt.cfg.URL, bytes.NewReader(body))
	if err != nil {
		lt.fail(a, "request", err.Error())
		return
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "slackload (Slackbot 1.0 compatible)")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sign(lt.cfg.Secret, ts, body))

	sent := time.Now()
	lt.mu.Lock()
	a.sent = sent
	lt.mu.Unlock()

	resp, err := lt.client.Do(req)
	if err != nil {
		lt.fail(a, transportFailure(err), err.Error())
		return
	}
	ackBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	took := time.Since(sent)
	if err != nil {
		lt.fail(a, transportFailure(err), err.Error())
		return
	}
	if resp.StatusCode != http.StatusOK {
		lt.fail(a, "HTTP "+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(ackBody)))
		return
	}

	lt.mu.Lock()
	defer lt.mu.Unlock()
	a.ok, a.ack = true, took
	if end := sent.Add(took); end.After(lt.end) {
		lt.end = end
	}
	if lt.sampleAck == "" {
		lt.sampleAck = sample(ackBody)
	}
}

func (lt *test) fail(a *attempt, kind, detail string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	a.failure = kind
	if _, ok := lt.failSamples[kind]; !ok {
		lt.failSamples[kind] = sample([]byte(detail))
	}
}

// body is the form Slack posts for a slash command. Each has its own
// trigger_id, because servers deduplicate deliveries by it, and its own
// response_url, so that each answer names the command it answers.
func (lt *test) body(n int) []byte {
	channel := lt.cfg.Channel
	if lt.cfg.Channels > 1 {
		channel += strconv.Itoa(n % lt.cfg.Channels)
	}
	v := url.Values{
		"token":                 {"slackload-unused-verification-token"},
		"team_id":               {"T0SLACKLOAD"},
		"team_domain":           {"slackload"},
		"channel_id":            {channel},
		"channel_name":          {"slackload"},
		"user_id":               {lt.cfg.User},
		"user_name":             {"slackload"},
		"command":               {lt.cfg.Command},
		"text":                  {lt.cfg.Text},
		"api_app_id":            {"A0SLACKLOAD"},
		"is_enterprise_install": {"false"},
		"response_url":          {lt.answerTo + strconv.Itoa(n)},
		"trigger_id":            {fmt.Sprintf("%d.%d.slackload", lt.runID, n)},
	}
	return []byte(v.Encode())
}

// sign computes Slack's v0 request signature:
// v0=hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)).
func sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", timestamp)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// transportFailure names the kind of a failed round trip, so that a
// thousand refused connections count as one kind of error.
func transportFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	default:
		return "transport error"
	}
}

// receiver takes the answers the server posts to the response_urls.
func (lt *test) receiver() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /r/{n}", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		n, err := strconv.Atoi(r.PathValue("n"))

		lt.mu.Lock()
		if err != nil || n < 0 || n >= len(lt.attempts) || lt.attempts[n].sent.IsZero() {
			lt.stray++
			lt.mu.Unlock()
			http.Error(w, "no such response_url", http.StatusNotFound)
			return
		}
		a := lt.attempts[n]
		a.answers++
		if a.answers == 1 {
			a.firstAnswer = now.Sub(a.sent)
		}
		if lt.sampleAnswer == "" {
			lt.sampleAnswer = sample(body)
		}
		lt.mu.Unlock()

		// What Slack's response_url answers.
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		lt.mu.Lock()
		lt.stray++
		lt.mu.Unlock()
		http.Error(w, "slackload takes POST /r/{n} only", http.StatusNotFound)
	})
	return mux
}

// awaitAnswers waits, at most -answer-timeout, until every acked command has
// an answer, then -settle longer to catch answers that come twice.
func (lt *test) awaitAnswers(ctx context.Context) {
	giveUp := time.NewTimer(lt.cfg.AnswerTimeout)
	defer giveUp.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for lt.unanswered() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-giveUp.C:
			return
		case <-tick.C:
		}
	}
	settle := time.NewTimer(lt.cfg.Settle)
	defer settle.Stop()
	select {
	case <-ctx.Done():
	case <-settle.C:
	}
}

func (lt *test) unanswered() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	n := 0
	for _, a := range lt.attempts {
		if a.ok && a.answers == 0 {
			n++
		}
	}
	return n
}

// sample keeps the start of a body for the report, on one line.
func sample(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
