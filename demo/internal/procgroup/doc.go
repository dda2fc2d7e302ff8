// Package procgroup starts a command in a process group of its own and
// signals the group, where the system has process groups.
package procgroup
