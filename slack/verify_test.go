package slack

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	ts := vectorTimestamp
	tests := []struct {
		name    string
		secret  string
		header  http.Header
		body    string
		now     time.Time
		wantErr error
	}{
		{"official vector", vectorSecret, signed(vectorSignature, ts), vectorBody, vectorNow, nil},
		{"official vector, clock slightly behind", vectorSecret, signed(vectorSignature, ts), vectorBody, time.Unix(1531420618-60, 0), nil},
		{"tampered body", vectorSecret, signed(vectorSignature, ts), vectorBody + "&text=stop", vectorNow, errSignatureMismatch},
		{"wrong secret", "another-secret", signed(vectorSignature, ts), vectorBody, vectorNow, errSignatureMismatch},
		{"timestamp too old", vectorSecret, signed(vectorSignature, ts), vectorBody, time.Unix(1531420618, 0).Add(5*time.Minute + time.Second), errStaleTimestamp},
		{"timestamp in the future", vectorSecret, signed(vectorSignature, ts), vectorBody, time.Unix(1531420618, 0).Add(-5*time.Minute - time.Second), errStaleTimestamp},
		{"no headers", vectorSecret, http.Header{}, vectorBody, vectorNow, errMissingHeaders},
		{"no timestamp", vectorSecret, http.Header{headerSignature: {vectorSignature}}, vectorBody, vectorNow, errMissingHeaders},
		{"no signature", vectorSecret, http.Header{headerTimestamp: {ts}}, vectorBody, vectorNow, errMissingHeaders},
		{"no v0 prefix", vectorSecret, signed(vectorSignature[3:], ts), vectorBody, vectorNow, errMalformedSig},
		{"v1 scheme", vectorSecret, signed("v1="+vectorSignature[3:], ts), vectorBody, vectorNow, errMalformedSig},
		{"not hex", vectorSecret, signed("v0="+strings.Repeat("zz", 32), ts), vectorBody, vectorNow, errMalformedSig},
		{"short", vectorSecret, signed(vectorSignature[:40], ts), vectorBody, vectorNow, errMalformedSig},
		{"timestamp not a number", vectorSecret, signed(vectorSignature, "yesterday"), vectorBody, vectorNow, errMalformedTS},
		{"huge timestamp", vectorSecret, signed(vectorSignature, "9223372036854775807"), vectorBody, vectorNow, errStaleTimestamp},
		{"most negative timestamp", vectorSecret, signed(vectorSignature, "-9223372036854775808"), vectorBody, vectorNow, errStaleTimestamp},
		{"no secret configured", "", signed(vectorSignature, ts), vectorBody, vectorNow, errNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := verifySignature(tt.secret, tt.header, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("verifySignature = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// The test helper signs the way Slack does: it reproduces the vector.
func TestSignMatchesVector(t *testing.T) {
	t.Parallel()
	if got := sign(vectorSecret, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("sign = %s, want %s", got, vectorSignature)
	}
}

func signed(sig, ts string) http.Header {
	h := http.Header{}
	h.Set(headerSignature, sig)
	h.Set(headerTimestamp, ts)
	return h
}

func BenchmarkVerify(b *testing.B) {
	h := signed(vectorSignature, vectorTimestamp)
	body := []byte(vectorBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := verifySignature(vectorSecret, h, body, vectorNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyLargeBody measures a body at the size limit.
func BenchmarkVerifyLargeBody(b *testing.B) {
	body := make([]byte, MaxBodyBytes)
	ts := strconv.FormatInt(vectorNow.Unix(), 10)
	h := signed(sign(vectorSecret, ts, body), ts)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := verifySignature(vectorSecret, h, body, vectorNow); err != nil {
			b.Fatal(err)
		}
	}
}
