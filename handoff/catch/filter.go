package catch

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Offsets in an untagged Ethernet frame carrying IPv4; the kernel runs the
// filter on the frame itself, without the virtio header.
const (
	offEtherType = 12
	offIPFlags   = ethHdrLen + 6  // flags and fragment offset
	offIPProto   = ethHdrLen + 9  // protocol
	offIPDst     = ethHdrLen + 16 // destination address
	offTCPDst    = ethHdrLen + 2  // destination port, after the IP header (X)
	etherTypeIP  = 0x0800
	protoTCP     = 6
	fragOffset   = 0x1fff
)

// filter returns the classic BPF program that passes IPv4 TCP frames sent
// to mac for vip, and, if ports is not empty, only to those destination
// ports (non-first fragments carry no port and are then refused).
//
// Equivalent to the tcpdump expression:
//
//	ether dst MAC and ip dst VIP and tcp [and dst port (P1 or P2 ...)]
//
// Every test jumps to the end through an unconditional jump, whose offset
// is not limited to 255 like a conditional one's, so the port list may be
// long.
func filter(mac net.HardwareAddr, vip netip.Addr, ports []uint16) ([]bpf.Instruction, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("hardware address %q is not an Ethernet MAC", mac)
	}
	v := vip.Unmap()
	if !v.Is4() {
		return nil, fmt.Errorf("%v is not an IPv4 address", vip)
	}
	v4 := v.As4()

	var p []bpf.Instruction
	var toDrop, toAccept []int // indexes of the jumps to fix up
	// expect continues if the loaded value equals val, else drops.
	expect := func(val uint32) {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: val, SkipTrue: 1})
		toDrop = append(toDrop, len(p))
		p = append(p, bpf.Jump{})
	}
	p = append(p, bpf.LoadAbsolute{Off: 0, Size: 4})
	expect(binary.BigEndian.Uint32(mac[0:4]))
	p = append(p, bpf.LoadAbsolute{Off: 4, Size: 2})
	expect(uint32(binary.BigEndian.Uint16(mac[4:6])))
	p = append(p, bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	expect(etherTypeIP)
	p = append(p, bpf.LoadAbsolute{Off: offIPDst, Size: 4})
	expect(binary.BigEndian.Uint32(v4[:]))
	p = append(p, bpf.LoadAbsolute{Off: offIPProto, Size: 1})
	expect(protoTCP)
	if len(ports) == 0 {
		toAccept = append(toAccept, len(p))
		p = append(p, bpf.Jump{})
	} else {
		p = append(p,
			bpf.LoadAbsolute{Off: offIPFlags, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: fragOffset, SkipTrue: 1},
			bpf.Jump{Skip: 1},
		)
		toDrop = append(toDrop, len(p))
		p = append(p,
			bpf.Jump{},
			bpf.LoadMemShift{Off: ethHdrLen}, // X = IP header length
			bpf.LoadIndirect{Off: offTCPDst, Size: 2},
		)
		for _, port := range ports {
			p = append(p, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(port), SkipTrue: 1})
			toAccept = append(toAccept, len(p))
			p = append(p, bpf.Jump{})
		}
	}
	drop := len(p)
	// The return value is the snap length: all of the frame, however large
	// the GSO super-frame.
	p = append(p, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: math.MaxUint32})
	accept := drop + 1
	for _, i := range toDrop {
		p[i] = bpf.Jump{Skip: uint32(drop - i - 1)}
	}
	for _, i := range toAccept {
		p[i] = bpf.Jump{Skip: uint32(accept - i - 1)}
	}
	return p, nil
}
