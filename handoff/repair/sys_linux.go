package repair

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Constants of linux/tcp.h that golang.org/x/sys/unix lacks.
const (
	tcpNoQueue   = 0 // TCP_NO_QUEUE
	tcpRecvQueue = 1 // TCP_RECV_QUEUE
	tcpSendQueue = 2 // TCP_SEND_QUEUE

	// tcpi_options bits of struct tcp_info.
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
	tcpiOptWscale     = 4

	// Offsets in the raw struct tcp_info: x/sys's TCPInfo hides the
	// bitfield byte holding the window scales (low nibble snd, high rcv).
	tcpiState      = 0
	tcpiOptions    = 5
	tcpiWscale     = 6
	tcpiSndMSS     = 16  // u32 snd_mss (mss_cache)
	tcpiRTT        = 68  // u32 rtt, smoothed, microseconds
	tcpiPacingRate = 104 // u64 pacing_rate, bytes per second (~0: not paced)
	sizeofTCPInfo  = 112 // through pacing_rate

	tcpEstablished = 1 // TCP_ESTABLISHED
	tcpCloseWait   = 8 // TCP_CLOSE_WAIT: the peer's FIN is in

	// maxUserMSS is MAX_TCP_WINDOW, the most TCP_MAXSEG accepts.
	maxUserMSS = 32767

	// sizeofRepairWindow is struct tcp_repair_window: five u32.
	sizeofRepairWindow = 20
)

// Option codes for TCP_REPAIR_OPTIONS (x/sys has them; named here once).
const (
	tcpoptMaxseg    = unix.TCPOPT_MAXSEG
	tcpoptWindow    = unix.TCPOPT_WINDOW
	tcpoptSACKPerm  = unix.TCPOPT_SACK_PERMITTED
	tcpoptTimestamp = unix.TCPOPT_TIMESTAMP
	siocOutqNSD     = unix.SIOCOUTQNSD
)

func (w Window) marshal() []byte {
	b := make([]byte, 0, sizeofRepairWindow)
	for _, v := range []uint32{w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup} {
		b = binary.NativeEndian.AppendUint32(b, v)
	}
	return b
}

func unmarshalWindow(b []byte) Window {
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }
	return Window{SndWl1: u(0), SndWnd: u(1), MaxWindow: u(2), RcvWnd: u(3), RcvWup: u(4)}
}

// getsockoptBytes is getsockopt(2) into a raw buffer; it returns the
// length the kernel wrote.
func getsockoptBytes(fd, level, opt int, buf []byte) (int, error) {
	l := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

// setsockoptBytes is setsockopt(2) from a raw buffer.
func setsockoptBytes(fd, level, opt int, buf []byte) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)), 0)
	if e != 0 {
		return e
	}
	return nil
}
