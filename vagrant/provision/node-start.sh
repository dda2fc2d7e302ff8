#!/bin/sh
# node-start.sh CONFIG: starts `sockshift node --config CONFIG` (exec, so
# systemd supervises the node itself). The config's `hold` names the
# server that takes the service addresses (the VIP, chat's) on its first
# start; on a later start (systemd restarting a node that died) the node
# takes back only the addresses still on its interface, i.e. those it held
# when it died: a restarted server must never take an address from the
# one that serves it now.
#
# $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=, kept across restarts)
# remembers the first start until reboot, and holds the node's hand-off
# journal (--state-dir), which settles a hand-off its process died in;
# $SOCKSHIFT is the binary (default /usr/local/bin/sockshift).
set -eu
conf=$1
state=${RUNTIME_DIRECTORY:?node-start.sh: RUNTIME_DIRECTORY is not set}
bin=${SOCKSHIFT:-/usr/local/bin/sockshift}

setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([^[:space:]]*\\).*/\\1/p" "$conf"; }

if [ -e "$state/started" ]; then
	iface=$(setting iface)
	held=
	for a in $(setting vip) $(setting chat-vip); do
		if ip -4 -o addr show dev "$iface" | grep -q " $a/"; then
			held=${held:+$held,}$a
		fi
	done
	set -- --hold=false
	if [ -n "$held" ]; then
		set -- --hold=false --hold-only="$held"
	fi
else
	set --
fi
: >"$state/started"
exec "$bin" node --config "$conf" --state-dir "$state/journal" "$@"
