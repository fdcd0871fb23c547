#!/usr/bin/env bash
# burst.sh: 1,000 `/ec2 status tools` commands arriving within one second,
# against the simulated cloud with EC2's request limits on (DescribeInstances:
# 100 burst, 20 a second). It prints slackload's report (every command
# answered once? the slowest answer?) and how many DescribeInstances calls
# the cloud saw (switchboard_cloud_calls_total). Identical reads at the same
# time share one call (fleet.Options.ShareReads), so the burst should cost a
# handful of calls, not a thousand.
#
#   bash bench/burst.sh           # N=1000 RATE=1000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
RATE=${RATE:-1000}
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-burst.XXXXXX")
pid=""
cleanup() {
	[[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/switchboard" ./cmd/switchboard
go build -o "$work/slackload" ./cmd/slackload
export SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5
{ echo "data_dir: $work/data"; sed 's/throttle: false/throttle: true/' bench/switchboard.yaml; } >"$work/switchboard.yaml"
grep -q "throttle: true" "$work/switchboard.yaml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
"$work/switchboard" serve --config "$work/switchboard.yaml" --addr "$addr" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/healthz" && break; sleep 0.1; done
describes() { curl -s "http://$addr/metrics" | awk '/^switchboard_cloud_calls_total\{.*action="DescribeInstances"/ { s += $2 } END { printf "%d\n", s }'; }
before=$(describes)
"$work/slackload" -url "http://$addr/slack/commands" -secret "$SLACK_SIGNING_SECRET" -n "$N" -rate "$RATE" \
	-text "status tools" -answer-timeout 60s || true
after=$(describes)
echo "DescribeInstances calls for $N commands at $RATE/s with EC2's limits on: $((after - before))"
