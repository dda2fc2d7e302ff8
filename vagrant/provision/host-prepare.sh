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

# once FILE BYTES: makes FILE, once, atomically. Every VM must hold the
# same key and a provisioning run again must not split the lab; with
# libvirt, `vagrant up` runs this trigger for the three VMs at the same
# time, so the first link wins and the others keep it.
once() {
	[[ -s $1 ]] && return 0
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	hexbytes "$2" >"$tmp"
	ln "$tmp" "$1" 2>/dev/null || true
	rm -f "$tmp"
}
once "$lab/key" 32
once "$lab/console-token" 16

export PATH="$PATH:/usr/local/go/bin"
if command -v go >/dev/null; then
	# Built aside and renamed: a build running for another VM at the same
	# time, or an rsync reading the binary, never sees half a file.
	tmp=$(mktemp "$lab/sockshift.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH="${SOCKSHIFT_GOARCH:-amd64}" \
		go build -trimpath -o "$tmp" ./demo/cmd/sockshift)
	chmod 0755 "$tmp"
	mv -f "$tmp" "$lab/sockshift"
elif [[ -x $lab/sockshift ]]; then
	echo "host-prepare: Go not found; using the binary already in $lab" >&2
else
	echo "host-prepare: Go 1.26 is needed on the host to build sockshift for the VMs (https://go.dev/dl)," >&2
	echo "  or put a Linux build at $lab/sockshift (CGO_ENABLED=0 GOOS=linux go build -o $lab/sockshift ./demo/cmd/sockshift)" >&2
	exit 1
fi
