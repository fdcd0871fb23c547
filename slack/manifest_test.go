package slack

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	goslack "github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard"
)

var manifestCommands = []switchboard.CommandHelp{
	{Name: "/ec2", Description: "Start, stop or check instances: web", Usage: "status | start | stop [target]"},
	{Name: "/restart", Description: "Restart an instance once ops approves", Usage: "instance"},
}

func TestManifestHTTP(t *testing.T) {
	t.Parallel()
	out, err := Manifest("https://switchboard.example.com/", false, manifestCommands)
	if err != nil {
		t.Fatal(err)
	}
	var m goslack.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("manifest is not JSON: %v", err)
	}
	cmds := m.Features.SlashCommands
	if len(cmds) != 2 || cmds[0].Command != "/ec2" || cmds[0].Url != "https://switchboard.example.com/slack/commands" ||
		cmds[0].UsageHint != "status | start | stop [target]" || cmds[0].Description != "Start, stop or check instances: web" ||
		cmds[1].Command != "/restart" || cmds[1].Url != cmds[0].Url || cmds[1].Description != "Restart an instance once ops approves" || cmds[1].UsageHint != "instance" {
		t.Errorf("slash commands = %+v", cmds)
	}
	if m.Settings.Interactivity == nil || !m.Settings.Interactivity.IsEnabled ||
		m.Settings.Interactivity.RequestUrl != "https://switchboard.example.com/slack/interactions" {
		t.Errorf("interactivity = %+v", m.Settings.Interactivity)
	}
	if m.Settings.EventSubscriptions == nil || m.Settings.EventSubscriptions.RequestUrl != "https://switchboard.example.com/slack/events" {
		t.Errorf("event subscriptions = %+v", m.Settings.EventSubscriptions)
	}
	for _, scope := range []string{"commands", "chat:write", "chat:write.public"} {
		if !slices.Contains(m.OAuthConfig.Scopes.Bot, scope) {
			t.Errorf("bot scopes %v lack %s", m.OAuthConfig.Scopes.Bot, scope)
		}
	}
	if m.Settings.SocketModeEnabled {
		t.Error("socket mode enabled in an HTTP manifest")
	}
}

func TestManifestSocketMode(t *testing.T) {
	t.Parallel()
	out, err := Manifest("", true, manifestCommands)
	if err != nil {
		t.Fatal(err)
	}
	var m goslack.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled is not set")
	}
	if strings.Contains(string(out), "request_url") || strings.Contains(string(out), `"url"`) {
		t.Errorf("socket mode manifest carries URLs:\n%s", out)
	}
}

func TestManifestRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		baseURL  string
		commands []switchboard.CommandHelp
		want     string
	}{
		{"plain http", "http://switchboard.example.com", nil, "https"},
		{"no scheme", "switchboard.example.com", nil, "absolute"},
		{"empty without socket mode", "", nil, "absolute"},
		{"query", "https://x.example.com/?a=b", nil, "query"},
		{"command without slash", "https://x.example.com", []switchboard.CommandHelp{{Name: "ec2"}}, "leading slash"},
		{"command with capitals", "https://x.example.com", []switchboard.CommandHelp{{Name: "/EC2"}}, "lower case"},
		{"command twice", "https://x.example.com", []switchboard.CommandHelp{{Name: "/ec2"}, {Name: "/ec2"}}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Manifest(tt.baseURL, false, tt.commands)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestManifestLoopbackHTTP(t *testing.T) {
	t.Parallel()
	out, err := Manifest("http://127.0.0.1:8080", false, manifestCommands[:1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "http://127.0.0.1:8080/slack/commands") {
		t.Errorf("manifest:\n%s", out)
	}
}
