#!/usr/bin/env bash
# Writes a sockshift config file (name = value lines, see
# internal/flagfile) to stdout. The VMs' provisioning and the one-host
# lab's test (demo/console) both render their configs with this script,
# only the addresses differ.
#
#   render-config.sh node NAME ADDR PEER_NAME PEER_ADDR VIP IFACE KEY_FILE HOLD
#   render-config.sh console LISTEN NODE_A_ADDR NODE_B_ADDR VIP IFACE KEY_FILE TOKEN_FILE
#
# A node's control API listens on its own address, port 7071 (next to the
# hand-off channel on 7070); the console reaches both there. Chat has a
# service address of its own, the VIP's next one (192.168.56.101 beside
# .100, as 192.0.2.101 beside .100 in the one-host lab), so it can move
# alone.
set -euo pipefail

control_port=7071

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

case ${1:-} in
node)
	(($# == 9)) || usage
	chat_vip="${6%.*}.$((${6##*.} + 1))"
	cat <<CONF
# sockshift node: server $2 (rendered by render-config.sh)
name = $2
addr = $3
peer = $4=$5
vip = $6
chat-vip = $chat_vip
iface = $7
key-file = $8
control = $3:$control_port
# The initial holder of the service addresses; on a restart the start
# script overrides this (it keeps those still on the interface).
hold = $9
CONF
	;;
console)
	(($# == 8)) || usage
	cat <<CONF
# sockshift console (rendered by render-config.sh)
listen = $2
token-file = $8
nodes = a=$3:$control_port,b=$4:$control_port
vip = $5
iface = $6
key-file = $7
CONF
	;;
*) usage ;;
esac
