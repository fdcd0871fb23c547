package store

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/switchboardhq/switchboard"
)

// Schedule is a workflow's cron schedule. River's elected leader enqueues
// its ticks, so several replicas never fire one tick twice; the tick's time
// (to the second) also makes its delivery id, which the engine deduplicates
// across a change of leader.
type Schedule struct {
	Workflow string
	// Schedule says when the next tick is after a time (a cron schedule).
	Schedule interface{ Next(time.Time) time.Time }
	// RunOnStart fires once at start, for ticks missed while down.
	RunOnStart bool
}

// ScheduleArgs is the job a schedule tick enqueues.
type ScheduleArgs struct {
	Workflow string    `json:"workflow"`
	Tick     time.Time `json:"tick"`
}

func (ScheduleArgs) Kind() string { return "schedule" }

func periodicJobs(schedules []Schedule) []*river.PeriodicJob {
	jobs := make([]*river.PeriodicJob, len(schedules))
	for i, sc := range schedules {
		jobs[i] = river.NewPeriodicJob(sc.Schedule, func() (river.JobArgs, *river.InsertOpts) {
			return ScheduleArgs{Workflow: sc.Workflow, Tick: time.Now().UTC().Truncate(time.Second)}, nil
		}, &river.PeriodicJobOpts{RunOnStart: sc.RunOnStart, ID: "schedule:" + sc.Workflow})
	}
	return jobs
}

type scheduleWorker struct {
	river.WorkerDefaults[ScheduleArgs]
	s *Store
}

func (w *scheduleWorker) Work(ctx context.Context, job *river.Job[ScheduleArgs]) error {
	if w.s.work.Events == nil {
		return river.JobCancel(fmt.Errorf("no event handler for schedule %s", job.Args.Workflow))
	}
	tick := job.Args.Tick.Format(time.RFC3339)
	_, err := w.s.work.Events.HandleEvent(ctx, switchboard.Event{Source: "schedule", Trigger: job.Args.Workflow,
		DeliveryID: job.Args.Workflow + "@" + tick, Subject: "scheduled run at " + tick, ReceivedAt: time.Now()})
	return err
}
