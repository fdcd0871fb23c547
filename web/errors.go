package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/switchboardhq/switchboard"
)

// codeStatus maps each switchboard error code to the HTTP status the JSON
// API answers with. A code missing here is answered as 500.
var codeStatus = map[string]int{
	switchboard.EINVALID:      http.StatusBadRequest,
	switchboard.EUNAUTHORIZED: http.StatusUnauthorized,
	switchboard.EFORBIDDEN:    http.StatusForbidden,
	switchboard.ENOTFOUND:     http.StatusNotFound,
	switchboard.ECONFLICT:     http.StatusConflict,
	switchboard.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	switchboard.ETHROTTLED:    http.StatusTooManyRequests,
	switchboard.EUNAVAILABLE:  http.StatusServiceUnavailable,
	switchboard.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorStatus returns the HTTP status for an error code.
func ErrorStatus(code string) int {
	if status, ok := codeStatus[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// errorBody is how the JSON API reports an error: a sentence for the person
// and the code for programs.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// writeError answers err as JSON with the status of its code. Internal
// errors are logged with their text; the client only gets a sentence.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := switchboard.ErrorCode(err)
	if code == switchboard.EINTERNAL {
		logger.ErrorContext(r.Context(), "console request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var e *switchboard.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	writeJSON(w, ErrorStatus(code), errorBody{Error: switchboard.ErrorMessage(err), Code: code})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
