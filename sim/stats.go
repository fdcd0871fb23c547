package sim

import "maps"

// Stats count the calls a cloud has answered, for benchmarks and for tests
// that check how hard Switchboard leans on the API.
type Stats struct {
	Calls     map[string]int // calls received, by EC2 action name
	Throttled int            // calls answered RequestLimitExceeded
	Failed    int            // calls answered with any error, throttled ones included
}

// Stats returns a copy of the counts so far.
func (c *Cloud) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Calls = maps.Clone(c.stats.Calls)
	return s
}
