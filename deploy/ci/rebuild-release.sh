#!/bin/sh
# rebuild-release.sh — what a release job runs once it has built the release:
# every published Go binary is claimed (its Go version, platform and build
# flags read from the binary itself), rebuilt by the farm's builders, and
# compared with the published bytes. The job fails unless every one is
# reproduced and equal to what was published.
#
#   deploy/ci/rebuild-release.sh dist/*
#
# Environment:
#   LANTERN            the lantern command (default: lantern on the PATH)
#   LANTERN_API        the farm's API, such as https://farm.example.org
#                      (default: the lantern up running on this machine)
#   LANTERN_KEY        the claim key file the farm accepts (default: lantern up's)
#   LANTERN_PASSWORD   the claim key's password
#   LANTERN_WAIT       how long to wait for the builders (default 30m)
#
# Exit codes are lantern rebuild's: 0 reproduced and equal to the published
# binaries; 1 not reproduced in time, or failed; 3 a mismatch (the farm's
# builders got other bytes than were published) or a conflict; 2 the command
# line was wrong. Anything but 0 fails the job.
set -eu

if [ "$#" -eq 0 ]; then
	echo "usage: $0 BINARY... (the release's Go binaries, built with go install PKG@VERSION)" >&2
	exit 2
fi
lantern=${LANTERN:-lantern}
# Each file becomes one --published=FILE argument, whatever its name holds
# (spaces, glob characters, a leading dash): the loop walks the arguments
# as given and appends to the same list.
for f do
	shift
	set -- "$@" "--published=$f"
done
exec "$lantern" rebuild "$@" --wait "${LANTERN_WAIT:-30m}"
