package slack

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	goslack "github.com/slack-go/slack"
)

// Names looks up what Slack calls a user (users.info) or a channel
// (conversations.info), for the console to show names instead of ids. Each
// answer is kept for an hour, and a failed lookup for five minutes, so a
// console polling every few seconds asks Slack about an id once.
type Names struct {
	BotToken string
	// APIURL is Slack's Web API base URL; https://slack.com/api/ when empty.
	APIURL     string
	HTTPClient *http.Client

	mu    sync.Mutex
	cache map[string]nameEntry
	now   func() time.Time // tests
}

type nameEntry struct {
	name    string
	expires time.Time
}

const (
	nameTTL       = time.Hour
	nameMissTTL   = 5 * time.Minute
	maxNameLookup = 20   // ids looked up per call; the rest wait for the next
	maxNameCache  = 5000 // entries kept before the expired ones are dropped
	// nameLookupBudget bounds one call's lookups together.
	nameLookupBudget = 3 * time.Second
)

// Names returns the names Slack gives the ids it knows, from the cache or
// by asking. An id Slack does not answer for is left out.
func (n *Names) Names(ctx context.Context, ids []string) map[string]string {
	out := map[string]string{}
	if n == nil || n.BotToken == "" {
		return out
	}
	now := n.clock()
	var ask []string
	n.mu.Lock()
	for _, id := range ids {
		if e, ok := n.cache[id]; ok && now.Before(e.expires) {
			if e.name != "" {
				out[id] = e.name
			}
		} else if lookable(id) && len(ask) < maxNameLookup {
			ask = append(ask, id)
		}
	}
	n.mu.Unlock()
	if len(ask) == 0 {
		return out
	}
	opts := []goslack.Option{goslack.OptionAPIURL(apiBaseURL(n.APIURL))}
	if n.HTTPClient != nil {
		opts = append(opts, goslack.OptionHTTPClient(n.HTTPClient))
	} else {
		opts = append(opts, goslack.OptionHTTPClient(defaultHTTPClient))
	}
	api := goslack.New(n.BotToken, opts...)
	// Names are only shown: a Slack that is slow or down costs the page
	// at most this long, and is not asked again for a while.
	ctx, cancel := context.WithTimeout(ctx, nameLookupBudget)
	defer cancel()
	for i, id := range ask {
		name, reached := lookUp(ctx, api, id)
		if !reached {
			for _, rest := range ask[i:] {
				n.remember(rest, "", now.Add(nameMissTTL))
			}
			break
		}
		ttl := nameTTL
		if name == "" {
			ttl = nameMissTTL
		} else {
			out[id] = name
		}
		n.remember(id, name, now.Add(ttl))
	}
	return out
}

// lookable reports whether id looks like a Slack user or channel id.
func lookable(id string) bool {
	if len(id) < 2 || len(id) > 32 {
		return false
	}
	switch id[0] {
	case 'U', 'W', 'C', 'G':
	default:
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool { return (r < 'A' || r > 'Z') && (r < '0' || r > '9') }) < 0
}

// lookUp asks Slack for one id's name: "" when it does not say, and
// reached false when Slack did not answer at all (down, slow, throttling).
func lookUp(ctx context.Context, api *goslack.Client, id string) (name string, reached bool) {
	var err error
	if id[0] == 'C' || id[0] == 'G' {
		var ch *goslack.Channel
		if ch, err = api.GetConversationInfoContext(ctx, &goslack.GetConversationInfoInput{ChannelID: id}); err == nil && ch != nil {
			return ch.Name, true
		}
	} else {
		var u *goslack.User
		if u, err = api.GetUserInfoContext(ctx, id); err == nil && u != nil {
			return cmp.Or(u.Profile.DisplayName, u.RealName, u.Name), true
		}
	}
	var answered goslack.SlackErrorResponse
	return "", err == nil || errors.As(err, &answered)
}

func (n *Names) remember(id, name string, expires time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cache == nil {
		n.cache = map[string]nameEntry{}
	}
	if len(n.cache) >= maxNameCache {
		now := n.clock()
		for k, e := range n.cache {
			if !now.Before(e.expires) {
				delete(n.cache, k)
			}
		}
	}
	if len(n.cache) < maxNameCache {
		n.cache[id] = nameEntry{name: name, expires: expires}
	}
}

func (n *Names) clock() time.Time {
	if n.now != nil {
		return n.now()
	}
	return time.Now()
}
