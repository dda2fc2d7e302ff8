// Package fdtable makes room in this process's file descriptor table ahead
// of a burst of new descriptors.
//
// Linux grows a process's descriptor table by doubling it, on the first
// descriptor past its end; in a multi-threaded process (every Go program)
// each growth waits for an RCU grace period, milliseconds, while every
// other descriptor allocation in the process waits too. A Go program stalls
// entirely meanwhile: socket(2) runs without releasing its P, so the
// garbage collector's stop-the-world waits on it. A target rebuilding
// thousands of sockets hit five such growths in a row, 25-40 ms of a
// hand-off with every core idle. Reserve grows the table once, before the
// burst.
package fdtable
