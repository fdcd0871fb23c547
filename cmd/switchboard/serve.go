package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/metrics"
	"github.com/switchboardhq/switchboard/slack"
	"github.com/switchboardhq/switchboard/steps"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/web"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "config file (default: the built-in demo on the simulated cloud)")
	addr := fs.String("addr", "", "listen address HOST:PORT (overrides the config's listen)")
	dataDir := fs.String("data-dir", "", "data directory for the built-in config's SQLite database (default ./data)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	started := time.Now()
	if getenv("GOGC") == "" {
		// The live heap is small (runs are in the store, not in memory), so
		// Go's default collects every few megabytes under load; twice the
		// headroom halves that work for a few more megabytes at the peak.
		// GOGC set in the environment wins.
		debug.SetGCPercent(200)
	}
	if path := getenv("SWITCHBOARD_CPUPROFILE"); path != "" {
		// For benchmarks (bench/profile.sh): a CPU profile of the whole
		// serve, written as it stops.
		stop, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg, wired, err := loadConfig(*path, *dataDir, getenv, stderr)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Listen = *addr
	}
	if problems := checkExpressions(cfg); len(problems) > 0 {
		fmt.Fprintln(stderr, problems.Error())
		return problems
	}
	secrets := cfg.Secrets()
	logger := newLogger(cfg.Log, stderr, secrets)
	responseURLs, httpClient, err := outboundClients(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	var localToken string
	if cfg.Console.AdminToken == "" {
		if localToken, err = consoleLoginToken(cfg.DataDir, true); err != nil {
			return err
		}
	}
	if err := wired.build(cfg, true); err != nil {
		return err
	}

	// What describes and launches show is remembered in the store's
	// inventory, which opens after the providers are built.
	var inventory switchboard.Inventory
	seen := func(cloud string, insts []switchboard.Instance) {
		if inventory != nil {
			inventory.Remember(cloud, insts)
		}
	}
	providers, err := buildProviders(ctx, cfg, getenv, true, seen)
	if err != nil {
		return err
	}
	schedules, err := buildSchedules(cfg)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	clientID := host + "@" + cfg.Listen
	if len(clientID) > 100 {
		clientID = clientID[:100]
	}
	st, err := store.Open(ctx, cfg.Store, store.Options{Logger: logger, Schedules: schedules, ClientID: clientID,
		Retention: store.Retention(cfg.Retention)})
	if err != nil {
		return err
	}
	defer st.Close()

	meter := metrics.New(st, logger)
	if c := st.SQLCounts(); c != nil {
		meter.CountSQL(c.Statements.Load, c.Commits.Load)
	}
	meter.CountCloudCalls(func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for name, p := range providers {
			if f, ok := p.(*fleet.Provider); ok {
				out[name] = f.Stats().Calls
			}
		}
		return out
	})
	// One sampler for every endpoint anyone can call unverified: a flood of
	// bad signatures adds a bounded number of audit and log lines a minute.
	rejections := &switchboard.RejectSampler{Auditor: st, Logger: logger, CountFunc: meter.RequestRejected}
	defer rejections.Close()
	commands := &engine.Commands{Specs: cfg.Commands, Workflows: cfg.Workflows, Deploys: cfg.DeploySpecs(), Runs: st, InstanceIDFunc: instanceIDFunc(cfg)}
	events := &engine.Events{Workflows: cfg.Workflows, Runs: st}
	approvals := &engine.Approvals{Store: st}
	inventory = st
	runner := &engine.Runner{Steps: cfg.Registry(), Providers: providers, Locks: st, Approvals: st, Inventory: st, Events: events,
		RetryFor: cfg.RetryFor, Secrets: secrets, HTTPClient: httpClient, Commands: cfg.Commands, InstanceIDFunc: instanceIDFunc(cfg),
		CloudTitles: cloudTitles(cfg)}
	runner.Prepare(cfg.Workflows)
	sources, problems := buildSources(ctx, cfg, events, logger)
	if len(problems) > 0 {
		fmt.Fprintln(stderr, problems.Error())
		return problems
	}
	// Slack's client follows no redirect: a response_url is checked
	// against slack.response_url_hosts, and a 3xx must not take the post
	// elsewhere.
	// Every answer goes to one of two hosts (hooks.slack.com, slack.com):
	// keep enough idle connections to them that concurrent answers reuse
	// them instead of each dialing (and shaking hands) anew; the default
	// keeps two per host.
	slackTransport := http.DefaultTransport.(*http.Transport).Clone()
	slackTransport.MaxIdleConnsPerHost = 64
	slackClient := &http.Client{Timeout: 10 * time.Second, CheckRedirect: switchboard.NoRedirects, Transport: slackTransport}
	// Each platform delivers the answers to its own requests; the rest
	// (runs started by schedules, mail, events) go to Slack when it is
	// configured, and to the console's transcript otherwise.
	webhooks := map[string]string{}
	for name, u := range cfg.Slack.Webhooks {
		webhooks[name] = u.Value()
	}
	slackMessenger := &slack.Messenger{BotToken: cfg.Slack.BotToken.Value(), APIURL: cfg.Slack.APIURL, HTTPClient: slackClient, Logger: logger, Webhooks: webhooks,
		ResponseURLs: responseURLs}
	messengers := map[string]switchboard.Messenger{"console": logMessages(web.ConsoleMessenger{}, logger)}
	messenger := messengers["console"]
	if cfg.Slack.Enabled() || cfg.Slack.BotToken != "" || len(webhooks) > 0 {
		messenger = logMessages(slackMessenger, logger)
		messengers["slack"], messengers["socket"] = messenger, messenger
	}
	handler := logCommands(commands, logger)

	// A decided approval's request is rewritten where it was posted, so
	// the channel sees who decided and when.
	approvals.Decided = func(ctx context.Context, ap *switchboard.Approval) {
		go updateApproval(context.WithoutCancel(ctx), st, ap, messengers, messenger, slackMessenger, logger)
	}
	runner.ApprovalTimedOut = approvals.Decided

	var slackHandlers web.SlackHandlers
	if cfg.Slack.Enabled() || cfg.Slack.AllowLegacyToken {
		h, err := slack.NewHandler(slack.HandlerConfig{
			SigningSecret:     cfg.Slack.SigningSecret.Value(),
			VerificationToken: cfg.Slack.VerificationToken.Value(),
			AllowLegacyToken:  cfg.Slack.AllowLegacyToken,
			TeamID:            cfg.Slack.TeamID,
			AppID:             cfg.Slack.AppID,
			ResponseURLs:      responseURLs,
			Commands:          handler,
			Deliveries:        st,
			Auditor:           st,
			Rejections:        rejections,
			Interactions:      &slack.ApprovalButtons{Approver: approvals, Messenger: slackMessenger, Logger: logger},
			Meter:             meter,
			Logger:            logger,
		})
		if err != nil {
			return err
		}
		slackHandlers = web.SlackHandlers{Commands: h, Interactions: h, Events: h}
	}
	users, channels := playgroundPickers(cfg)
	server := web.NewServer(web.Config{
		Addr:         cfg.Listen,
		AdminToken:   cfg.Console.AdminToken.Value(),
		LocalToken:   localToken,
		Operator:     cfg.Console.Operator,
		Operators:    operatorTokens(cfg.Console),
		AsOperator:   cfg.Slack.Enabled() || cfg.Slack.SocketMode(),
		Commands:     handler,
		Store:        st,
		Auditor:      st,
		Rejections:   rejections,
		Slack:        slackHandlers,
		Metrics:      meter.Handler(),
		Users:        users,
		Channels:     channels,
		CommandNames: commands.Names(),
		Approvals:    approvals,
		Details:      st,
		Fleet:        &engine.Fleet{Providers: providers, Commands: cfg.Commands, Workflows: cfg.Workflows},
		Names:        consoleNames{fixed: cfg.Names, slack: &slack.Names{BotToken: cfg.Slack.BotToken.Value(), APIURL: cfg.Slack.APIURL, HTTPClient: httpClient}},
		AWSEvents:    awsEventsHandler(cfg, events, logger, rejections),
		Hooks:        hookSecrets(cfg),
		Events:       events,
		Sources:      sources.health,
		Logger:       logger,
		Meter:        meter,
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set listen: in the config or --addr)", cfg.Listen, err)
	}
	httpServer := &http.Server{
		Handler: server.Handler(),
		// Slow or stalled clients must not hold connections open.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if err := st.Start(ctx, store.Work{Advancer: logRuns(runner, logger), Messengers: messengers, Messenger: messenger, Meter: meter, Events: events}); err != nil {
		ln.Close()
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()

	socketDone := make(chan struct{})
	if cfg.Slack.SocketMode() {
		go func() {
			defer close(socketDone)
			err := slack.RunSocketMode(ctx, slack.SocketConfig{
				AppToken: cfg.Slack.AppToken.Value(), BotToken: cfg.Slack.BotToken.Value(), APIURL: cfg.Slack.APIURL,
				Commands: handler, Deliveries: st, Auditor: st, Rejections: rejections, Meter: meter, Logger: logger,
				TeamID: cfg.Slack.TeamID, AppID: cfg.Slack.AppID, ResponseURLs: responseURLs,
			})
			if err != nil {
				logger.Error("slack socket mode stopped", "err", err)
			}
		}()
	} else {
		close(socketDone)
	}

	pollersDone := sources.start(ctx, st, logger)

	logger.Info("switchboard started", "version", switchboard.Version, "listen", ln.Addr().String(),
		"store", cfg.Redacted().Store, "config", cfg.File, "startup", time.Since(started).Round(time.Millisecond))
	fmt.Fprintln(stdout, banner(ln.Addr().(*net.TCPAddr), cfg.Console.AdminToken != "", server.LoginQuery())) // the token only here: never logged
	// Once started, and again once the start's first rounds of work (the
	// queue's leader election and maintenance, the pollers' first polls)
	// are done.
	releaseStartupMemory()
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			releaseStartupMemory()
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}

	// Drain: stop taking requests, let in-flight runs reach their next
	// checkpoint, then close the database.
	logger.Info("shutting down: draining requests and in-flight work")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	if err := st.Stop(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("job queue stop", "err", err)
	}
	<-socketDone
	<-pollersDone
	logger.Info("stopped")
	return nil
}

// banner is the line serve prints once it listens: where to open the
// console, with loginQuery (the generated token) when that logs in, or
// why it is off (on a public address without an admin token).
func banner(addr *net.TCPAddr, adminToken bool, loginQuery string) string {
	if addr.IP.IsLoopback() {
		return fmt.Sprintf("Switchboard is running. Open http://%s/%s to try it (try /ec2 status in the playground).", addr, loginQuery)
	}
	if !adminToken {
		return fmt.Sprintf("Switchboard is running on %s. The console is off: it listens beyond loopback without console.admin_token (set one, or listen on 127.0.0.1). Slack requests go to /slack/commands.", addr)
	}
	host := addr.String()
	if addr.IP.IsUnspecified() {
		host = net.JoinHostPort("localhost", strconv.Itoa(addr.Port))
	}
	return fmt.Sprintf("Switchboard is running on %s. Open http://%s/ and log in with console.admin_token to try it.", addr, host)
}

// newLogger writes the process log; every configured secret reads
// "[redacted]" in it, whatever carried it there.
func newLogger(c config.Log, w io.Writer, secrets *switchboard.Secrets) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel(), ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		return redactAttr(a, secrets)
	}}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// outboundClients builds where Switchboard's own requests may go: the
// response_url hosts Slack's answers may use, and the client of http
// steps (nil when the config has no http section: they may call nothing).
func outboundClients(cfg *config.Config) (*switchboard.AllowList, *http.Client, error) {
	responseURLs, err := switchboard.NewAllowList(cfg.Slack.ResponseURLHosts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: slack.response_url_hosts: %w", cfg.File, err)
	}
	if cfg.HTTP == nil {
		return responseURLs, nil, nil
	}
	allow, err := switchboard.NewAllowList(cfg.HTTP.Allow...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s:%d: http.allow: %w", cfg.File, cfg.HTTP.Line, err)
	}
	return responseURLs, allow.Client(steps.HTTPMaxTimeout, "http.allow"), nil
}

// buildProviders provisions every configured cloud through its registered
// type, each behind the fleet layer: rate limits, batching, retries on
// throttling and outages, and bad ids isolated from good ones. Nothing here
// calls a cloud API.
//
// With persist false (check), a simulated cloud keeps no state file.
//
// seen, when set, is told what each cloud's describes and launches return.
func buildProviders(ctx context.Context, cfg *config.Config, getenv func(string) string, persist bool, seen func(cloud string, insts []switchboard.Instance)) (map[string]switchboard.Provider, error) {
	providers := map[string]switchboard.Provider{}
	for _, c := range cfg.Clouds {
		where := fmt.Sprintf("%s:%d: clouds.%s", cfg.File, c.Line, c.Name)
		t, ok := cfg.Registry().Cloud(c.Provider)
		if !ok {
			return nil, fmt.Errorf("%s: unknown provider %q", where, c.Provider)
		}
		opts, err := c.OptionsJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		p, err := t.NewFunc(ctx, switchboard.CloudSpec{Name: c.Name, Options: opts, DataDir: cfg.DataDir, Check: !persist, Getenv: getenv})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		fo := fleetOptions(c.Provider, p)
		if seen != nil {
			fo.SeenFunc = func(insts []switchboard.Instance) { seen(c.Name, insts) }
		}
		providers[c.Name] = fleet.Wrap(p, fo)
	}
	return providers, nil
}

// playgroundPickers lists the users and channels the console offers: every
// user named in groups or allow lists, every allowed channel, in the order
// the config names them (groups expanded), so the first of each is one
// the first command allows, as the README's walk-through expects.
func playgroundPickers(cfg *config.Config) (users, channels []string) {
	addUser := func(u string) {
		if group, ok := strings.CutPrefix(u, "group:"); ok {
			users = append(users, cfg.Groups[group]...)
			return
		}
		users = append(users, u)
	}
	for _, c := range cfg.Commands {
		for _, u := range c.Access.Users {
			addUser(u)
		}
		channels = append(channels, c.Access.Channels...)
	}
	for _, wf := range cfg.Workflows {
		for _, u := range wf.Access.Users {
			addUser(u)
		}
		channels = append(channels, wf.Access.Channels...)
	}
	for _, d := range cfg.Deploys {
		for _, u := range d.Access.Users {
			addUser(u)
		}
		channels = append(channels, d.Access.Channels...)
	}
	groups := slices.Sorted(maps.Keys(cfg.Groups))
	for _, g := range groups {
		users = append(users, cfg.Groups[g]...)
	}
	users, channels = firstOfEach(users), firstOfEach(channels)
	if len(channels) == 0 {
		channels = []string{"C0GENERAL"}
	}
	return users, channels
}

// firstOfEach keeps the first of each value, in order.
func firstOfEach(s []string) []string {
	seen := map[string]bool{}
	return slices.DeleteFunc(s, func(v string) bool {
		if seen[v] {
			return true
		}
		seen[v] = true
		return false
	})
}

// updateApproval rewrites a decided approval's request in Slack, when Slack
// delivered it (the console reads the decision from the store).
func updateApproval(ctx context.Context, st *store.Store, ap *switchboard.Approval, messengers map[string]switchboard.Messenger,
	fallback switchboard.Messenger, sm *slack.Messenger, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	posted, err := st.ApprovalMessage(ctx, ap)
	if err != nil {
		logger.Warn("find the request of a decided approval", "approval", ap.ID, "run_id", ap.RunID, "err", err)
		return
	}
	m, ok := messengers[posted.Source]
	if !ok {
		m = fallback
	}
	if ml, ok := m.(messageLog); ok {
		m = ml.next // the log around it
	}
	if m != switchboard.Messenger(sm) {
		return
	}
	if err := sm.UpdateApproval(ctx, posted, ap); err != nil {
		logger.Warn("update a decided approval in Slack", "approval", ap.ID, "run_id", ap.RunID, "err", err)
	}
}

// consoleNames are the names the console shows for ids: the config's names
// first, then what Slack says when a bot token is set.
type consoleNames struct {
	fixed map[string]string
	slack *slack.Names
}

func (n consoleNames) Names(ctx context.Context, ids []string) map[string]string {
	out := map[string]string{}
	var ask []string
	for _, id := range ids {
		if name, ok := n.fixed[id]; ok {
			out[id] = name
		} else {
			ask = append(ask, id)
		}
	}
	if len(ask) > 0 {
		for id, name := range n.slack.Names(ctx, ask) {
			out[id] = name
		}
	}
	return out
}

// consoleTokenFile is the console's generated login token, in the data
// directory: readable by the user Switchboard runs as, and nobody else.
const consoleTokenFile = "console-token"

// consoleLoginToken reads the console's generated login token from the data
// directory; with create, at first start it makes one (0600). A token
// file others can read is refused: whoever read it could act as the
// operator.
func consoleLoginToken(dataDir string, create bool) (string, error) {
	path := filepath.Join(dataDir, consoleTokenFile)
	for {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) && create {
			// O_EXCL: a file another process made meanwhile is kept, and
			// both then read the same token.
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err == nil {
				_, err = f.WriteString(rand.Text() + "\n")
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(path)
				}
			}
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("make the console's login token: %w", err)
			}
			create = false
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist yet: Switchboard makes it when it first starts without console.admin_token", path)
		}
		if err != nil {
			return "", fmt.Errorf("read the console's login token: %w", err)
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return "", fmt.Errorf("read the console's login token: %w", err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			return "", fmt.Errorf("%s can be read by other users (mode %04o): run chmod 600 %s, or delete it to have a new token made", path, perm, path)
		}
		data, err := io.ReadAll(io.LimitReader(f, 1024))
		if err != nil {
			return "", fmt.Errorf("read the console's login token: %w", err)
		}
		token := strings.TrimSpace(string(data))
		if len(token) < 16 || strings.ContainsFunc(token, unicode.IsSpace) {
			return "", fmt.Errorf("%s does not hold a login token: delete it to have a new one made", path)
		}
		return token, nil
	}
}

// operatorTokens are the console's per-person tokens by chat user id.
func operatorTokens(c config.Console) map[string]string {
	if len(c.Operators) == 0 {
		return nil
	}
	out := make(map[string]string, len(c.Operators))
	for user, token := range c.Operators {
		out[user] = token.Value()
	}
	return out
}

// startCPUProfile writes a CPU profile to path until the returned func is
// called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("SWITCHBOARD_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("SWITCHBOARD_CPUPROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
