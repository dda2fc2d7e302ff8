#!/usr/bin/env bash
# Runs on the host before `vagrant up` / `provision` / `reload` (a Vagrant
# trigger): builds the Linux sockshift binary and makes, once, the lab's
# shared key and the console's token, in vagrant/.lab/, which the synced
# folder carries to the VMs. Building on the host means the VMs need no Go
# (Debian 12's golang is too old for this module). Set SOCKSHIFT_GOARCH
# for VMs that are not amd64 (e.g. arm64).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
lab=$here/.lab
umask 077
mkdir -p "$lab"

# hexbytes N: N random bytes, hex, one line.
hexbytes() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; echo; }

# The key is made once: every VM must hold the same one, and a
# provisioning run again must not split the lab.
[[ -s $lab/key ]] || hexbytes 32 >"$lab/key"
[[ -s $lab/console-token ]] || hexbytes 16 >"$lab/console-token"

export PATH="$PATH:/usr/local/go/bin"
if command -v go >/dev/null; then
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH="${SOCKSHIFT_GOARCH:-amd64}" \
		go build -trimpath -o "$lab/sockshift" ./demo/cmd/sockshift)
elif [[ -x $lab/sockshift ]]; then
	echo "host-prepare: Go not found; using the binary already in $lab" >&2
else
	echo "host-prepare: Go 1.26 is needed on the host to build sockshift for the VMs (https://go.dev/dl)," >&2
	echo "  or put a Linux build at $lab/sockshift (CGO_ENABLED=0 GOOS=linux go build -o $lab/sockshift ./demo/cmd/sockshift)" >&2
	exit 1
fi
