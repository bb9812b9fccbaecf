#!/bin/sh
# first-claim.sh API CLAIM_KEY — the first real claim of 'make run': a Go
# command from the module proxy, as its maintainer (or a bridge from the
# checksum database) would claim it, posted to the scheduler at API.
#
# The source of a Go command is its module's zip; the claim names it by the
# zip's sha256 and Go's h1: hash, both as 'go mod download' checked them
# against the checksum database.
set -eu
api=$1
key=$2
lantern=${LANTERN:-bin/lantern}
module=golang.org/x/tools
version=v0.30.0
package=golang.org/x/tools/cmd/stringer

json=$(go mod download -json "$module@$version")
zip=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",\{0,1\}$/\1/p')
sum=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$zip" ] || [ -z "$sum" ]; then
	echo "first-claim: 'go mod download -json $module@$version' gave no Zip and Sum:" >&2
	printf '%s\n' "$json" >&2
	exit 1
fi
"$lantern" claim sign --key "$key" --source "$package@$version" --source-file "$zip" --go-sum "$sum" \
	--fetch "https://proxy.golang.org/$module/@v/$version.zip" --recipe go --post "$api"
