package sim

// matchTags reports whether tags has every key of want with a matching
// value. Values match as EC2 filter values do: * is any run of characters,
// ? is one character, and a backslash makes the next character literal.
func matchTags(want, tags map[string]string) bool {
	for k, pattern := range want {
		v, ok := tags[k]
		if !ok || !matchWildcard(pattern, v) {
			return false
		}
	}
	return true
}

func matchWildcard(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	// Iterative matching with one backtrack point: the last star seen.
	pi, ti := 0, 0
	starP, starT := -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && p[pi] == '*':
			starP, starT = pi, ti
			pi++
			continue
		case pi < len(p) && p[pi] == '?':
			pi++
			ti++
			continue
		case pi < len(p) && p[pi] == '\\' && pi+1 < len(p) && p[pi+1] == t[ti]:
			pi += 2
			ti++
			continue
		case pi < len(p) && p[pi] != '\\' && p[pi] == t[ti]:
			pi++
			ti++
			continue
		}
		if starP < 0 {
			return false
		}
		starT++
		pi, ti = starP+1, starT
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
