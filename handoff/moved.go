package handoff

import (
	"net/netip"

	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/wire"
)

// ReportedConns bounds how many connections a Report describes in full
// (before and after): enough to show, cheap with thousands.
const ReportedConns = 8

// TCPSummary is a connection's TCP state without its queued bytes: what a
// person wants to compare before and after a hand-off.
type TCPSummary struct {
	SendSeq    uint32 `json:"send_seq"` // first byte sent but not acknowledged
	RecvSeq    uint32 `json:"recv_seq"` // first byte received but not read
	SndWnd     uint32 `json:"snd_wnd"`
	RcvWnd     uint32 `json:"rcv_wnd"`
	SndWscale  uint8  `json:"snd_wscale"`
	RcvWscale  uint8  `json:"rcv_wscale"`
	MSS        uint32 `json:"mss"`
	Timestamp  uint32 `json:"timestamp"` // the TCP timestamp clock
	SACK       bool   `json:"sack"`
	Timestamps bool   `json:"timestamps"`
	RecvQueue  int    `json:"recv_queue"` // bytes received, not yet read by the application
	Unacked    int    `json:"unacked"`    // bytes sent, not yet acknowledged
	Unsent     int    `json:"unsent"`     // bytes written, never sent
	SndBuf     uint32 `json:"sndbuf"`
	RcvBuf     uint32 `json:"rcvbuf"`
}

// summarize takes the summary of a dumped state.
func summarize(s *repair.State) TCPSummary {
	return TCPSummary{
		SendSeq: s.SendSeq, RecvSeq: s.RecvSeq, SndWnd: s.Window.SndWnd, RcvWnd: s.Window.RcvWnd,
		SndWscale: s.SndWscale, RcvWscale: s.RcvWscale, MSS: s.MSS, Timestamp: s.Timestamp,
		SACK: s.SACK, Timestamps: s.Timestamps, RecvQueue: len(s.RecvQueue), Unacked: len(s.Unacked),
		Unsent: len(s.Unsent), SndBuf: s.SndBuf, RcvBuf: s.RcvBuf,
	}
}

// MovedConn is one connection a hand-off moved, as the source dumped it
// and as the target rebuilt it (read back from the restored socket before
// it left repair mode).
type MovedConn struct {
	Client        netip.AddrPort
	Before, After TCPSummary
}

func (m TCPSummary) encode(e *wire.Encoder) {
	for _, v := range []uint32{m.SendSeq, m.RecvSeq, m.SndWnd, m.RcvWnd, m.MSS, m.Timestamp,
		uint32(m.RecvQueue), uint32(m.Unacked), uint32(m.Unsent), m.SndBuf, m.RcvBuf} {
		e.U32(v)
	}
	e.U8(m.SndWscale)
	e.U8(m.RcvWscale)
	e.Bool(m.SACK)
	e.Bool(m.Timestamps)
}

func (m *TCPSummary) decode(d *wire.Decoder) {
	m.SendSeq, m.RecvSeq, m.SndWnd, m.RcvWnd = d.U32(), d.U32(), d.U32(), d.U32()
	m.MSS, m.Timestamp = d.U32(), d.U32()
	m.RecvQueue, m.Unacked, m.Unsent = int(d.U32()), int(d.U32()), int(d.U32())
	m.SndBuf, m.RcvBuf = d.U32(), d.U32()
	m.SndWscale, m.RcvWscale = d.U8(), d.U8()
	m.SACK, m.Timestamps = d.Bool(), d.Bool()
}

// encodeAfter and decodeAfter carry the target's read-back summaries, by
// client address, in the Restored message.
func encodeAfter(after map[netip.AddrPort]TCPSummary) []byte {
	var e wire.Encoder
	e.U8(uint8(len(after)))
	for client, m := range after {
		b, _ := client.MarshalBinary()
		e.Bytes(b)
		m.encode(&e)
	}
	return e.Data()
}

func decodeAfter(b []byte) (map[netip.AddrPort]TCPSummary, error) {
	d := wire.NewDecoder(b)
	n := int(d.U8())
	out := map[netip.AddrPort]TCPSummary{}
	for i := 0; i < n && i < ReportedConns && d.Err() == nil; i++ {
		var client netip.AddrPort
		if err := client.UnmarshalBinary(d.Bytes(32)); err != nil {
			return nil, err
		}
		var m TCPSummary
		m.decode(d)
		out[client] = m
	}
	return out, d.Finish()
}

// encodeClients and decodeClients carry, in TransferDone, the clients the
// source summarized, so the target reads back the same ones.
func encodeClients(clients []netip.AddrPort) []byte {
	var e wire.Encoder
	e.U8(uint8(len(clients)))
	for _, c := range clients {
		b, _ := c.MarshalBinary()
		e.Bytes(b)
	}
	return e.Data()
}

func decodeClients(b []byte) map[netip.AddrPort]bool {
	out := map[netip.AddrPort]bool{}
	if len(b) == 0 {
		return out
	}
	d := wire.NewDecoder(b)
	n := int(d.U8())
	for i := 0; i < n && i < ReportedConns && d.Err() == nil; i++ {
		var c netip.AddrPort
		if c.UnmarshalBinary(d.Bytes(32)) == nil {
			out[c] = true
		}
	}
	return out
}
