package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// HTTP calls a URL; the status, the body and the body as JSON are its
// outputs.
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
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, strings.ToUpper(p.Method), p.URL, bytes.NewReader([]byte(p.Body)))
		if err != nil {
			return s.Fail(fmt.Sprintf("http: %v", err), false)
		}
		for k, v := range p.Headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return s.Fail(fmt.Sprintf("http %s %s: %v", req.Method, req.URL.Redacted(), err), false)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		if len(p.Expect) > 0 {
			ok = slices.Contains(p.Expect, resp.StatusCode)
		}
		if !ok {
			return s.Fail(fmt.Sprintf("http %s %s answered %s.", req.Method, req.URL.Redacted(), resp.Status), false)
		}
		var parsed any
		_ = json.Unmarshal(body, &parsed)
		return s.Done(map[string]any{"status": resp.StatusCode, "body": string(body), "json": parsed})
	},
}
