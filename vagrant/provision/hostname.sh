#!/usr/bin/env bash
# Names the VM, and leaves its network alone.
#   hostname.sh NAME
#
# Not Vagrant's `config.vm.hostname`: on a Debian guest with ifupdown (the
# box/build box, Debian's own box) its change_host_name restarts every
# interface, eth0 too (`systemctl stop ifup@eth0; systemctl start
# ifup@eth0`), and `ifdown eth0` sends a DHCPRELEASE of the management
# lease. vagrant-libvirt finds a VM's address in the management
# network's lease table, and gives each look-up 2 seconds: while the
# guest takes a lease again (6 to 8 s here under software emulation, more
# on a slower host), the VM has no address, vagrant-libvirt calls it
# "inaccessible", and `vagrant up` fails (issue 21).
set -euo pipefail
name=$1
if [[ $(hostname) != "$name" ]]; then
	hostnamectl set-hostname "$name" 2>/dev/null || {
		echo "$name" >/etc/hostname
		hostname "$name"
	}
fi
# The name resolves, as Debian's installer writes it (sudo, the prompt).
sed -i '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts
printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
