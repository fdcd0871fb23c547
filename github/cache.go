package github

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxCached bounds the cache: every page of the pull request and branch
// lists of one repository fits many times over, and a runaway never grows
// it without end.
const maxCached = 512

// etagCache is an http.RoundTripper that makes GET requests conditional.
// It keeps each 200 answer that carries an ETag; the next GET of the same
// URL sends If-None-Match, and a 304 Not Modified is answered from the kept
// body, so an unchanged list is not sent again. GitHub does not count a 304
// against an authorized client's rate limit (its REST guide, "Use
// conditional requests"); anonymous clients save the transfer, and, by that
// guide, not the request.
//
// One cache serves one Source, so one token: a URL is the whole key.
type etagCache struct {
	next http.RoundTripper

	mu      sync.Mutex
	entries map[string]*cachedAnswer
}

type cachedAnswer struct {
	etag   string
	header http.Header // without the rate limit headers, which go stale
	body   []byte
}

func newETagCache(next http.RoundTripper) *etagCache {
	if next == nil {
		// A pool of its own: whoever calls CloseIdleConnections on the
		// shared default transport (httptest servers do as they close) must
		// not break a request on its way here.
		next = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &etagCache{next: next, entries: map[string]*cachedAnswer{}}
}

func (c *etagCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Header.Get("If-None-Match") != "" || req.Header.Get("Range") != "" {
		return c.next.RoundTrip(req)
	}
	key := req.URL.String()
	c.mu.Lock()
	kept := c.entries[key]
	c.mu.Unlock()

	if kept != nil {
		req = req.Clone(req.Context())
		req.Header.Set("If-None-Match", kept.etag)
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && kept != nil:
		// The 304's headers are the fresh ones (rate limit, date, a
		// renewed ETag); the kept ones fill in what a 304 leaves out.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h := kept.header.Clone()
		for k, vs := range resp.Header {
			h[k] = vs
		}
		h.Set("Content-Length", strconv.Itoa(len(kept.body)))
		if etag := resp.Header.Get("ETag"); etag != "" && etag != kept.etag {
			c.store(key, etag, h, kept.body)
		}
		return &http.Response{
			Status:        "200 OK",
			StatusCode:    http.StatusOK,
			Proto:         resp.Proto,
			ProtoMajor:    resp.ProtoMajor,
			ProtoMinor:    resp.ProtoMinor,
			Header:        h,
			Body:          io.NopCloser(bytes.NewReader(kept.body)),
			ContentLength: int64(len(kept.body)),
			Request:       req,
		}, nil
	case resp.StatusCode == http.StatusOK && resp.Header.Get("ETag") != "":
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		c.store(key, resp.Header.Get("ETag"), resp.Header, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	return resp, nil
}

func (c *etagCache) store(key, etag string, h http.Header, body []byte) {
	kept := &cachedAnswer{etag: etag, header: h.Clone(), body: body}
	for k := range kept.header {
		if strings.HasPrefix(strings.ToLower(k), "x-ratelimit-") {
			delete(kept.header, k)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[key] = kept
}
