#!/usr/bin/env bash
# Shared by server.sh and client.sh (sourced): the binary, the service
# user, the lab's secrets, the lab interface.
# shellcheck disable=SC2034 # variables used by the scripts that source this

lab=/vagrant/.lab   # made on the host by host-prepare.sh, synced here
etc=/etc/sockshift
user=sockshift

# setup_common installs the tools a class uses, the binary and the user.
setup_common() {
	if [[ ! -x $lab/sockshift || ! -s $lab/key ]]; then
		echo "provision: $lab/sockshift or $lab/key is missing: the host runs provision/host-prepare.sh before 'vagrant up' (a trigger); then 'vagrant rsync'" >&2
		exit 1
	fi
	# For the exercises: a capture, arping, nc. Best effort: the lab works
	# without them, and a classroom may be offline.
	if ! command -v tcpdump >/dev/null || ! command -v nc >/dev/null || ! command -v arping >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump netcat-openbsd iputils-arping ||
			echo "provision: could not install tcpdump, netcat-openbsd, iputils-arping (offline?); the lab runs without them" >&2
	fi
	install -m 0755 "$lab/sockshift" /usr/local/bin/sockshift
	install -m 0644 /vagrant/sysctl.d/60-sockshift.conf /etc/sysctl.d/60-sockshift.conf && systemctl restart systemd-sysctl # forwarding off, ARP as the lessons show it
	if ! id -u "$user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
	fi
	install -d -m 0750 -o root -g "$user" "$etc"
	# The key must be 0600 and owned by the user that reads it (the
	# synced folder's modes say nothing).
	install -m 0600 -o "$user" -g "$user" "$lab/key" "$etc/key"
}

# lab_iface ADDR prints the interface that has ADDR (Vagrant names it
# eth1 on one provider and ens6 on another).
lab_iface() {
	local ifc
	ifc=$(ip -o -4 addr show to "$1/32" | awk '{print $2; exit}')
	if [[ -z $ifc ]]; then
		echo "provision: no interface has $1; is the private network up?" >&2
		exit 1
	fi
	# No IPv6 on the lab segment, as in the one-host lab: captures show
	# only the lab's own traffic.
	printf 'net.ipv6.conf.%s.disable_ipv6 = 1\n' "$ifc" >/etc/sysctl.d/60-sockshift-lab.conf
	sysctl -q -p /etc/sysctl.d/60-sockshift-lab.conf || true
	echo "$ifc"
}

# install_config SRC DEST: root-owned, readable by the service user only.
install_config() {
	install -m 0640 -o root -g "$user" "$1" "$2"
}
