#!/usr/bin/env bash
# run.sh compares, in one run on this machine, three servers answering the same
# Slack slash command under the same load:
#
#   Switchboard  switchboard serve, SQLite store, sim cloud (1ms transitions,
#                no throttling): records the run and its audit lines in SQLite
#                before it acks, then a worker answers at the response_url.
#   Bolt         a Slack Bolt for JavaScript app (bench/compare/bolt, HTTPReceiver,
#                signature verification on): acks from memory, then respond().
#   bare Go      cmd/slackceiling: verifies the signature, acks, posts the answer
#                from a goroutine; nothing durable. The ceiling.
#
# For each load and each server, one after the other: start the server afresh
# on a free loopback port, wait until it answers, read its idle RSS, run an
# unrecorded warm-up, run the load with slackload while sampling the server's
# RSS every 100ms for the peak, and stop it. The loads:
#
#   closed   CONCURRENCY connections (16), each sending its next command as
#            soon as the last is acked, for CLOSED_SECONDS (5); then every
#            answer is awaited.
#   open     RATE commands a second (default: half of Switchboard's own
#            closed-loop answers/s, measured just before) for OPEN_SECONDS.
#   history  Switchboard only: the closed loop again, on a store that already
#            holds HISTORY_RUNS finished runs (1,000,000), each with its answer
#            and transcript line, and HISTORY_AUDIT audit lines (3,000,000),
#            written by bench/seed_history.py.
#
# Then Switchboard alone, idle for IDLE_SECONDS (60): CPU time and RSS; the
# per-command cost (bench/cost.sh) and a burst against EC2's limits
# (bench/burst.sh). It keeps slackload's JSON reports in RESULTS, writes the
# tables and the goals to DOC, and prints them. It exits non-zero when any run
# errored, left a command unanswered or answered one twice (the doc is
# written anyway).
#
#   bash bench/compare/run.sh
#
# Knobs (environment): CONCURRENCY (16), CLOSED_SECONDS (5), RATE (see above),
# OPEN_SECONDS (20), WARMUP (200), HISTORY_RUNS, HISTORY_AUDIT, IDLE_SECONDS,
# ANSWER_TIMEOUT (90s), RESULTS (bench/results/compare-<UTC time>), DOC
# (docs/BENCHMARKS.md).
set -euo pipefail

cd "$(dirname "$0")/../.."
CONCURRENCY=${CONCURRENCY:-16}
CLOSED_SECONDS=${CLOSED_SECONDS:-5}
RATE=${RATE:-}
OPEN_SECONDS=${OPEN_SECONDS:-20}
WARMUP=${WARMUP:-200}
HISTORY_RUNS=${HISTORY_RUNS:-1000000}
HISTORY_AUDIT=${HISTORY_AUDIT:-3000000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
ANSWER_TIMEOUT=${ANSWER_TIMEOUT:-90s}
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS=${RESULTS:-bench/results/compare-$stamp}
DOC=${DOC:-docs/BENCHMARKS.md}
# The closed loop sends for CLOSED_SECONDS; this only bounds it.
CLOSED_MAX=1000000

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-compare.XXXXXX")
server_pid=""
sampler_pid=""
stop_server() {
	if [[ -n "$sampler_pid" ]]; then
		kill "$sampler_pid" 2>/dev/null || true
		wait "$sampler_pid" 2>/dev/null || true
		sampler_pid=""
	fi
	if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	if [[ -n "$server_pid" ]]; then wait "$server_pid" 2>/dev/null || true; fi
	server_pid=""
}
cleanup() {
	stop_server
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building into $work" >&2
go build -o "$work/switchboard" ./cmd/switchboard
go build -o "$work/slackload" ./cmd/slackload
go build -o "$work/slackceiling" ./cmd/slackceiling
if [[ ! -d bench/compare/bolt/node_modules ]]; then
	(cd bench/compare/bolt && npm ci --no-audit --no-fund)
fi

# Slack's official test secret: nothing secret about a benchmark.
export SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5
mkdir -p "$RESULTS"

# The Switchboard config bench/ack.sh uses.
config="$work/switchboard.yaml"
{
	echo "data_dir: $work/data"
	cat bench/switchboard.yaml
} >"$config"
cp "$config" "$RESULTS/switchboard.yaml"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rss_kib() {
	awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# sample_peak writes the highest RSS of pid seen every 100ms until it is
# killed (or after 5 minutes); the peak so far is always in the file.
sample_peak() {
	local pid=$1 out=$2 peak=0 kib
	echo 0 >"$out"
	for ((i = 0; i < 3000; i++)); do
		kib=$(rss_kib "$pid")
		if ((kib > peak)); then
			peak=$kib
			# Renamed into place: a kill never leaves a half-written file.
			echo "$peak" >"$out.tmp" && mv -f "$out.tmp" "$out"
		fi
		sleep 0.1
	done
}

failed=0

# start NAME: start server NAME (switchboard, bolt, ceiling) on a free port,
# set $addr and $server_pid, and wait until it listens. Switchboard keeps
# whatever store $work/data holds.
start() {
	local name=$1 log=$2
	addr="127.0.0.1:$(free_port)"
	local server
	case $name in
	switchboard) server=("$work/switchboard" serve --config "$config" --addr "$addr") ;;
	bolt) server=(env PORT="${addr##*:}" node bench/compare/bolt/app.js) ;;
	ceiling) server=("$work/slackceiling" -addr "$addr") ;;
	esac
	echo "server:    ${server[*]}" >>"$RESULTS/commands.txt"
	"${server[@]}" >"$log" 2>&1 &
	server_pid=$!
	local ready=""
	for _ in $(seq 300); do
		# Any HTTP answer means it is listening (Bolt has no /healthz: 404).
		code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$addr/healthz" || true)
		if [[ "$code" != "000" ]]; then ready=1; break; fi
		if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
		sleep 0.1
	done
	if [[ -z "$ready" ]]; then
		echo "$name did not start listening on $addr within 30s:" >&2
		cat "$log" >&2
		exit 1
	fi
}

load() {
	"$work/slackload" -url "http://$addr/slack/commands" -command /ec2 -text "status tools" \
		-user U0SLACKLOAD -answer-timeout "$ANSWER_TIMEOUT" "$@"
}

# bench NAME KIND: start a fresh server NAME and put it through one load
# (closed, open, history). Fresh, so that a backlog one load leaves behind
# is not counted against the next.
bench() {
	local name=$1 kind=$2
	local log="$work/$name-$kind.log"
	echo "== $name, $kind loop" >&2
	if [[ $name == switchboard ]]; then
		rm -rf "$work/data"
		if [[ $kind == history ]]; then
			# A few commands to copy, then the history.
			start switchboard "$work/seed.log"
			load -n 20 -concurrency 1 -channel C0SEED -settle 0s >/dev/null
			stop_server
			echo "seeding $HISTORY_RUNS runs and $HISTORY_AUDIT audit lines" >&2
			python3 bench/seed_history.py "$work/data/switchboard.db" "$HISTORY_RUNS" "$HISTORY_AUDIT" >"$RESULTS/history-seed.txt"
			du -h "$work/data/switchboard.db" | cut -f1 >"$RESULTS/history-db-size"
		fi
	fi
	start "$name" "$log"
	sleep 1
	rss_kib "$server_pid" >"$RESULTS/$name-$kind-idle-rss-kib"

	if ((WARMUP > 0)); then
		if ! load -n "$WARMUP" -concurrency "$CONCURRENCY" -channel C0WARMUP -channels "$WARMUP" -settle 0s \
			>"$RESULTS/$name-$kind-warmup.txt" 2>&1; then
			echo "$name: warm-up failed:" >&2
			cat "$RESULTS/$name-$kind-warmup.txt" "$log" >&2
			exit 1
		fi
	fi

	local args
	if [[ $kind == open ]]; then
		local n=$((RATE * OPEN_SECONDS))
		args=(-rate "$RATE" -n "$n" -duration "${OPEN_SECONDS}s" -channel C0OPEN -channels "$n")
	else
		args=(-n "$CLOSED_MAX" -duration "${CLOSED_SECONDS}s" -concurrency "$CONCURRENCY" -channel C0CLOSED -channels "$CLOSED_MAX")
	fi
	echo "slackload: SLACK_SIGNING_SECRET=$SLACK_SIGNING_SECRET slackload -url http://$addr/slack/commands -command /ec2 -text 'status tools' -user U0SLACKLOAD -answer-timeout $ANSWER_TIMEOUT ${args[*]} -json" >>"$RESULTS/commands.txt"
	sample_peak "$server_pid" "$RESULTS/$name-$kind-peak-rss-kib" &
	sampler_pid=$!
	local status=0
	load "${args[@]}" -json -out "$RESULTS/$name-$kind.json" >/dev/null 2>"$RESULTS/$name-$kind.stderr" || status=$?
	kill "$sampler_pid" 2>/dev/null || true
	wait "$sampler_pid" 2>/dev/null || true
	sampler_pid=""
	if ((status != 0)); then
		failed=1
		echo "$name, $kind loop: slackload exited $status: $(cat "$RESULTS/$name-$kind.stderr")" >&2
	fi
	if [[ ! -s "$RESULTS/$name-$kind.json" ]]; then
		echo "$name, $kind loop: no report" >&2
		exit 1
	fi
	stop_server
	tail -n 200 "$log" >"$RESULTS/$name-$kind-server.log"
}

# idle: Switchboard freshly started and left alone for IDLE_SECONDS: the CPU
# time it used (utime + stime from /proc/PID/stat) and its RSS.
idle() {
	echo "== switchboard, idle for ${IDLE_SECONDS}s" >&2
	rm -rf "$work/data"
	start switchboard "$work/idle.log"
	sleep 1
	local tck t0 t1
	tck=$(getconf CLK_TCK)
	rss_kib "$server_pid" >"$RESULTS/switchboard-idle-rss-kib"
	grep -E '^(VmRSS|RssAnon|RssFile):' "/proc/$server_pid/status" >"$RESULTS/switchboard-idle-status"
	t0=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
	sleep "$IDLE_SECONDS"
	t1=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
	awk -v d=$((t1 - t0)) -v tck="$tck" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.2f\n", 100 * d / tck / s }' >"$RESULTS/switchboard-idle-cpu-percent"
	stop_server
}

# Other work on the machine shows up in every column; the table says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for name in switchboard bolt ceiling; do
	bench "$name" closed
done
if [[ -z "$RATE" ]]; then
	# Half of Switchboard's own saturation rate.
	RATE=$(jq -r '(.answers_per_s / 2) | floor' "$RESULTS/switchboard-closed.json")
	RATE=$((RATE > 0 ? RATE : 1))
fi
for name in switchboard bolt ceiling; do
	bench "$name" open
done
bench switchboard history
idle

# ---- the table ----

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# What one command costs the store, counted (not timed) by bench/cost.sh.
echo "== cost per command (bench/cost.sh)" >&2
if ! N=2000 CONCURRENCY=$CONCURRENCY bash bench/cost.sh >"$RESULTS/cost.md" 2>"$RESULTS/cost.log"; then
	echo "bench/cost.sh failed; see $RESULTS/cost.log" >&2
	failed=1
fi
# A burst of identical statuses against EC2's request limits.
echo "== burst with EC2's limits (bench/burst.sh)" >&2
if ! bash bench/burst.sh >"$RESULTS/burst.txt" 2>"$RESULTS/burst.log"; then
	echo "bench/burst.sh failed; see $RESULTS/burst.log" >&2
	failed=1
fi

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

row() {
	local name=$1 label=$2 kind=$3
	jq -r --arg server "$label" --arg kind "$kind" --arg idle "$(mib "$(cat "$RESULTS/$name-$kind-idle-rss-kib")")" \
		--arg peak "$(mib "$(cat "$RESULTS/$name-$kind-peak-rss-kib")")" '
		def f: (. * 100 | round) as $c | "\($c / 100 | floor).\($c % 100 | tostring | if length < 2 then "0" + . else . end)";
		"| \($server) | \($kind) | \(.acks_per_s | round) | \(.answers_per_s // 0 | round) | \(.ack_latency_ms.p50 | f) | \(.ack_latency_ms.p90 | f) | \(.ack_latency_ms.p99 | f) | \(.ack_latency_ms.max | f) | \(.end_to_end_latency_ms.p50 | f) | \(.end_to_end_latency_ms.p99 | f) | \(.answered_once) / \(.never_answered | length) / \(.answered_more_than_once | length) | \([.errors[]] | add // 0) | \($idle) | \($peak) |"
	' "$RESULTS/$name-$kind.json"
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff-index --quiet HEAD -- 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
bolt_version=$(node -p 'require("./bench/compare/bolt/node_modules/@slack/bolt/package.json").version')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

# ---- the goals, from the reports ----
j() { jq -r "$2" "$RESULTS/$1.json"; }
num() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
sb_ans=$(j switchboard-closed .answers_per_s); bolt_ans=$(j bolt-closed .answers_per_s)
ms() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
sb_p99=$(ms "$(j switchboard-closed .ack_latency_ms.p99)"); bolt_p99=$(ms "$(j bolt-closed .ack_latency_ms.p99)")
open_p99=$(ms "$(j switchboard-open .end_to_end_latency_ms.p99)")
hist_ans=$(j switchboard-history .answers_per_s); hist_p99=$(ms "$(j switchboard-history .ack_latency_ms.p99)")
once() { j "$1" '"\(.answered_once) once, \(.never_answered | length) never, \(.answered_more_than_once | length) twice"'; }
burst_max=$(sed -n 's/^end to end:.*max \([0-9.]*\)ms.*/\1/p' "$RESULTS/burst.txt")
burst_calls=$(sed -n 's/^DescribeInstances calls for .*: \([0-9]*\)$/\1/p' "$RESULTS/burst.txt")
burst_once=$(sed -n 's/^exactly once: *//p' "$RESULTS/burst.txt")
idle_cpu=$(cat "$RESULTS/switchboard-idle-cpu-percent")
idle_rss=$(cat "$RESULTS/switchboard-idle-rss-kib")
rss_parts=$(awk '{ printf "%s%s %.1f MiB", (NR > 1 ? ", " : ""), $1, $2 / 1024 }' "$RESULTS/switchboard-idle-status")
met() { if awk "BEGIN { exit !($1) }"; then echo yes; else echo "**no**"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

{
	cat <<EOF
# Benchmarks

<!-- Written by bench/compare/run.sh; edit the script, not this file. -->

Switchboard's key speed claim is that a Slack slash command is acked in
milliseconds (Slack gives up after 3 s) and answered exactly once at its
\`response_url\`, durably: an acked command survives kill -9. This page puts
that next to a Slack Bolt for JavaScript app doing the same job from memory
and a bare Go handler that does the least possible, under the same load, one
after the other in one run on one machine; then Switchboard alone with a long
history, idle, per command, and under a burst against EC2's limits.

Reproduce (about ten minutes):

    bash bench/compare/run.sh

## Machine and versions

| | |
|---|---|
| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| machine | $(nproc) CPUs, $cpu, $mem memory, $(uname -sr) |
| load average (1, 5, 15 min) | $load_before before the first server, $load_after after the last |
| go | $(go version | awk '{print $3}') |
| node | $(node --version) |
| @slack/bolt | $bolt_version |
| switchboard | $commit |
| raw reports | \`$RESULTS/\` |

## The goals

| goal | target | measured | met |
|---|---|---|---|
| answers/s, closed loop | at least 2x Bolt's ($(num "$bolt_ans") x 2) | $(num "$sb_ans") ($(ratio "$sb_ans" "$bolt_ans")x Bolt's) | $(met "$sb_ans >= 2 * $bolt_ans") |
| ack p99, closed loop | at or below Bolt's ($bolt_p99 ms) | $sb_p99 ms | $(met "$sb_p99 <= $bolt_p99") |
| every command answered once, closed loop | all | $(once switchboard-closed) | $(met "$(j switchboard-closed '(.never_answered | length) + (.answered_more_than_once | length)') == 0") |
| end-to-end p99, open loop at half of Switchboard's saturation ($RATE/s) | 100 ms or less | $open_p99 ms | $(met "$open_p99 <= 100") |
| burst: 1,000 statuses within a second, EC2's limits on | all answered within 5 s, at most 10 DescribeInstances | slowest answer ${burst_max} ms, $burst_calls DescribeInstances; $burst_once | $(met "$burst_max <= 5000 && $burst_calls <= 10") |
| history: $(num "$HISTORY_RUNS") finished runs, $(num "$HISTORY_AUDIT") audit lines ($(cat "$RESULTS/history-db-size") store) | ack p99 and answers/s within 1.2x of an empty store | ack p99 $hist_p99 ms against $sb_p99 ms ($(ratio "$hist_p99" "$sb_p99")x); $(num "$hist_ans") answers/s against $(num "$sb_ans") ($(ratio "$sb_ans" "$hist_ans")x) | $(met "$hist_p99 <= 1.2 * $sb_p99 && $sb_ans <= 1.2 * $hist_ans") |
| idle CPU, ${IDLE_SECONDS} s after start | under 1% of one core | ${idle_cpu}% | $(met "$idle_cpu < 1") |
| idle RSS after start | 30 MiB or less | $(mib "$idle_rss") ($rss_parts) | $(met "$idle_rss <= 30720") |

## Results

| server | load | acks/s | answers/s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms | end-to-end p50 ms | end-to-end p99 ms | answered once / never / twice | errors | idle RSS | peak RSS under load |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
	for kind in closed open; do
		row switchboard Switchboard "$kind"
		row bolt Bolt "$kind"
		row ceiling "bare Go (ceiling)" "$kind"
	done
	row switchboard "Switchboard, with history" history
	cat <<EOF

Load, the same for all three (\`cmd/slackload\`, correctly signed
\`/ec2 status tools\` commands, each with its own \`trigger_id\`, channel and
\`response_url\` served by slackload on 127.0.0.1):

- **closed**: $CONCURRENCY connections, each sending its next command as soon
  as the last is acked, for $CLOSED_SECONDS s; then every answer is awaited.
  answers/s is from the first command sent to the last first answer, so an
  answer backlog the server builds while it acks faster than it answers
  counts against it.
- **open**: $RATE commands a second on a fixed schedule for $OPEN_SECONDS s,
  whatever the server does (half of Switchboard's closed-loop answers/s in
  this run): latency when it is not saturated.
- **history**: Switchboard only, the closed loop on a store that already holds
  $(num "$HISTORY_RUNS") finished runs with their answers and transcript lines and $(num "$HISTORY_AUDIT")
  audit lines over the last 20 days (\`bench/seed_history.py\`: $(cat "$RESULTS/history-seed.txt")).

Each load runs against a freshly started server, so that a backlog one load
leaves behind is not counted against the next, after $WARMUP unrecorded
warm-up commands; slackload then waits up to $ANSWER_TIMEOUT after the last
ack for the answers. Latencies are slackload's: ack = the HTTP round trip
Slack waits on; end-to-end = command sent to its first answer at the
\`response_url\`. Answered once / never / twice is over the acked commands.
Idle RSS is VmRSS from \`/proc/PID/status\` a second after the server
listens, before the warm-up (Switchboard has by then handed back the
executable's pages only its start touched: \`cmd/switchboard/memory_linux.go\`);
peak RSS is the highest VmRSS seen polling every
100 ms during the load. For Bolt that is the \`node\` process. slackload runs
on the same CPUs as the servers. Idle CPU is utime + stime from
\`/proc/PID/stat\` over $IDLE_SECONDS s of a freshly started Switchboard.

## What each server does

- **Switchboard** (\`switchboard serve\`, SQLite store in a temp dir, simulated
  cloud with 1 ms transitions and no throttling; config kept in the raw
  reports): verifies the signature, then commits the run (deduplicated on
  \`trigger_id\`) with its audit lines, marked as worked by this process
  (on SQLite a run on the fast path has no job row until it needs one), and
  only then acks. The run is worked at once in the same process
  (\`store/fast.go\`): it describes the instance on the simulated cloud
  through the fleet layer (\`fleet/\`; with \`throttle: false\`, as here, it
  adds no request limits), commits the step with its answer (held by the
  run, so the answer needs no job of its own), posts the answer to the
  \`response_url\` and commits the delivery with its transcript line and the
  run's mark cleared. On SQLite, write transactions that arrive together
  share one commit (\`store/sqlite.go\`; one that fails is rolled back with
  the group and the others run again alone). Bolt and the ceiling call no
  cloud at all. An acked command survives a crash and is answered after a
  restart (the next start gives every marked run a job); a repeated
  delivery is answered once.
- **Bolt** (\`@slack/bolt\` $bolt_version, \`bench/compare/bolt/app.js\`,
  HTTPReceiver, signature verification on): \`ack()\`s from memory, then
  \`respond()\`s to the \`response_url\` with \`fetch\`. Nothing is stored: an
  acked command is lost if the process dies before it answers, and nothing
  deduplicates a repeated delivery.
- **bare Go** (\`cmd/slackceiling\`, \`net/http\`): verifies the v0 signature
  (HMAC-SHA256 over the raw body, 5-minute window), acks with the same
  ephemeral JSON, and posts the answer from a goroutine. No store, no retry, no
  deduplication: the ceiling for this machine and this load generator, not a
  design to copy.

All three send the same ack and answer bodies. Numbers compare only within
one run of this script on one machine.

## What one command costs

Counted by \`bench/cost.sh\` in the same run (the same signed \`/ec2 status
tools\`, closed loop, SQLite; the server under \`strace -c\` for the fsyncs,
so its speed there means nothing). Statements and commits come from
\`switchboard_store_statements_total\` and \`switchboard_store_commits_total\`
(explicit transactions, several commands sharing one; River's
single-statement updates commit on their own and are not in that count);
bytes and write calls from \`/proc/PID/io\` (the socket writes of the ack and
the answer are among the write calls); one DescribeInstances per command, or
fewer when identical reads overlap (\`fleet\`: shared for a second, never
past an action).

$(cat "$RESULTS/cost.md")

Where the statements go, for one \`/ec2 status\`: the ack is one transaction
(the run with its mark, its audit line); the run's step is one (the run
row, its answer written with its intent to post, held by the run, its
audit line, its instance locks released if it took any); the delivery is
one (the answer marked sent, its transcript line, the run's mark cleared).
Each is part of a group commit shared with whatever else arrived at the
same moment (the committer lets waiting goroutines run once before it
commits one alone), which is why commits are a fraction of a command. SQLite in WAL mode with \`synchronous=NORMAL\` syncs
only at checkpoints, which is why the fsyncs are a fraction of the commits
(the checkpoints run on a connection of their own, beside the writers, once
the log holds a thousand pages not yet copied: \`checkpointer\` in
\`store/sqlite.go\`);
the bytes written are mostly whole 4 KiB pages of the tables and indexes each
commit touches, written once to the log and again at the checkpoint, and
concurrent commands share those pages.

## A burst against EC2's request limits

\`bench/burst.sh\` in the same run: 1,000 \`/ec2 status tools\` arriving
within one second (open loop), the simulated cloud with EC2's limits on
(DescribeInstances refills at 20 a second). Identical reads at the same time
share one call, so the burst is answered without waiting on the bucket:

\`\`\`
$(grep -E "^(acks|end to end|exactly once):|^DescribeInstances" "$RESULTS/burst.txt")
\`\`\`

The Alibaba provider goes through the same fleet layer; its describe is held
to the same sharing by \`TestBurstOfStatusesOnAlibabaSharesDescribes\`
(\`cmd/switchboard\`): 200 concurrent \`/ecs status\` against a local server
that answers ECS's API cost a handful of DescribeInstances calls (2 when
last run), where without sharing they cost 200.

## Past one machine, on paper

From the counts above, a command is three write transactions and about ten
statements on Postgres (SQLite's eight and the run's River job row, written
and finished, which SQLite does without), one cloud read (or a share of one)
and one post to Slack. On Postgres with several replicas each replica works
the runs it acks, so River's fetch is out of the command's path there too;
what the replicas share is Postgres. At 10x this machine's sustained rate
(some 15,000 commands a second over several replicas) that is about 45,000
transactions and 180,000 statements a second, each transaction its own flush
unless commits are grouped: Postgres groups concurrent commits' WAL flushes
itself (\`commit_delay\`, \`commit_siblings\`), and \`synchronous_commit\` is
the knob to choose knowingly; the job rows want aggressive autovacuum on
\`river_job\` (each is inserted, updated and deleted by River's cleaner).
At 100x a single Postgres primary is the limit and the work would have to be
split by team or workspace. Outside the process, the limits are fixed and
lower than either: Slack takes about one \`chat.postMessage\` a second per
channel and five posts per \`response_url\`; EC2 refills DescribeInstances at
20 a second per account and region (shared reads make a burst of identical
statuses one call) and StartInstances at 2 a second. Those, not the store,
bound what a team sees.
EOF
} >"$DOC"

cp "$DOC" "$RESULTS/BENCHMARKS.md"
sed -n '/^## The goals/,/^Load,/p' "$DOC" | sed '$d'
echo "wrote $DOC; raw reports in $RESULTS" >&2
exit "$failed"
