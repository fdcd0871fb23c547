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
# For each load (closed loop: N commands, CONCURRENCY workers; open loop: RATE
# commands a second for OPEN_SECONDS) and each server, one after the other:
# start the server afresh on a free loopback port, wait until it answers, read
# its idle RSS, run an unrecorded warm-up, run the load with slackload while
# sampling the server's RSS every 100ms for the peak, and stop it. It keeps slackload's JSON reports in RESULTS and writes the
# table to DOC, and prints it. It exits non-zero when any run errored, left a
# command unanswered or answered one twice (the table is written anyway).
#
#   bash bench/compare/run.sh
#
# Knobs (environment): N (1000), CONCURRENCY (8), RATE (50), OPEN_SECONDS (20),
# WARMUP (200), ANSWER_TIMEOUT (90s), RESULTS (bench/results/compare-<UTC time>),
# DOC (docs/BENCHMARKS.md).
set -euo pipefail

cd "$(dirname "$0")/../.."
N=${N:-1000}
CONCURRENCY=${CONCURRENCY:-8}
RATE=${RATE:-50}
OPEN_SECONDS=${OPEN_SECONDS:-20}
WARMUP=${WARMUP:-200}
ANSWER_TIMEOUT=${ANSWER_TIMEOUT:-90s}
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS=${RESULTS:-bench/results/compare-$stamp}
DOC=${DOC:-docs/BENCHMARKS.md}
OPEN_N=$((RATE * OPEN_SECONDS))

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

# bench NAME KIND: start a fresh server NAME (switchboard, bolt, ceiling) and
# put it through one load (closed, open). Fresh, so that a backlog one load
# leaves behind is not counted against the next.
bench() {
	local name=$1 kind=$2
	local addr="127.0.0.1:$(free_port)"
	local log="$work/$name-$kind.log"
	local server
	case $name in
	switchboard)
		rm -rf "$work/data"
		server=("$work/switchboard" serve --config "$config" --addr "$addr")
		;;
	bolt) server=(env PORT="${addr##*:}" node bench/compare/bolt/app.js) ;;
	ceiling) server=("$work/slackceiling" -addr "$addr") ;;
	esac
	echo "== $name, $kind loop: ${server[*]}" >&2
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
	sleep 1
	rss_kib "$server_pid" >"$RESULTS/$name-$kind-idle-rss-kib"

	local load=("$work/slackload" -url "http://$addr/slack/commands" -command /ec2 -text "status tools"
		-user U0SLACKLOAD -answer-timeout "$ANSWER_TIMEOUT")
	if ((WARMUP > 0)); then
		if ! "${load[@]}" -n "$WARMUP" -concurrency "$CONCURRENCY" -channel C0WARMUP -channels "$WARMUP" -settle 0s \
			>"$RESULTS/$name-$kind-warmup.txt" 2>&1; then
			echo "$name: warm-up failed:" >&2
			cat "$RESULTS/$name-$kind-warmup.txt" "$log" >&2
			exit 1
		fi
	fi

	local args
	if [[ $kind == closed ]]; then
		args=(-n "$N" -concurrency "$CONCURRENCY" -channel C0CLOSED -channels "$N")
	else
		args=(-rate "$RATE" -n "$OPEN_N" -duration "${OPEN_SECONDS}s" -channel C0OPEN -channels "$OPEN_N")
	fi
	echo "slackload: SLACK_SIGNING_SECRET=$SLACK_SIGNING_SECRET slackload ${load[*]:1} ${args[*]} -json" >>"$RESULTS/commands.txt"
	sample_peak "$server_pid" "$RESULTS/$name-$kind-peak-rss-kib" &
	sampler_pid=$!
	local status=0
	"${load[@]}" "${args[@]}" -json -out "$RESULTS/$name-$kind.json" >/dev/null 2>"$RESULTS/$name-$kind.stderr" || status=$?
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

# Other work on the machine shows up in every column; the table says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for kind in closed open; do
	for name in switchboard bolt ceiling; do
		bench "$name" "$kind"
	done
done

# ---- the table ----

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# What one command costs the store, counted (not timed) by bench/cost.sh.
echo "== cost per command (bench/cost.sh)" >&2
if ! N=$N CONCURRENCY=$CONCURRENCY bash bench/cost.sh >"$RESULTS/cost.md" 2>"$RESULTS/cost.log"; then
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

{
	cat <<EOF
# Benchmarks

<!-- Written by bench/compare/run.sh; edit the script, not this file. -->

Switchboard's key speed claim is that a Slack slash command is acked in
milliseconds (Slack gives up after 3 s) and answered exactly once at its
\`response_url\`. This page puts that next to a Slack Bolt for JavaScript app
doing the same job and a bare Go handler that does the least possible, under
the same load, one after the other in one run on one machine.

Reproduce:

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

## Results

| server | load | acks/s | answers/s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms | end-to-end p50 ms | end-to-end p99 ms | answered once / never / twice | errors | idle RSS | peak RSS under load |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
	for kind in closed open; do
		row switchboard Switchboard "$kind"
		row bolt Bolt "$kind"
		row ceiling "bare Go (ceiling)" "$kind"
	done
	cat <<EOF

Load, the same for all three (\`cmd/slackload\`, correctly signed
\`/ec2 status tools\` commands, each with its own \`trigger_id\`, channel and
\`response_url\` served by slackload on 127.0.0.1):

- **closed**: $N commands, $CONCURRENCY workers, each sending its next command as
  soon as the last is acked. acks/s is the server's ack throughput; end-to-end
  latency here includes any backlog of answers the server builds up while it
  acks faster than it answers.
- **open**: $RATE commands a second on a fixed schedule for $OPEN_SECONDS s ($OPEN_N
  commands), whatever the server does: latency when it is not saturated.

Each load runs against a freshly started server, so that a backlog one load
leaves behind is not counted against the next, after $WARMUP unrecorded
warm-up commands; slackload then waits up to $ANSWER_TIMEOUT after the last
ack for the answers. Latencies are slackload's: ack = the HTTP round trip
Slack waits on; end-to-end = command sent to its first answer at the
\`response_url\`. Answered once / never / twice is over the acked commands.
Idle RSS is VmRSS from \`/proc/PID/status\` a second after the server
listens, before the warm-up; peak RSS is the highest VmRSS seen polling every
100 ms during the load. For Bolt that is the \`node\` process. slackload runs
on the same CPUs as the servers.

## What each server does

- **Switchboard** (\`switchboard serve\`, SQLite store in a temp dir, simulated
  cloud with 1 ms transitions and no throttling; config kept in the raw
  reports): verifies the signature, then in one SQLite transaction records the
  run (deduplicated on \`trigger_id\`) with its audit lines and its queued job,
  and only then acks. A worker picks the job up, describes the instance on the
  simulated cloud through the fleet layer (\`fleet/\`; with \`throttle: false\`,
  as here, it adds no request limits) and queues the answer, which another job posts
  to the \`response_url\`. Bolt and the ceiling call no cloud at all. An acked
  command survives a crash and is answered after a restart; a repeated
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
(explicit transactions; River's single-statement updates commit on their
own and are not in that count); bytes and write calls from
\`/proc/PID/io\` (the socket writes of the ack and the answer are among the
write calls); one DescribeInstances per command, or fewer when identical
reads overlap (\`fleet\`: shared for a second, never past an action).

$(cat "$RESULTS/cost.md")

Where the statements go, for one \`/ec2 status\` (from a per-statement count
of the same load): the ack is one transaction (the run, its audit lines in one
statement, its job); the run's step is one (the run row, its answer and the
answer's job, the instance locks released) plus River marking the job done;
the answer is read (the message, whether an earlier one is still on its way,
the run's earlier deliveries), its intent to post recorded (one statement,
so that a post cut off by a crash is looked for, not repeated), posted, and
recorded with its transcript line in one transaction, plus River marking that
job done. SQLite in WAL mode with
\`synchronous=NORMAL\` syncs only at checkpoints, which is why the fsyncs are
a fraction of the commits; the bytes written are mostly whole 4 KiB pages of
the tables and indexes each transaction touches, written once to the log and
again at the checkpoint.

## A burst against EC2's request limits

\`bench/burst.sh\` in the same run: 1,000 \`/ec2 status tools\` arriving
within one second (open loop), the simulated cloud with EC2's limits on
(DescribeInstances refills at 20 a second). Identical reads at the same time
share one call, so the burst is answered without waiting on the bucket:

\`\`\`
$(grep -E "^(acks|end to end|exactly once):|^DescribeInstances" "$RESULTS/burst.txt")
\`\`\`

## Past one machine, on paper

From the counts above, a command is about six write transactions and twenty
statements, two River jobs, one cloud read (or a share of one), and one post
to Slack. At 10x this machine's sustained rate (about 10,000 commands a
second, spread over several replicas on Postgres) that is some 60,000 commits
and 200,000 statements a second: beyond what one Postgres commits with a
flush per commit on ordinary disks, so the next steps are the ones the count
points at: group commit (one transaction for concurrent acks, and for a run
step with its answer), fewer statements per message, and
\`synchronous_commit\` chosen knowingly. River fetches jobs with \`FOR UPDATE
SKIP LOCKED\`, one query per queue per replica per fetch, woken by
LISTEN/NOTIFY; at 20,000 jobs a second its tables want aggressive vacuum. At
100x, a single Postgres primary is the limit and the work would have to be
split by team or workspace. Outside the process, the limits are fixed and
lower than either: Slack takes about one \`chat.postMessage\` a second per
channel and five posts per \`response_url\`; EC2 refills DescribeInstances at
20 a second per account and region (shared reads make a burst of identical
statuses one call) and StartInstances at 2 a second. Those, not the store,
bound what a team sees.
EOF
} >"$DOC"

cp "$DOC" "$RESULTS/BENCHMARKS.md"
sed -n '/^## Results/,/^Load,/p' "$DOC" | sed '$d'
echo "wrote $DOC; raw reports in $RESULTS" >&2
exit "$failed"
