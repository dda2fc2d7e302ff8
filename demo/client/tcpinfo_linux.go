package client

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Retransmits reads from TCP_INFO how many segments the connection
// retransmitted, and how many retransmission timeouts fired (kernels >=
// 6.7; 0 on older ones): above zero, some segment waited for a timeout or
// a fast retransmit.
func Retransmits(c net.Conn) (retrans, rtos uint32, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0, fmt.Errorf("client: %T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); serr == nil {
			retrans, rtos = info.Total_retrans, uint32(info.Total_rto)
		}
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("client: TCP_INFO: %w", os.NewSyscallError("getsockopt", serr))
	}
	return retrans, rtos, nil
}
