#!/usr/bin/env bash
# cost.sh measures what one command costs Switchboard on SQLite: SQL
# statements (River's and ours), committed transactions, bytes written to
# storage, write and fsync system calls, and cloud calls, averaged over N
# signed `/ec2 status tools` commands (closed loop, CONCURRENCY workers),
# each answered at its response_url. The server runs under strace to count
# fsyncs; the other figures come from /metrics and /proc/PID/io.
#
#   bash bench/cost.sh            # N=1000 CONCURRENCY=8
#
# It prints one Markdown table row set; docs/BENCHMARKS.md keeps the result.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
CONCURRENCY=${CONCURRENCY:-8}
. bench/lib.sh
bench_prepare cost
bench_serve strace -f -qq -c -e trace=fsync,fdatasync -o "$work/strace.txt"

metric() { bench_metric "^$1"; }
io() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server/io"; }

# Warm up (statement caches, first pages), then measure.
bench_load -n 100 -concurrency "$CONCURRENCY" >/dev/null
sleep 1
s0=$(metric switchboard_store_statements_total); c0=$(metric switchboard_store_commits_total)
w0=$(io write_bytes); sc0=$(io syscw)
bench_load -n "$N" -concurrency "$CONCURRENCY" >"$work/load.txt"
sleep 1 # idle work (River's polling) in this second is counted too
s1=$(metric switchboard_store_statements_total); c1=$(metric switchboard_store_commits_total)
w1=$(io write_bytes); sc1=$(io syscw)
bench_stop # strace writes its counts when its child ends
fsyncs=$(awk '$NF == "fsync" || $NF == "fdatasync" { s += $4 } END { printf "%d\n", s }' "$work/strace.txt")
per() { python3 -c "print(f'{($2 - $1) / $N:.1f}')"; }
echo "commands: $N (after 100 to warm up), closed loop, $CONCURRENCY workers, under strace (slow: only the counts mean anything)"
echo
echo "| per command | |"
echo "|---|---|"
echo "| SQL statements | $(per "$s0" "$s1") |"
echo "| committed transactions | $(per "$c0" "$c1") |"
echo "| bytes written to storage | $(per "$w0" "$w1") |"
echo "| write system calls | $(per "$sc0" "$sc1") |"
echo "| fsyncs (whole run, warm-up included, $((N + 100)) commands) | $fsyncs |"
echo
echo '```'
grep -E "^(acks|exactly once):" "$work/load.txt" || true
echo '```'
