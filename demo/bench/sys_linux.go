package bench

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func nofile() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("bench: getrlimit NOFILE: %w", err)
	}
	return int(min(rl.Cur, 1<<30)), nil
}

func uname() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
}

// retransmits returns the connection's TCP retransmissions so far
// (tcpi_total_retrans): above zero, some segment waited for a timeout or
// a fast retransmit.
func retransmits(c net.Conn) (uint32, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("bench: %T has no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("bench: TCP_INFO: %w", serr)
	}
	return info.Total_retrans, nil
}
