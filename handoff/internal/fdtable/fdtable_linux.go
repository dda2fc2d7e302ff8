package fdtable

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Next returns the lowest descriptor number free now: the number of open
// descriptors, as long as few were closed below it.
func Next() (int, error) {
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	unix.Close(fd)
	return fd, nil
}

// Reserve makes the table hold at least n descriptors past the lowest free
// one (fewer if RLIMIT_NOFILE is lower). When the table is large enough
// already it costs four system calls; it never touches an open descriptor.
func Reserve(n int) error {
	if n <= 0 {
		return nil
	}
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	defer unix.Close(fd)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return os.NewSyscallError("getrlimit", err)
	}
	want := fd + n
	if lim.Cur < uint64(want)+1 {
		want = int(lim.Cur) - 1
	}
	if want <= fd {
		return nil
	}
	// F_DUPFD takes the lowest free descriptor at or above want, growing
	// the table to hold it; unlike dup2 it can never replace one in use.
	hi, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, want)
	if err != nil {
		return fmt.Errorf("fdtable: reserve %d descriptors: %w", n, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err))
	}
	return unix.Close(hi)
}
