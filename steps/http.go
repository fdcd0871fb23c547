package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Bounds of an http step: what it waits for and what it reads.
const (
	httpDefaultTimeout = 10 * time.Second
	// HTTPMaxTimeout is the longest an http step waits for an answer.
	HTTPMaxTimeout = 2 * time.Minute
	// httpMaxBody is what the step reads of an answer: the body output
	// holds at most this much, and json is parsed only from a whole body.
	httpMaxBody = 64 << 10
)

// HTTP calls a URL; the status, the body and the body as JSON are its
// outputs. It goes only where the config's http.allow says (the client
// from StepRun.HTTPClient checks the URL and, once resolved, the address),
// follows no redirect, waits at most two minutes and reads at most 64 KB.
// Errors and refusals name the URL without its query, where tokens go.
var HTTP = switchboard.StepType{
	Kind: "http",
	Params: []switchboard.Param{
		{Name: "method", Values: []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}},
		{Name: "url", Required: true, URL: true, Hint: "the URL to call, like url: https://example.com/hook"},
		{Name: "headers", Type: switchboard.TypeTags},
		{Name: "body", Type: switchboard.TypeAny},
		{Name: "timeout", Type: switchboard.TypeDuration},
		{Name: "expect", Type: switchboard.TypeCodes},
	},
	Outputs: []switchboard.Output{{Name: "status", Type: switchboard.TypeInt}, {Name: "body", Type: switchboard.TypeText}, {Name: "json", Type: switchboard.TypeAny}},
	CheckFunc: func(params map[string]any) []switchboard.ParamProblem {
		if s, ok := params["timeout"].(string); ok {
			if d, err := time.ParseDuration(s); err == nil && d > HTTPMaxTimeout {
				return []switchboard.ParamProblem{{Param: "timeout", Msg: fmt.Sprintf("is at most %s", switchboard.Humanize(HTTPMaxTimeout))}}
			}
		}
		return nil
	},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Method  string               `json:"method"`
			URL     string               `json:"url"`
			Headers map[string]string    `json:"headers"`
			Body    string               `json:"body"`
			Timeout switchboard.Duration `json:"timeout"`
			Expect  []int                `json:"expect"`
		}
		if !s.Params(&p) {
			return nil
		}
		if p.Method == "" {
			p.Method = http.MethodGet
		}
		timeout := time.Duration(p.Timeout)
		if timeout <= 0 {
			timeout = httpDefaultTimeout
		}
		timeout = min(timeout, HTTPMaxTimeout)
		u, err := url.Parse(p.URL)
		if err != nil || u.Host == "" {
			// url's own message quotes the URL, query and all.
			return s.Fail("http: the url is not an absolute http(s) URL.", false)
		}
		where := strings.ToUpper(p.Method) + " " + switchboard.RedactURL(u)
		client := s.HTTPClient()
		if client == nil {
			return refuse(s, where, "Switchboard may not call any URL: the config has no http.allow list.")
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, strings.ToUpper(p.Method), u.String(), bytes.NewReader([]byte(p.Body)))
		if err != nil {
			return s.Fail("http "+where+": the request cannot be made.", false)
		}
		for k, v := range p.Headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // its text holds the whole URL
			}
			var refusal *switchboard.Error
			if errors.As(err, &refusal) && refusal.Code == switchboard.EFORBIDDEN {
				return refuse(s, where, refusal.Message)
			}
			if ctx.Err() != nil {
				return s.Fail(fmt.Sprintf("http %s did not answer within %s.", where, switchboard.Humanize(timeout)), false)
			}
			return s.Fail(fmt.Sprintf("http %s: %v", where, err), false)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, httpMaxBody+1))
		whole := len(body) <= httpMaxBody
		body = body[:min(len(body), httpMaxBody)]
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		if len(p.Expect) > 0 {
			ok = slices.Contains(p.Expect, resp.StatusCode)
		}
		if !ok {
			return s.Fail(fmt.Sprintf("http %s answered %s.", where, resp.Status), false)
		}
		var parsed any
		if whole {
			_ = json.Unmarshal(body, &parsed)
		}
		return s.Done(map[string]any{"status": resp.StatusCode, "body": string(body), "json": parsed})
	},
}

// refuse fails an http step that the allow list or the address check
// stopped, with an audit line of its own saying so.
func refuse(s switchboard.StepRun, where, why string) error {
	s.Audit(switchboard.AuditAction, "http "+where, "refused", why)
	return s.Fail(fmt.Sprintf("http %s was refused: %s", where, why), false)
}
