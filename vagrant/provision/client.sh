#!/usr/bin/env bash
# Provisions the client VM: sockshift console as a systemd unit (no
# capability at all), forwarded to the host's 127.0.0.1:8080.
#   client.sh CLIENT_ADDR VIP SERVER_A_ADDR SERVER_B_ADDR
set -euo pipefail
here=/vagrant/provision
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

addr=$1 vip=$2 a_addr=$3 b_addr=$4

setup_common
ifc=$(lab_iface "$addr")
install -m 0600 -o "$user" -g "$user" "$lab/console-token" "$etc/console-token"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# All addresses, so that the host's forwarded port reaches it (the
# forward arrives on the NAT interface); the token guards every change.
"$here/render-config.sh" console 0.0.0.0:8080 "$a_addr" "$b_addr" "$vip" "$ifc" "$etc/key" "$etc/console-token" >"$tmp"
install_config "$tmp" "$etc/console.conf"
install -m 0644 /vagrant/systemd/sockshift-console.service /etc/systemd/system/sockshift-console.service

systemctl daemon-reload
systemctl enable sockshift-console.service
systemctl restart sockshift-console.service
echo "The console: http://127.0.0.1:8080/#token=$(cat "$etc/console-token")"
echo "Try: vagrant ssh client -c 'sockshift client --addr $vip:7 --mode ping --interval 100ms'"
