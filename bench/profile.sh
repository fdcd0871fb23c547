#!/usr/bin/env bash
# profile.sh takes a CPU profile of `switchboard serve` (SQLite, simulated
# cloud) under the closed-loop load of bench/compare/run.sh: N signed
# `/ec2 status tools` commands, CONCURRENCY workers, every answer awaited.
# It prints the server's CPU time per command (user and system, from
# /proc/PID/stat, answers included) and keeps the profile and the top of it
# in OUT (default
# bench/results/profile-<UTC time>) and prints the top.
#
#   bash bench/profile.sh                 # N=2000 CONCURRENCY=8
#   HISTORY=1 bash bench/profile.sh       # on a store with 1,000,000 runs
#                                         # and 3,000,000 audit lines
#   go tool pprof -http 127.0.0.1:0 bench/results/profile-.../cpu.pprof
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
CONCURRENCY=${CONCURRENCY:-8}
OUT=${OUT:-bench/results/profile-$(date -u +%Y-%m-%dT%H%M%SZ)}
. bench/lib.sh
bench_prepare profile
mkdir -p "$OUT"
if [[ -n "${HISTORY:-}" ]]; then
	bench_serve
	bench_load -n 20 -concurrency 1 >/dev/null
	bench_stop
	python3 bench/seed_history.py "$work/data/switchboard.db"
fi
export SWITCHBOARD_CPUPROFILE="$work/cpu.pprof"
bench_serve
bench_load -n 200 -concurrency "$CONCURRENCY" >/dev/null
cpu() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
c0=$(cpu)
bench_load -n "$N" -concurrency "$CONCURRENCY" | tee "$OUT/load.txt"
c1=$(cpu)
# The server's CPU time (user + system) per command, answers included.
awk -v d=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" -v n="$N" 'BEGIN { printf "server CPU:     %.3f ms per command\n", 1000 * d / tck / n }' | tee -a "$OUT/load.txt"
bench_stop
cp "$work/server.log" "$OUT/server.log"
cp "$work/cpu.pprof" "$OUT/cpu.pprof"
go tool pprof -top -nodecount 40 "$work/switchboard" "$OUT/cpu.pprof" 2>/dev/null >"$OUT/top.txt"
go tool pprof -top -cum -nodecount 60 "$work/switchboard" "$OUT/cpu.pprof" 2>/dev/null >"$OUT/top-cum.txt"
head -50 "$OUT/top.txt"
