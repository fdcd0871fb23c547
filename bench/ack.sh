#!/usr/bin/env bash
# ack.sh measures Switchboard's key speed claim: Slack slash commands are
# acked in milliseconds and each one is answered exactly once at its
# response_url. It builds switchboard and slackload, starts `switchboard serve`
# on a free loopback port with Slack enabled and a simulated cloud, runs
# slackload closed-loop for a fixed number of commands, saves the report with
# the machine and the exact commands to bench/results/ack-<date>.txt, and stops
# the server. It exits with slackload's status: non-zero when any command
# errored, was never answered or was answered twice.
#
# Knobs (environment): N (commands, default 2000), CONCURRENCY (default 8),
# RATE (commands per second, open loop; unset: closed loop with CONCURRENCY),
# CHANNELS (channels the commands are spread over, default N: the server
# paces posts per channel at about one a second, as Slack's chat.postMessage
# wants, so one busy channel measures that pacing rather than the engine;
# set CHANNELS=1 to see it), WARMUP (unrecorded commands first, default 200),
# TEXT (default "status tools"), STORE (default: SQLite in the temp dir; e.g. a
# postgres:// URL), ANSWER_TIMEOUT (default 60s), RESULTS (default
# bench/results).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-2000}
CONCURRENCY=${CONCURRENCY:-8}
CHANNELS=${CHANNELS:-$N}
WARMUP=${WARMUP:-200}
ANSWER_TIMEOUT=${ANSWER_TIMEOUT:-60s}
TEXT=${TEXT:-status tools}
RESULTS=${RESULTS:-bench/results}

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")
server_pid=""
cleanup() {
	if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building into $work" >&2
go build -o "$work/switchboard" ./cmd/switchboard
go build -o "$work/slackload" ./cmd/slackload

# A free loopback port: bind 0, read it, let go.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"

# Slack's official test secret: nothing secret about a benchmark.
export SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5
config="$work/switchboard.yaml"
{
	echo "data_dir: $work/data"
	if [[ -n "${STORE:-}" ]]; then echo "store: $STORE"; fi
	cat bench/switchboard.yaml
} >"$config"

server_cmd=("$work/switchboard" serve --config "$config" --addr "$addr")
"${server_cmd[@]}" >"$work/server.log" 2>&1 &
server_pid=$!

for i in $(seq 300); do
	if curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then break; fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		echo "switchboard serve exited before it was healthy:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	if [[ $i == 300 ]]; then
		echo "switchboard serve not healthy at http://$addr/healthz after 30s:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	sleep 0.1
done

load=("$work/slackload" -url "http://$addr/slack/commands" -command /ec2 -text "$TEXT" -user U0SLACKLOAD
	-concurrency "$CONCURRENCY" -answer-timeout "$ANSWER_TIMEOUT")
if ((WARMUP > 0)); then
	# Its own channels, so that it leaves the measured ones' posting pace alone.
	if ! warm=$("${load[@]}" -n "$WARMUP" -channel C0WARMUP -channels "$WARMUP" -settle 0s 2>&1); then
		echo "warm-up run failed:" >&2
		echo "$warm" >&2
		echo "server log:" >&2
		tail -n 50 "$work/server.log" >&2
		exit 1
	fi
fi

run=("${load[@]}" -n "$N" -channel C0SLACKLOAD -channels "$CHANNELS")
if [[ -n "${RATE:-}" ]]; then run+=(-rate "$RATE"); fi
set +e
report=$("${run[@]}" 2>&1)
status=$?
set -e

mkdir -p "$RESULTS"
out="$RESULTS/ack-$(date -u +%Y-%m-%dT%H%M%SZ).txt"
{
	echo "# switchboard slash command ack benchmark"
	echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "machine:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
	echo "go:        $(go version)"
	echo "server:    switchboard serve --config switchboard.yaml --addr $addr"
	echo "store:     ${STORE:-sqlite in data_dir}"
	echo "warm-up:   $WARMUP commands, not counted"
	echo "command:   SLACK_SIGNING_SECRET=$SLACK_SIGNING_SECRET slackload $(printf '%q ' "${run[@]:1}")"
	echo "exit:      $status"
	echo
	echo "$report"
	echo
	echo "## switchboard.yaml"
	cat "$config"
} >"$out"
cat "$out"
echo "saved to $out" >&2
exit "$status"
