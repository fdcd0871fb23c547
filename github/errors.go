package github

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	gh "github.com/google/go-github/v92/github"

	"github.com/switchboardhq/switchboard"
)

// failed turns what go-github returned into a *switchboard.Error a person
// can act on, wrapped with what was being done and the original error for
// the log.
func (s *Source) failed(ctx context.Context, err error, what string) error {
	wrap := func(e *switchboard.Error) error {
		return fmt.Errorf("github: %s %s: %w: %w", what, s.repo, e, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("github: %s %s: %w", what, s.repo, err)
	}
	now := time.Now()
	var (
		rateErr  *gh.RateLimitError
		abuseErr *gh.AbuseRateLimitError
		respErr  *gh.ErrorResponse
	)
	switch {
	case errors.As(err, &rateErr):
		advice := ""
		if s.anonymous {
			advice = "set github.token for 5,000 requests an hour"
		}
		return wrap(switchboard.RateLimited("GitHub", rateErr.Rate.Reset.Time, now, advice))
	case errors.As(err, &abuseErr):
		var reset time.Time
		if d := abuseErr.RetryAfter; d != nil {
			reset = now.Add(*d)
		}
		return wrap(switchboard.RateLimited("GitHub", reset, now, ""))
	case errors.As(err, &respErr) && respErr.Response != nil:
		return wrap(s.refused(respErr, what, now))
	}
	// No answer at all: refused connection, timeout, DNS, TLS.
	return wrap(switchboard.Errorf(switchboard.EUNAVAILABLE, "Could not reach GitHub to %s %s; try again in a few minutes.", what, s.repo))
}

// refused sorts an HTTP error answer by its status.
func (s *Source) refused(e *gh.ErrorResponse, what string, now time.Time) *switchboard.Error {
	status := e.Response.StatusCode
	switch {
	case status == http.StatusUnauthorized && s.anonymous:
		return switchboard.Errorf(switchboard.EUNAUTHORIZED, "GitHub asked for credentials to %s %s; set github.token to a token that may read it.", what, s.repo)
	case status == http.StatusUnauthorized:
		return switchboard.Errorf(switchboard.EUNAUTHORIZED, "GitHub did not accept github.token (%s); check that the token is valid, has not expired, and may read %s.", cmp.Or(e.Message, "401"), s.repo)
	case status == http.StatusNotFound && s.anonymous:
		return switchboard.Errorf(switchboard.ENOTFOUND, "GitHub has no public repository %s; check github.repository, or set github.token if the repository is private.", s.repo)
	case status == http.StatusNotFound:
		return switchboard.Errorf(switchboard.ENOTFOUND, "GitHub has no repository %s that github.token can see; check github.repository and the token's access.", s.repo)
	case status == http.StatusTooManyRequests:
		// A 429 that go-github did not take for a rate limit: GitHub's
		// Retry-After, when sent, says how long to wait.
		var reset time.Time
		if secs, err := strconv.Atoi(e.Response.Header.Get("Retry-After")); err == nil && secs >= 0 {
			reset = now.Add(time.Duration(secs) * time.Second)
		}
		return switchboard.RateLimited("GitHub", reset, now, "")
	case status == http.StatusForbidden:
		return switchboard.Errorf(switchboard.EFORBIDDEN, "GitHub refused to %s %s (%s); check that github.token may read the repository.", what, s.repo, cmp.Or(e.Message, "403 Forbidden"))
	case status >= 500:
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "GitHub did not answer (%d %s) to %s %s; try again in a few minutes.", status, http.StatusText(status), what, s.repo)
	}
	return switchboard.Errorf(switchboard.EINTERNAL, "GitHub answered %d %s to %s %s: %s", status, http.StatusText(status), what, s.repo, cmp.Or(e.Message, "no reason given"))
}
