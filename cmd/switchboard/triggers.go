package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/robfig/cron/v3"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/store"
)

// checkExpressions compiles every expression of the config (workflows,
// command policies); the problems read like the config's own
// (FILE:LINE: KEY: MESSAGE).
func checkExpressions(cfg *config.Config) config.Problems {
	var found []engine.Problem
	for _, c := range cfg.Commands {
		found = append(found, engine.CheckPolicy(c)...)
	}
	for _, wf := range cfg.Workflows {
		found = append(found, engine.CheckWorkflow(cfg.Registry(), wf)...)
	}
	for _, d := range cfg.Deploys {
		found = append(found, engine.CheckDeploy(cfg.Registry(), d.DeploySpec)...)
	}
	var problems config.Problems
	for _, p := range found {
		problems = append(problems, config.Problem{File: cfg.File, Line: p.Line, Key: p.Key, Msg: p.Msg})
	}
	return problems
}

// buildSchedules turns the workflows' schedule triggers into cron schedules
// in their time zones.
func buildSchedules(cfg *config.Config) ([]store.Schedule, error) {
	var out []store.Schedule
	for _, wf := range cfg.Workflows {
		t := wf.Trigger.Schedule
		if t == nil {
			continue
		}
		tz := t.Timezone
		if tz == "" {
			tz = "UTC"
		}
		sched, err := cron.ParseStandard("CRON_TZ=" + tz + " " + t.Cron)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: workflows.%s.trigger.schedule.cron: %w", cfg.File, wf.Line, wf.Name, err)
		}
		if t.Lead > 0 {
			sched = leadSchedule{sched, t.Lead}
		}
		out = append(out, store.Schedule{Workflow: wf.Name, Schedule: sched, RunOnStart: t.Missed == "run_once"})
	}
	return out, nil
}

func hookSecrets(cfg *config.Config) map[string]string {
	hooks := map[string]string{}
	for _, h := range cfg.Hooks {
		hooks[h.Name] = h.Secret.Value()
	}
	return hooks
}

func awsEventsHandler(cfg *config.Config, events switchboard.EventHandler, logger *slog.Logger, rejections switchboard.Rejecter) http.Handler {
	if cfg.AWSEvents.Secret == "" {
		return nil
	}
	return awsevents.Handler(cfg.AWSEvents.Secret.Value(), events, logger, rejections)
}

func optionalRegexp(pattern string) *regexp.Regexp {
	if pattern == "" {
		return nil
	}
	return regexp.MustCompile(pattern) // checked when the config loaded
}
