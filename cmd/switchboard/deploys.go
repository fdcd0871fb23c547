package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/github"
	"github.com/switchboardhq/switchboard/gitsource"
)

// wireDeploys builds each deploy's branch source and teardown schedule into
// rt, where the deploy steps find them. A source whose settings cannot work
// is an error naming its key. With create, the built-in demo's repository
// is made on first start.
func wireDeploys(cfg *config.Config, rt *switchboard.BranchSources, create bool) error {
	rt.Sources = map[string]switchboard.BranchSource{}
	rt.Schedules = map[string]switchboard.Ticker{}
	for _, d := range cfg.Deploys {
		where := fmt.Sprintf("%s:%d: deploys.%s.source", cfg.File, d.Line, d.Command)
		switch {
		case d.Source.GitHub != nil:
			g := d.Source.GitHub
			src, err := github.New(github.Options{Repository: g.Repository, Token: g.Token.Value(), APIURL: g.APIURL})
			if err != nil {
				return fmt.Errorf("%s.github: %w", where, err)
			}
			rt.Sources[d.Command] = src
		case d.Source.Git != nil:
			path := d.Source.Git.Path
			if !filepath.IsAbs(path) {
				path = filepath.Join(cfg.DataDir, path)
			}
			if d.Source.Git.Demo && create {
				if _, err := gitsource.CreateDemo(path); err != nil {
					return fmt.Errorf("%s.git: create the demo repository: %w", where, err)
				}
			}
			src, err := gitsource.New(path)
			if err != nil && create {
				return fmt.Errorf("%s.git.path: %w", where, err)
			}
			if src != nil {
				rt.Sources[d.Command] = src
			}
		}
		if t := d.Teardown; t != nil {
			sched, err := cron.ParseStandard("CRON_TZ=" + t.Timezone + " " + t.Cron)
			if err != nil {
				return fmt.Errorf("%s:%d: deploys.%s.teardown.cron: %w", cfg.File, d.Line, d.Command, err)
			}
			rt.Schedules[d.Command] = sched
		}
	}
	return nil
}

// leadSchedule fires each tick of a schedule lead earlier.
type leadSchedule struct {
	cron.Schedule
	lead time.Duration
}

func (l leadSchedule) Next(t time.Time) time.Time { return l.Schedule.Next(t.Add(l.lead)).Add(-l.lead) }
