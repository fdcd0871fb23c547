package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/metrics"
	"github.com/switchboardhq/switchboard/slack"
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
	logger := newLogger(cfg.Log, stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
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
	// One sampler for every endpoint anyone can call unverified: a flood of
	// bad signatures adds a bounded number of audit and log lines a minute.
	rejections := &switchboard.RejectSampler{Auditor: st, Logger: logger, CountFunc: meter.RequestRejected}
	defer rejections.Close()
	commands := &engine.Commands{Specs: cfg.Commands, Workflows: cfg.Workflows, Deploys: cfg.DeploySpecs(), Runs: st, InstanceIDFunc: instanceIDFunc(cfg)}
	events := &engine.Events{Workflows: cfg.Workflows, Runs: st}
	approvals := &engine.Approvals{Store: st}
	inventory = st
	runner := &engine.Runner{Steps: cfg.Registry(), Providers: providers, Locks: st, Approvals: st, Inventory: st, Events: events,
		RetryFor: cfg.RetryFor, CloudTitles: cloudTitles(cfg)}
	runner.Prepare(cfg.Workflows)
	sources, problems := buildSources(ctx, cfg, events, logger)
	if len(problems) > 0 {
		fmt.Fprintln(stderr, problems.Error())
		return problems
	}
	httpClient := &http.Client{Timeout: 10 * time.Second}
	// Each platform delivers the answers to its own requests; the rest
	// (runs started by schedules, mail, events) go to Slack when it is
	// configured, and to the console's transcript otherwise.
	webhooks := map[string]string{}
	for name, u := range cfg.Slack.Webhooks {
		webhooks[name] = u.Value()
	}
	slackMessenger := &slack.Messenger{BotToken: cfg.Slack.BotToken.Value(), APIURL: cfg.Slack.APIURL, HTTPClient: httpClient, Logger: logger, Webhooks: webhooks}
	messengers := map[string]switchboard.Messenger{"console": web.ConsoleMessenger{}}
	var messenger switchboard.Messenger = web.ConsoleMessenger{}
	if cfg.Slack.Enabled() || cfg.Slack.BotToken != "" || len(webhooks) > 0 {
		messengers["slack"], messengers["socket"] = slackMessenger, slackMessenger
		messenger = slackMessenger
	}

	var slackHandlers web.SlackHandlers
	if cfg.Slack.Enabled() || cfg.Slack.AllowLegacyToken {
		h, err := slack.NewHandler(slack.HandlerConfig{
			SigningSecret:     cfg.Slack.SigningSecret.Value(),
			VerificationToken: cfg.Slack.VerificationToken.Value(),
			AllowLegacyToken:  cfg.Slack.AllowLegacyToken,
			TeamID:            cfg.Slack.TeamID,
			AppID:             cfg.Slack.AppID,
			Commands:          commands,
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
		Commands:     commands,
		Store:        st,
		Auditor:      st,
		Rejections:   rejections,
		Slack:        slackHandlers,
		Metrics:      meter.Handler(),
		Users:        users,
		Channels:     channels,
		CommandNames: commands.Names(),
		Approvals:    approvals,
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
	if err := st.Start(ctx, store.Work{Advancer: runner, Messengers: messengers, Messenger: messenger, Meter: meter, Events: events}); err != nil {
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
				Commands: commands, Deliveries: st, Auditor: st, Rejections: rejections, Meter: meter, Logger: logger,
				TeamID: cfg.Slack.TeamID, AppID: cfg.Slack.AppID,
			})
			if err != nil {
				logger.Error("slack socket mode stopped", "err", err)
			}
		}()
	} else {
		close(socketDone)
	}

	pollersDone := sources.start(ctx, st, logger)

	url := "http://" + ln.Addr().String() + "/"
	logger.Info("switchboard started", "version", switchboard.Version, "listen", ln.Addr().String(),
		"store", cfg.Redacted().Store, "config", cfg.File, "startup", time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(stdout, "Switchboard is running. Open %s to try it (try /ec2 status in the playground).\n", url)

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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
// user named in groups or allow lists, every allowed channel.
func playgroundPickers(cfg *config.Config) (users, channels []string) {
	for _, members := range cfg.Groups {
		users = append(users, members...)
	}
	for _, c := range cfg.Commands {
		users = append(users, c.Access.Users...)
		channels = append(channels, c.Access.Channels...)
	}
	for _, d := range cfg.Deploys {
		users = append(users, d.Access.Users...)
		channels = append(channels, d.Access.Channels...)
	}
	slices.Sort(users)
	slices.Sort(channels)
	users, channels = slices.Compact(users), slices.Compact(channels)
	if len(channels) == 0 {
		channels = []string{"C0GENERAL"}
	}
	return users, channels
}
