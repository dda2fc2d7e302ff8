// Package nsexec runs a function inside a named network namespace, the way
// `ip netns exec` runs a command: the calling goroutine's work happens on an
// OS thread switched into the namespace and back.
package nsexec
