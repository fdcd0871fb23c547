package slack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"

	goslack "github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard"
)

// botScopes are all Switchboard's bot token needs: slash commands, posting
// answers, posting in channels it was not invited to, receiving mentions
// (the one bot event it subscribes to), and reading back the channels it
// posts in, to find an answer whose post was cut off before it was recorded
// instead of posting it twice; and reading people's and channels' names,
// which the console shows instead of ids.
var botScopes = []string{"commands", "chat:write", "chat:write.public", "app_mentions:read", "channels:history", "groups:history",
	"users:read", "channels:read"}

// botEvents are the Events API events the app subscribes to. Slack wants at
// least one for an event subscription, and a mention is the natural way to
// talk to a bot.
var botEvents = []string{"app_mention"}

// Manifest returns a Slack app manifest, as JSON (which Slack accepts as well
// as YAML), for an app that serves commands at baseURL: slash commands at
// baseURL+"/slack/commands", interactivity at "/slack/interactions" and
// events at "/slack/events". With socketMode the URLs are left out, since
// Slack then delivers over the WebSocket, and baseURL may be empty.
//
// Each command carries its description and usage hint in its users' words
// (engine.Commands.Help makes them from the config).
func Manifest(baseURL string, socketMode bool, commands []switchboard.CommandHelp) ([]byte, error) {
	base, err := manifestBaseURL(baseURL, socketMode)
	if err != nil {
		return nil, err
	}
	at := func(p string) string {
		if socketMode {
			return ""
		}
		return base + p
	}

	m := goslack.Manifest{
		Metadata: goslack.ManifestMetadata{MajorVersion: 1, MinorVersion: 1},
		Display: goslack.Display{
			Name:        "Switchboard",
			Description: "Run the cloud fleet from chat.",
		},
		Features: goslack.Features{
			BotUser: goslack.BotUser{DisplayName: "Switchboard", AlwaysOnline: true},
		},
		OAuthConfig: goslack.OAuthConfig{Scopes: goslack.OAuthScopes{Bot: botScopes}},
		Settings: goslack.Settings{
			EventSubscriptions: &goslack.EventSubscriptions{RequestUrl: at("/slack/events"), BotEvents: botEvents},
			Interactivity:      &goslack.Interactivity{IsEnabled: true, RequestUrl: at("/slack/interactions")},
			SocketModeEnabled:  socketMode,
		},
	}
	seen := map[string]bool{}
	for _, c := range commands {
		if err := checkCommandName(c.Name); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("manifest: command %s is configured twice", c.Name)
		}
		seen[c.Name] = true
		m.Features.SlashCommands = append(m.Features.SlashCommands, goslack.ManifestSlashCommand{
			Command:     c.Name,
			Description: c.Description,
			Url:         at("/slack/commands"),
			UsageHint:   c.Usage,
		})
	}
	// Usage hints hold <placeholders>: keep them readable in the JSON.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return out.Bytes(), nil
}

// manifestBaseURL checks that Slack could reach baseURL: it only calls
// https URLs; plain http is allowed on loopback so tests can use it.
func manifestBaseURL(raw string, socketMode bool) (string, error) {
	if raw == "" && socketMode {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("manifest: base URL %q is not an absolute URL: use e.g. https://switchboard.example.com", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("manifest: base URL %q must not carry a query, fragment or credentials", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("manifest: base URL %q must use https: Slack only sends requests to https URLs", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkCommandName applies Slack's rules for a slash command's name.
func checkCommandName(name string) error {
	rest, ok := strings.CutPrefix(name, "/")
	if !ok || rest == "" || len(name) > 32 || strings.ContainsAny(rest, " \t\n/") || strings.ToLower(name) != name {
		return fmt.Errorf("manifest: command name %q is not a Slack slash command: use a leading slash, lower case, no spaces, at most 32 characters, e.g. /ec2", name)
	}
	return nil
}
