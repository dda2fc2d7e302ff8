// Package appliance runs the whole demo on one host: the lab's namespaces,
// a server process in each server namespace, the built-in demo clients in
// the client namespace, and the web console in the host's own namespace,
// which drives the servers through their control sockets. On SIGINT or
// SIGTERM it removes everything it made.
package appliance
