// Package neigh reads a host's neighbour (ARP) entry for one address
// through netlink, as `ip neigh show ADDR` prints it, without forking ip:
// the console reads it on every state request and before and after each
// hand-off.
package neigh
