package config

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file, located the way an
// editor can jump to it: the file, the line, and the path of the key
// ("commands./ec2.allow.users[0]"). Msg never holds a secret's value.
type Problem struct {
	File string
	Line int
	Key  string
	Msg  string
}

// String formats the problem as "file:line: key: msg", leaving out the parts
// that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a configuration file, in file order. Load
// and Parse return it as their error so that a person can fix everything in
// one pass instead of one error per restart.
type Problems []Problem

// Error prints one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders the problems by line, keeping the order they were found in
// for problems on the same line (cross-reference checks run after decoding).
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return ps
}

// none reports whether no problem was recorded for key yet.
func (ps Problems) none(key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return false
		}
	}
	return true
}
