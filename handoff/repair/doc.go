// Package repair freezes, dumps and rebuilds established IPv4 TCP sockets
// with Linux TCP repair mode (TCP_REPAIR, needs CAP_NET_ADMIN).
//
// In repair mode a socket stops taking part in TCP: reads and writes by the
// application fail, closing it sends neither FIN nor RST, and its sequence
// numbers, options and queued bytes can be read and written directly. A
// connection is moved by freezing it on the source, dumping its State,
// closing it there (silently) and rebuilding a socket on the target with the
// same addresses, sequence numbers, options and queued bytes: the peer
// cannot tell, because nothing on the wire changed.
//
// The State holds three queues: bytes received but not yet read by the
// application (restored into the receive queue), bytes sent but not yet
// acknowledged (restored into the send queue as already sent, so the kernel
// retransmits them if needed) and bytes accepted from the application but
// never sent (written by the caller after Activate, as ordinary data).
//
// Typical usage:
//
//	// source
//	f, err := repair.Freeze(conn)   // repair on; conn is silent from here
//	st, err := f.Dump()
//	b, err := st.MarshalBinary()    // send b to the target
//	f.Thaw()                        // rollback: conn serves on, or
//	f.Close()                       // commit: close silently
//
//	// target (the local address must already be assigned here)
//	r, err := repair.Restore(st, nil) // rebuilt, still frozen
//	r.Discard()                       // rollback, or
//	c, err := r.Activate()            // repair off: live
//	c.Write(st.Unsent)                // before anything else
//
// For megabytes of queued bytes, AppendBinary encodes a State straight
// into a larger frame, DecodeState decodes one without copying its queues,
// and Release hands a dumped State's buffers back for the next Dump.
//
// The restored socket's segment size and timestamp clock are set so that
// it behaves at once like the old one: the MSS before the connect, and the
// clock just past the last stamp the old socket can have sent (a paced
// socket stamps ahead of now), not further, since the first round-trip
// estimate is measured from the client's echo of an old stamp.
//
// A closing copy of the connection still on the target (an application
// closed it there earlier, and it waits for its FIN to be acknowledged)
// would make the rebuilt socket's connect fail; Restore destroys it
// (sock_diag), since the connection it stood for is the one being
// restored. An established socket with the same addresses is left alone.
//
// Every failure is an *Error that says where the socket stands afterwards
// (Normal, Repair, Closed or Unknown).
package repair
