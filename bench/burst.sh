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
. bench/lib.sh
bench_prepare burst 's/throttle: false/throttle: true/'
grep -q "throttle: true" "$work/switchboard.yaml"
bench_serve
describes() { bench_metric '^switchboard_cloud_calls_total\\{.*action="DescribeInstances"'; }
before=$(describes)
bench_load -n "$N" -rate "$RATE" -answer-timeout 60s || true
after=$(describes)
echo "DescribeInstances calls for $N commands at $RATE/s with EC2's limits on: $((after - before))"
