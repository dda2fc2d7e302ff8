package client

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// retransmits reads from TCP_INFO how many segments the connection
// retransmitted, and how many retransmission timeouts fired (kernels >= 6.7).
func retransmits(c net.Conn) (retrans, rtos uint32) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			retrans, rtos = info.Total_retrans, uint32(info.Total_rto)
		}
	})
	return retrans, rtos
}
