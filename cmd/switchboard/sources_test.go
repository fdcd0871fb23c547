package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/switchboardhq/switchboard/testenv"
)

// lineOf is the line of text where needle starts.
func lineOf(t *testing.T, text, needle string) int {
	t.Helper()
	i := strings.Index(text, needle)
	if i < 0 {
		t.Fatalf("%q is not in:\n%s", needle, text)
	}
	return strings.Count(text[:i], "\n") + 1
}

// A trigger source whose settings cannot be turned into a working client
// stops serve before it listens, with a sentence naming the key, and check
// says the same.
func TestServeRefusesATriggerSourceThatCannotWork(t *testing.T) {
	t.Parallel()
	const mailbox = `mailboxes:
  ops:
    addr: ADDR
    username: ops@example.com
    password: pw-0123456789
    tls: TLS
`
	tests := []struct {
		name    string
		sources string // appended to configYAML
		entry   string // where the problem is in it
		want    string // after FILE:LINE:
	}{
		{
			name:    "a mailbox address without a port",
			sources: strings.NewReplacer("ADDR", "imap.example.com", "TLS", "tls").Replace(mailbox),
			entry:   "    addr:", want: `mailboxes.ops.addr: must be host:port, like imap.example.com:993, got "imap.example.com"`,
		},
		{
			name:    "a mailbox with a TLS mode that does not exist",
			sources: strings.NewReplacer("ADDR", "imap.example.com:993", "TLS", "ssl").Replace(mailbox),
			entry:   "    tls:", want: `mailboxes.ops.tls: must be one of tls, starttls, plain, got "ssl"`,
		},
		{
			// Only loading the AWS configuration can tell.
			name: "a queue with a profile that is not in the shared files",
			sources: `queues:
  ec2-events:
    url: http://127.0.0.1:9/123456789012/ec2-events
    region: us-east-1
    profile: nope
`,
			entry: "  ec2-events:\n",
			want:  `queues.ec2-events.profile: profile "nope" is not in the shared AWS config files (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE, by default ~/.aws/config and ~/.aws/credentials): add it there, or remove profile: to use the default credential chain`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			addr := testenv.FreeAddr(t)
			yaml := fillConfig(configYAML, addr, dir, "sqlite://"+filepath.Join(dir, "switchboard.db"), "http://127.0.0.1:9/api/", "1s") + tt.sources
			path := filepath.Join(dir, "switchboard.yaml")
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "SLACK_SIGNING_SECRET="+testSecret, "AWS_PROFILE=",
				"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
			want := fmt.Sprintf("%s:%d: %s", path, lineOf(t, yaml, tt.entry), tt.want)

			for _, command := range []string{"serve", "check"} {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				cmd := exec.CommandContext(ctx, binary, command, "--config", path)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				timedOut := ctx.Err() != nil
				cancel()
				if timedOut {
					t.Fatalf("%s did not exit within 30s:\n%s", command, out)
				}
				if err == nil {
					t.Fatalf("%s exited 0, want a failure:\n%s", command, out)
				}
				if !strings.Contains(string(out), want) {
					t.Errorf("%s says:\n%s\nwant the line\n%s", command, out, want)
				}
				if strings.Contains(string(out), "pw-0123456789") {
					t.Errorf("%s shows the password:\n%s", command, out)
				}
			}
			if conn, err := net.Dial("tcp", addr); err == nil {
				conn.Close()
				t.Errorf("something listens on %s after serve refused to start", addr)
			}
		})
	}
}

// readyz is what GET /readyz answers.
type readyz struct {
	code    int
	Status  string `json:"status"`
	Sources map[string]struct {
		State    string    `json:"state"`
		OK       bool      `json:"ok"`
		Since    time.Time `json:"since"`
		Error    string    `json:"error"`
		Failures int       `json:"failures"`
		NextTry  time.Time `json:"next_try"`
	} `json:"sources"`
	raw string
}

func getReadyz(t *testing.T, s *server) readyz {
	t.Helper()
	resp, err := http.Get(s.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := readyz{code: resp.StatusCode, raw: string(body)}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz is not JSON: %v\n%s", err, body)
	}
	return r
}

// waitReadyz polls /readyz until ok says it is what the test waits for.
func waitReadyz(t *testing.T, s *server, what string, ok func(readyz) bool) readyz {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		r := getReadyz(t, s)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never showed %s; last: %d %s\nlogs:\n%s", what, r.code, r.raw, s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forward accepts connections on addr from now on and joins each to
// target: a mail server coming up at the address the config names.
func forward(t *testing.T, addr, target string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			stop := context.AfterFunc(t.Context(), func() { in.Close(); out.Close() })
			wg.Go(func() { io.Copy(out, in); out.Close(); stop() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
}

var csrfMeta = regexp.MustCompile(`<meta name="sb-csrf" content="([0-9a-f]+)">`)

// consoleStatus is what the console shows about the trigger sources.
func consoleStatus(t *testing.T, s *server) string {
	t.Helper()
	return openConsole(t, s, "").get(t, "/console/api/status")
}

// A mail server that is down when serve starts does not stop it: the
// mailbox is retried with backoff, shown as failing in the log, /readyz
// (still 200: a mailbox down is no reason to pull a replica) and the
// console, and read as soon as the server answers, when a mail starts its
// workflow.
func TestUnreachableMailboxIsRetriedUntilItAnswers(t *testing.T) {
	t.Parallel()
	mail := testenv.Dovecot(t)
	peer := newSlackPeer(t)
	down := mail
	down.Addr = testenv.FreeAddr(t) // nothing listens there yet
	s := startServer(t, peer.URL, serverOptions{config: maintenanceConfig(t, down, "5m", "deny")})

	const source = "mailbox:aws-notices"
	r := waitReadyz(t, s, "the mailbox failing twice", func(r readyz) bool { return r.Sources[source].Failures >= 2 })
	h := r.Sources[source]
	if r.code != 200 || r.Status != "degraded" || h.OK || h.State != "failing" {
		t.Errorf("/readyz = %d %s, want 200, degraded and the mailbox failing", r.code, r.raw)
	}
	if !strings.Contains(h.Error, "connect to "+down.Addr) || !strings.Contains(h.Error, "connection refused") {
		t.Errorf("the mailbox's error is %q, want the refused connection", h.Error)
	}
	if h.Since.IsZero() || !h.NextTry.After(h.Since) {
		t.Errorf("failing since %v, next try %v", h.Since, h.NextTry)
	}
	if console := consoleStatus(t, s); !strings.Contains(console, `"`+source+`":{"state":"failing","ok":false`) {
		t.Errorf("the console's status does not show the mailbox failing: %s", console)
	}
	logs := s.logs.String()
	if !regexp.MustCompile(`level=WARN msg="poll failed; trying again later" source=` + source + ` .*connection refused`).MatchString(logs) {
		t.Errorf("no warning with the source's name in the log:\n%s", logs)
	}
	for what, text := range map[string]string{"/readyz": r.raw, "the log": logs} {
		if strings.Contains(text, mail.Password) {
			t.Errorf("%s shows the mailbox password:\n%s", what, text)
		}
	}

	// The server comes up at the configured address; the mail that waits
	// there starts the workflow.
	mail.Deliver(t, []byte(fmt.Sprintf(retirementMail, "late")))
	forward(t, down.Addr, mail.Addr)
	peer.posted(t, "[Retirement Notification]")
	r = waitReadyz(t, s, "the mailbox working again", func(r readyz) bool { return r.Sources[source].OK })
	if h := r.Sources[source]; r.code != 200 || r.Status != "ready" || h.State != "ok" || h.Error != "" {
		t.Errorf("/readyz = %d %s, want ready and the mailbox ok", r.code, r.raw)
	}
	if logs := s.logs.String(); !strings.Contains(logs, `msg="trigger source works again" source=`+source) {
		t.Errorf("the log does not say the mailbox works again:\n%s", logs)
	}
}

// An SQS endpoint that refuses connections is retried the same way, and
// its queue read once it answers.
func TestRefusedQueueIsRetriedUntilItAnswers(t *testing.T) {
	t.Parallel()
	endpoint, region := testenv.Moto(t)
	ctx := t.Context()
	client := sqs.New(sqs.Options{Region: region, BaseEndpoint: awssdk.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	created, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String(fmt.Sprintf("retried-%d", time.Now().UnixNano()))})
	if err != nil {
		t.Fatal(err)
	}
	motoURL := awssdk.ToString(created.QueueUrl)
	gate := testenv.FreeAddr(t) // where the config says SQS is; nothing listens yet
	motoHost := strings.TrimPrefix(endpoint, "http://")
	const secret = "sqs-secret-0123456789"
	queue := fmt.Sprintf(`queues:
  ec2-events:
    url: %s
    region: %s
    endpoint: http://%s
    access_key_id: testing
    access_key_secret: %s
`, strings.Replace(motoURL, motoHost, gate, 1), region, gate, secret)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: configYAML + queue})

	const source = "queue:ec2-events"
	r := waitReadyz(t, s, "the queue failing", func(r readyz) bool { return r.Sources[source].Failures >= 1 })
	if h := r.Sources[source]; r.code != 200 || r.Status != "degraded" || h.OK || !strings.Contains(h.Error, "connection refused") {
		t.Errorf("/readyz = %d %s, want 200, degraded and the queue's connection refused", r.code, r.raw)
	}
	logs := s.logs.String()
	if !regexp.MustCompile(`level=WARN msg="round failed; trying again later" source=` + source + ` .*connection refused`).MatchString(logs) {
		t.Errorf("no warning with the source's name in the log:\n%s", logs)
	}
	for what, text := range map[string]string{"/readyz": r.raw, "the log": logs} {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the access key secret:\n%s", what, text)
		}
	}

	// An event waits in the queue; the endpoint comes up; the event is
	// taken and the queue shows ok.
	event, err := os.ReadFile(filepath.Join("..", "..", "awsevents", "testdata", "ec2-state-change-terminated.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: awssdk.String(string(event))}); err != nil {
		t.Fatal(err)
	}
	forward(t, gate, motoHost)
	r = waitReadyz(t, s, "the queue working again", func(r readyz) bool { return r.Sources[source].OK })
	if r.code != 200 || r.Status != "ready" || r.Sources[source].State != "ok" {
		t.Errorf("/readyz = %d %s, want ready and the queue ok", r.code, r.raw)
	}
	if logs := s.logs.String(); !strings.Contains(logs, `msg="event handled"`) {
		t.Errorf("the waiting event was not handled:\n%s", logs)
	}
}
