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
	// RunOnStart fires once at start for a tick missed while down: the
	// start's tick is the schedule's last one due, so when that one ran
	// before the restart, its delivery id repeats and nothing runs.
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
			return ScheduleArgs{Workflow: sc.Workflow, Tick: lastDue(sc.Schedule, time.Now())}, nil
		}, &river.PeriodicJobOpts{RunOnStart: sc.RunOnStart, ID: "schedule:" + sc.Workflow})
	}
	return jobs
}

// lastDue is the schedule's latest time at or before now (to the second),
// the tick a job enqueued now stands for: the tick itself when River
// enqueues it on time (a little early or late), and at start the last tick
// that was due, which the engine's delivery ids tell apart from one that
// already ran. A schedule without fixed times (@every) has no last due tick
// before now: it is now.
func lastDue(sched interface{ Next(time.Time) time.Time }, now time.Time) time.Time {
	now = now.UTC().Add(500 * time.Millisecond) // River may fire a hair early
	for w := time.Minute; w <= 400*24*time.Hour; w *= 2 {
		t := sched.Next(now.Add(-w))
		if t.IsZero() || t.After(now) {
			continue
		}
		for steps := 0; steps < 100000; steps++ {
			next := sched.Next(t)
			if next.IsZero() || next.After(now) || !next.After(t) {
				break
			}
			t = next
		}
		return t.UTC().Truncate(time.Second)
	}
	return now.Truncate(time.Second)
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
