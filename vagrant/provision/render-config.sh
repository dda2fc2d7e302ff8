#!/usr/bin/env bash
# Writes a sockshift config file (name = value lines, see
# internal/flagfile) to stdout. The VMs' provisioning and the one-host
# lab's test (demo/console) both render their configs with this script,
# only the addresses differ.
#
#   render-config.sh node NAME ADDR PEER_NAME PEER_ADDR VIP IFACE KEY_FILE HOLD
#   render-config.sh node NAME ADDR PEERS VIP IFACE KEY_FILE HOLD
#   render-config.sh console LISTEN NODE_A_ADDR NODE_B_ADDR VIP IFACE KEY_FILE TOKEN_FILE
#   render-config.sh console LISTEN NODES VIP IFACE KEY_FILE TOKEN_FILE
#
# For any number of servers, PEERS lists the other servers and NODES all
# of them, as NAME=ADDR[,NAME=ADDR...] (b=192.168.56.12,c=192.168.56.13).
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

# with_port adds the control port to each address of NAME=ADDR,...
with_port() {
	local out="" p
	IFS=, read -ra list <<<"$1"
	for p in "${list[@]}"; do
		[[ $p == ?*=?* ]] || usage
		out+="${out:+,}$p:$control_port"
	done
	printf '%s' "$out"
}

case ${1:-} in
node)
	case $# in
	9) # one peer: NAME ADDR
		[[ $4$5 != *[=,]* ]] || usage
		set -- "$1" "$2" "$3" "$4=$5" "${@:6}"
		;;
	8) ;;
	*) usage ;;
	esac
	[[ $4 == ?*=?* ]] || usage
	chat_vip="${5%.*}.$((${5##*.} + 1))"
	cat <<CONF
# sockshift node: server $2 (rendered by render-config.sh)
name = $2
addr = $3
peer = $4
vip = $5
chat-vip = $chat_vip
iface = $6
key-file = $7
control = $3:$control_port
# The initial holder of the service addresses; on a restart the start
# script overrides this (it keeps those still on the interface).
hold = $8
CONF
	;;
console)
	case $# in
	8) # two servers: A's and B's addresses
		[[ $3$4 != *[=,]* ]] || usage
		set -- "$1" "$2" "a=$3,b=$4" "${@:5}"
		;;
	7) ;;
	*) usage ;;
	esac
	nodes=$(with_port "$3") # exits here on a bad list
	cat <<CONF
# sockshift console (rendered by render-config.sh)
listen = $2
token-file = $7
nodes = $nodes
vip = $4
iface = $5
key-file = $6
CONF
	;;
*) usage ;;
esac
