package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is what a run found; its JSON form is the tool's machine-readable
// output, so field names are part of its interface.
type report struct {
	URL         string  `json:"url"`
	Command     string  `json:"command"`
	Text        string  `json:"text"`
	Mode        string  `json:"mode"` // "closed" or "open"
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Interrupted bool    `json:"interrupted,omitempty"`

	Sent       int     `json:"sent"`
	Acked      int     `json:"acked"`     // HTTP 200
	Elapsed    float64 `json:"elapsed_s"` // first send to last ack
	Throughput float64 `json:"acks_per_s"`
	// AnswersPerS is the commands answered over the time from the first
	// send to the last first answer: how fast answers keep up with acks.
	AnswersPerS float64 `json:"answers_per_s"`

	Errors       map[string]int    `json:"errors"`        // kind -> count
	ErrorSamples map[string]string `json:"error_samples"` // kind -> first message

	Ack       latency `json:"ack_latency_ms"`
	EndToEnd  latency `json:"end_to_end_latency_ms"`
	SampleAck string  `json:"sample_ack,omitempty"`
	SampleAns string  `json:"sample_answer,omitempty"`

	// Exactly-once accounting over the acked commands.
	AnsweredOnce   int         `json:"answered_once"`
	NeverAnswered  []int       `json:"never_answered"`             // n of each
	AnsweredTwice  map[int]int `json:"answered_more_than_once"`    // n -> answers
	Stray          int         `json:"stray_answers"`              // at no response_url we gave out
	FailedAnswered int         `json:"answers_to_failed_commands"` // commands that errored yet were answered
}

// latency holds percentiles in milliseconds.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// report summarizes the attempts; lt.mu must be held.
func (lt *test) report(interrupted bool) *report {
	r := &report{
		URL:           lt.cfg.URL,
		Command:       lt.cfg.Command,
		Text:          lt.cfg.Text,
		Mode:          "closed",
		Concurrency:   lt.cfg.Concurrency,
		Interrupted:   interrupted,
		Sent:          len(lt.attempts),
		Errors:        map[string]int{},
		ErrorSamples:  lt.failSamples,
		NeverAnswered: []int{},
		AnsweredTwice: map[int]int{},
		Stray:         lt.stray,
		SampleAck:     lt.sampleAck,
		SampleAns:     lt.sampleAnswer,
	}
	if lt.cfg.Rate > 0 {
		r.Mode, r.Rate, r.Concurrency = "open", lt.cfg.Rate, 0
	}
	var acks, e2e []time.Duration
	for n, a := range lt.attempts {
		if !a.ok {
			if a.failure == "" {
				a.failure = "not sent" // interrupted before its turn
			}
			r.Errors[a.failure]++
			if a.answers > 0 {
				r.FailedAnswered++
			}
			continue
		}
		r.Acked++
		acks = append(acks, a.ack)
		switch a.answers {
		case 0:
			r.NeverAnswered = append(r.NeverAnswered, n)
		case 1:
			r.AnsweredOnce++
		default:
			r.AnsweredTwice[n] = a.answers
		}
		if a.answers > 0 {
			e2e = append(e2e, a.firstAnswer)
		}
	}
	r.Ack, r.EndToEnd = percentiles(acks), percentiles(e2e)
	var lastAnswer time.Time
	answered := 0
	for _, a := range lt.attempts {
		if a.ok && a.answers > 0 {
			answered++
			if at := a.sent.Add(a.firstAnswer); at.After(lastAnswer) {
				lastAnswer = at
			}
		}
	}
	if !lt.start.IsZero() && lastAnswer.After(lt.start) {
		r.AnswersPerS = float64(answered) / lastAnswer.Sub(lt.start).Seconds()
	}
	if !lt.start.IsZero() && lt.end.After(lt.start) {
		elapsed := lt.end.Sub(lt.start)
		r.Elapsed = elapsed.Seconds()
		r.Throughput = float64(r.Acked) / elapsed.Seconds()
	}
	return r
}

// percentiles uses the nearest-rank method: p99 of 100 samples is the 99th.
func percentiles(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	return latency{Count: len(ds), P50: at(50), P90: at(90), P99: at(99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// problems lists what should fail a script; empty means a clean run.
func (r *report) problems() []string {
	var p []string
	if r.Interrupted {
		p = append(p, "interrupted")
	}
	if r.Sent == 0 {
		p = append(p, "no command was sent")
	}
	if n := r.Sent - r.Acked; n > 0 {
		p = append(p, fmt.Sprintf("%d of %d commands errored", n, r.Sent))
	}
	if n := len(r.NeverAnswered); n > 0 {
		p = append(p, fmt.Sprintf("%d commands never answered", n))
	}
	if n := len(r.AnsweredTwice); n > 0 {
		p = append(p, fmt.Sprintf("%d commands answered more than once", n))
	}
	if r.Stray > 0 {
		p = append(p, fmt.Sprintf("%d answers to a response_url never given out", r.Stray))
	}
	return p
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-15s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	line("target", "%s %s -> %s", r.Command, r.Text, r.URL)
	if r.Mode == "open" {
		line("load", "open loop, %g requests/s, %d sent", r.Rate, r.Sent)
	} else {
		line("load", "closed loop, %d workers, %d sent", r.Concurrency, r.Sent)
	}
	line("acks", "%d ok, %d errors in %.3fs (%.1f acks/s)", r.Acked, r.Sent-r.Acked, r.Elapsed, r.Throughput)
	line("ack latency", "%s", r.Ack)
	line("end to end", "%s (sent -> first answer at response_url)", r.EndToEnd)
	line("answers", "%.1f answers/s (first send to last first answer)", r.AnswersPerS)
	line("exactly once", "%d answered once, %d never answered, %d answered more than once (of %d acked)",
		r.AnsweredOnce, len(r.NeverAnswered), len(r.AnsweredTwice), r.Acked)
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		line("errors", "%s: %d (first: %q)", k, r.Errors[k], r.ErrorSamples[k])
	}
	if len(r.NeverAnswered) > 0 {
		line("never answered", "%s", list(r.NeverAnswered, func(n int) string { return fmt.Sprintf("n=%d", n) }))
	}
	if len(r.AnsweredTwice) > 0 {
		ns := make([]int, 0, len(r.AnsweredTwice))
		for n := range r.AnsweredTwice {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		line("answered twice", "%s", list(ns, func(n int) string { return fmt.Sprintf("n=%d (%dx)", n, r.AnsweredTwice[n]) }))
	}
	if r.Stray > 0 {
		line("stray answers", "%d", r.Stray)
	}
	if r.FailedAnswered > 0 {
		line("errored+answered", "%d", r.FailedAnswered)
	}
	if r.SampleAck != "" {
		line("sample ack", "%q", r.SampleAck)
	}
	if r.SampleAns != "" {
		line("sample answer", "%q", r.SampleAns)
	}
	if p := r.problems(); len(p) > 0 {
		line("result", "FAIL: %s", strings.Join(p, "; "))
	} else {
		line("result", "OK")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (l latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (%d samples)", l.P50, l.P90, l.P99, l.Max, l.Count)
}

// list shows the first 20 items; the JSON report has them all.
func list(ns []int, show func(int) string) string {
	var parts []string
	for i, n := range ns {
		if i == 20 {
			parts = append(parts, fmt.Sprintf("… and %d more", len(ns)-20))
			break
		}
		parts = append(parts, show(n))
	}
	return strings.Join(parts, " ")
}
