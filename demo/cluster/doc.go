// Package cluster runs the lab's servers: it brings up the lab's
// namespaces, generates the lab's shared key, starts one `sockshift node`
// process per server inside its namespace (restarting one that dies, when
// asked to, as systemd does on real hosts), and talks to them through their
// control sockets. The demo, the benchmark and the tests all run the lab
// through it.
package cluster
