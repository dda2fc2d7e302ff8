#!/usr/bin/env bash
# Provisions a server VM: sockshift node as a systemd unit with least
# privilege (see ../systemd/sockshift-node.service).
#   server.sh ROLE ADDR PEER_ROLE PEER_ADDR VIP
set -euo pipefail
here=/vagrant/provision
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

role=$1 addr=$2 peer_role=$3 peer_addr=$4 vip=$5
hold=false
[[ $role == a ]] && hold=true

setup_common
ifc=$(lab_iface "$addr")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$here/render-config.sh" node "$role" "$addr" "$peer_role" "$peer_addr" "$vip" "$ifc" "$etc/key" "$hold" >"$tmp"
install_config "$tmp" "$etc/node.conf"
install -D -m 0755 "$here/node-start.sh" /usr/local/lib/sockshift/node-start.sh
install -m 0644 /vagrant/systemd/sockshift-node.service /etc/systemd/system/sockshift-node.service

systemctl daemon-reload
# A provisioning run is a reset: stop, forget the first start (so server
# A takes the VIP again, server B drops it), start.
systemctl stop sockshift-node.service 2>/dev/null || true
rm -f /run/sockshift/started
systemctl enable --now sockshift-node.service
for _ in $(seq 50); do
	systemctl is-active --quiet sockshift-node.service && break
	sleep 0.2
done
systemctl --no-pager --lines=5 status sockshift-node.service
echo "server $role ($addr on $ifc) is up; VIP $vip held: $hold"
