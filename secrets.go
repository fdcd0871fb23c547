package switchboard

import (
	"cmp"
	"errors"
	"slices"
	"strings"
)

// Secrets are the secret values a configuration holds, and the references
// (${VAR}, ${file:PATH}) its workflow steps name them by. A run's plan keeps
// the references as written; a step gets the values only when it runs
// (Resolve), and what Switchboard writes about a run (messages, audit
// lines, errors, logs) goes through Redact. The zero value and nil hold no
// secret.
type Secrets struct {
	refs     map[string]string // reference as written inside ${...} → value
	replacer *strings.Replacer
}

// MinSecretLength is the shortest value Redact hides: shorter ones are not
// credentials, and hiding them would garble ordinary words.
const MinSecretLength = 6

// NewSecrets holds the values (every configured secret) and refs (the value
// of each ${...} reference in a workflow step, by the text inside ${}).
// The values of refs are secrets too.
func NewSecrets(values []string, refs map[string]string) *Secrets {
	s := &Secrets{refs: refs}
	all := slices.Clone(values)
	for _, v := range refs {
		all = append(all, v)
	}
	// Longest first, so a secret that contains another is hidden whole.
	slices.SortFunc(all, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	all = slices.Compact(all)
	var pairs []string
	for _, v := range all {
		if len(v) >= MinSecretLength {
			pairs = append(pairs, v, redactedMark)
		}
	}
	if len(pairs) > 0 {
		s.replacer = strings.NewReplacer(pairs...)
	}
	return s
}

// Redact returns text with every secret value replaced by "[redacted]".
func (s *Secrets) Redact(text string) string {
	if s == nil || s.replacer == nil || text == "" {
		return text
	}
	return s.replacer.Replace(text)
}

// Empty reports whether there is nothing to redact.
func (s *Secrets) Empty() bool { return s == nil || s.replacer == nil }

// Resolve replaces every ${...} reference in text, as a configuration wrote
// it, by its value; "$${" stands for a literal "${", as in the
// configuration. A reference the configuration no longer holds is an
// EINVALID error naming it (never a value).
func (s *Secrets) Resolve(text string) (string, error) {
	return ExpandReferences(text, func(ref string) (string, error) {
		if s != nil {
			if v, ok := s.refs[ref]; ok {
				return v, nil
			}
		}
		return "", Errorf(EINVALID, "The step refers to ${%s}, which the configuration this server runs does not hold.", ref)
	})
}

// ErrUnterminatedReference is a "${" without its "}".
var ErrUnterminatedReference = errors.New(`unterminated "${" (write "$${" for a literal "${")`)

// ExpandReferences replaces each ${REF} in text by what lookup returns for
// REF (the text between the braces); "$${" stands for a literal "${". It
// stops at the first error of lookup, or ErrUnterminatedReference.
func ExpandReferences(text string, lookup func(ref string) (string, error)) (string, error) {
	if !strings.Contains(text, "${") {
		return text, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		if i > 0 && text[i-1] == '$' {
			b.WriteString(text[:i-1] + "${")
			text = text[i+2:]
			continue
		}
		b.WriteString(text[:i])
		end := strings.IndexByte(text[i+2:], '}')
		if end < 0 {
			return "", ErrUnterminatedReference
		}
		v, err := lookup(text[i+2 : i+2+end])
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		text = text[i+2+end+1:]
	}
}
