#!/bin/sh
# init.sh makes, once, what the farm of docker-compose.yml runs on, in
# ./farm beside this file, with the Lantern image itself (no lantern on the
# host needed): the claim key and two builder keys (keys/, no password:
# LANTERN_PASSWORD is empty in the Compose file), the farm's NATS identities
# and the builders' enrollment in the scheduler's data (scheduler/), their
# credentials (keys/builder-N.creds), and each NATS node's configuration
# (nats/nN.conf, from lantern scheduler --print-nats-config). Run again, it
# keeps what exists and prints the nodes' configuration anew. Then:
#   docker-compose up -d
# Claims are signed with farm/keys/claimer.key (lantern claim sign --post
# http://127.0.0.1:8080 ...). farm/ holds secrets: keep it so.
set -eu
cd "$(dirname "$0")"
IMAGE=${LANTERN_IMAGE:-lantern:latest}
FARM=$(pwd)/farm
umask 077
mkdir -p "$FARM/keys" "$FARM/scheduler" "$FARM/nats"

lantern() {
	docker run --rm --network none -e LANTERN_PASSWORD= -v "$FARM:/farm" "$IMAGE" "$@"
}

for k in claimer builder-1 builder-2; do
	[ -e "$FARM/keys/$k.key" ] || lantern keygen --output-key-prefix "/farm/keys/$k"
done
for b in builder-1 builder-2; do
	[ -e "$FARM/keys/$b.creds" ] ||
		lantern builder add "$b" "/farm/keys/$b.pub" --data /farm/scheduler --out "/farm/keys/$b.creds"
done
# Node N listens on 127.0.0.1:422N-1 for clients and 622N-1 for routes, in
# the network namespace all the services share.
ROUTES=nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224
for n in 1 2 3; do
	lantern scheduler --data /farm/scheduler --print-nats-config \
		--nats-listen "127.0.0.1:422$((n + 1))" --nats-name "n$n" \
		--nats-cluster "127.0.0.1:622$((n + 1))" --nats-routes "$ROUTES" >"$FARM/nats/n$n.conf.new"
	mv "$FARM/nats/n$n.conf.new" "$FARM/nats/n$n.conf"
done
# The containers read the nodes' configuration and the keys as root.
echo "farm made in $FARM; now: docker-compose up -d"
