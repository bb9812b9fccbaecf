#!/bin/sh
# run.sh — what 'make run' does once everything is installed: 'lantern up'
# on the embedded default (data in $DATA), then 'lantern rebuild --wait' of a
# first real Go command from the module proxy: the claim, the builders'
# progress, the verdict and the dashboard's address. Lantern keeps running
# until Ctrl-C.
set -eu
lantern=${LANTERN:-bin/lantern}
data=${DATA:-.lantern-demo}
listen=${LISTEN:-127.0.0.1:8080}
export LANTERN_PASSWORD="${LANTERN_PASSWORD-}"

mkdir -p "$data"
echo "== lantern up (data in $data; its log in $data/up.log)"
"$lantern" up --data "$data" --listen "$listen" >"$data/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null' EXIT
trap 'exit 130' INT TERM
i=0
until grep -q 'Lantern is up' "$data/up.log" 2>/dev/null; do
	if ! kill -0 $up 2>/dev/null || [ $i -ge 600 ]; then
		echo "run: lantern up did not come up:" >&2
		cat "$data/up.log" >&2
		exit 1
	fi
	i=$((i + 1))
	sleep 0.5
done
sed -n '/Lantern is up/,/Ctrl-C/p' "$data/up.log"

echo "== a first claim: golang.org/x/tools/cmd/stringer@v0.30.0, from the Go module proxy, and its verdict"
echo "   (the first time: downloads and two builds, a few minutes)"
# Up's farm and claim key are rebuild's defaults: it finds them in the data dir.
"$lantern" rebuild --data "$data" --wait 30m golang.org/x/tools/cmd/stringer@v0.30.0
echo
echo "== Lantern runs until Ctrl-C (its log: $data/up.log). From another terminal, with nothing else given:"
echo "   $lantern rebuild golang.org/x/tools/cmd/stringer@v0.30.0 --wait 10m"
wait $up
