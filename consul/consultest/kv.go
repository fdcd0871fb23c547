package consultest

import (
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// entry is a KV entry as the API answers it; Value is base64 in JSON.
type entry struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte
	Session     string `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	anonymous := accessOf(r) == accessAnonymous
	_, recurse := q["recurse"]
	_, keysOnly := q["keys"]
	if !recurse && !keysOnly {
		if anonymous {
			denied(w, "key:read", key)
			return
		}
		e := s.kv[key]
		s.meta(w, false)
		if e == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if _, raw := q["raw"]; raw {
			w.Write(e.Value)
			return
		}
		writeJSON(w, []*entry{e})
		return
	}

	var found []*entry
	for _, k := range slices.Sorted(maps.Keys(s.kv)) {
		if strings.HasPrefix(k, key) {
			found = append(found, s.kv[k])
		}
	}
	filtered := anonymous && len(found) > 0
	if anonymous {
		found = nil
	}
	s.meta(w, filtered)
	if keysOnly {
		sep := q.Get("separator")
		keys := []string{}
		for _, e := range found {
			k := e.Key
			if sep != "" {
				if i := strings.Index(k[len(key):], sep); i >= 0 {
					k = k[:len(key)+i+len(sep)]
				}
			}
			if len(keys) == 0 || keys[len(keys)-1] != k {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		writeJSON(w, keys)
		return
	}
	if len(found) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, found)
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	if key == "" {
		badRequest(w, "Missing key name")
		return
	}
	if accessOf(r) == accessAnonymous {
		denied(w, "key:write", key)
		return
	}
	value, err := io.ReadAll(r.Body)
	if err != nil {
		badRequest(w, "Request body read failed: %v", err)
		return
	}
	var flags uint64
	if f := q.Get("flags"); f != "" {
		if flags, err = strconv.ParseUint(f, 10, 64); err != nil {
			badRequest(w, "Invalid flags: %v", err)
			return
		}
	}
	old := s.kv[key]
	if c := q.Get("cas"); c != "" {
		cas, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			badRequest(w, "Invalid cas index: %v", err)
			return
		}
		if cas == 0 && old != nil || cas != 0 && (old == nil || old.ModifyIndex != cas) {
			writeJSON(w, false)
			return
		}
	}

	switch {
	case q.Has("acquire"):
		id := q.Get("acquire")
		if id == "" {
			fail(w, "missing session")
			return
		}
		if s.sessions[id] == nil {
			fail(w, "invalid session %q", id)
			return
		}
		// A key whose lock was lost with its session waits out the lock
		// delay before anyone may take it.
		if until, ok := s.lockDelay[key]; ok && s.opts.NowFunc().Before(until) {
			writeJSON(w, false)
			return
		}
		if old != nil && old.Session != "" && old.Session != id {
			writeJSON(w, false)
			return
		}
		idx := s.next()
		e := s.put(key, value, flags, idx)
		if old == nil || old.Session != id {
			e.LockIndex++
		}
		e.Session = id
		writeJSON(w, true)
	case q.Has("release"):
		id := q.Get("release")
		if id == "" {
			fail(w, "missing session")
			return
		}
		if old == nil || old.Session != id {
			writeJSON(w, false)
			return
		}
		e := s.put(key, value, flags, s.next())
		e.Session = ""
		writeJSON(w, true)
	default:
		// A plain write keeps the key's session, if it has one, but not
		// its lock index, as Consul's state store does.
		e := s.put(key, value, flags, s.next())
		e.LockIndex = 0
		writeJSON(w, true)
	}
}

// put sets key's value and flags, creating the entry when there is none.
func (s *Server) put(key string, value []byte, flags, idx uint64) *entry {
	e := s.kv[key]
	if e == nil {
		e = &entry{Key: key, CreateIndex: idx}
		s.kv[key] = e
	}
	e.Value, e.Flags, e.ModifyIndex = value, flags, idx
	return e
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	if accessOf(r) == accessAnonymous {
		denied(w, "key:write", key)
		return
	}
	if c := q.Get("cas"); c != "" {
		cas, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			badRequest(w, "Invalid cas index: %v", err)
			return
		}
		// Consul answers true for a key that is not there.
		if old := s.kv[key]; old != nil && old.ModifyIndex != cas {
			writeJSON(w, false)
			return
		}
	}
	if q.Has("recurse") {
		for k := range s.kv {
			if strings.HasPrefix(k, key) {
				delete(s.kv, k)
			}
		}
	} else {
		delete(s.kv, key)
	}
	s.next()
	writeJSON(w, true)
}
