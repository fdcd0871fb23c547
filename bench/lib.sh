# lib.sh: what bench/cost.sh and bench/burst.sh share. Source it from the
# repository's root.

# bench_prepare NAME [SED]: a work directory (removed at exit, with the
# server bench_serve started), switchboard and slackload built into it, the
# benchmark config (bench/switchboard.yaml, edited by the sed expression SED
# when given) and a free loopback address in $addr.
bench_prepare() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-$1.XXXXXX")
	pid=""
	trap bench_cleanup EXIT
	go build -o "$work/switchboard" ./cmd/switchboard
	go build -o "$work/slackload" ./cmd/slackload
	export SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5
	{ echo "data_dir: $work/data"; sed "${2:-}" bench/switchboard.yaml; } >"$work/switchboard.yaml"
	addr="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
}

# bench_serve [WRAPPER...]: start the server (under WRAPPER, such as strace,
# when given), wait until it answers, and set $server to its pid (not the
# wrapper's).
bench_serve() {
	"$@" "$work/switchboard" serve --config "$work/switchboard.yaml" --addr "$addr" >"$work/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/healthz" && break; sleep 0.1; done
	server=$(pgrep -f "^$work/switchboard serve" | head -1)
}

# bench_stop: SIGTERM the server and wait for it (and its wrapper) to end.
bench_stop() {
	if [[ -n "$pid" ]]; then
		pkill -TERM -f "^$work/switchboard serve" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
	fi
}

bench_cleanup() {
	bench_stop
	rm -rf "$work"
}

# bench_metric PATTERN: the sum of the server's metric lines matching the
# awk regular expression PATTERN.
bench_metric() {
	curl -s "http://$addr/metrics" | awk -v m="$1" '$0 ~ m { s += $NF } END { printf "%d\n", s }'
}

# bench_load ARGS...: slackload against the server's slash command URL.
bench_load() {
	"$work/slackload" -url "http://$addr/slack/commands" -secret "$SLACK_SIGNING_SECRET" -text "status tools" "$@"
}
