package web

// Fate is what happened to the client's connections around a hand-off, as
// the client's own frames show it (not what the servers meant to do): the
// console writes its headline and note from it, so a broken or aborted
// hand-off never reads as "moved".
type Fate struct {
	// Seen counts the client's connections to the VIP with frames in the
	// window; each of them is one of Moved, Stayed, Reset or Silent.
	Seen   int `json:"seen"`
	Moved  int `json:"moved"`  // answered from the target's MAC after the hand-off, never reset
	Stayed int `json:"stayed"` // answered from the source's MAC after the hand-off, never reset
	Reset  int `json:"reset"`  // ended by a reset (RST) in the window
	Silent int `json:"silent"` // no answer after the hand-off at all
	// ResetBy names the MAC's server that sent the resets: "a", "b", or ""
	// (the client, or none).
	ResetBy string `json:"reset_by,omitempty"`
	// Stalled counts connections that waited 100 ms or more for an answer;
	// WorstStallMS is the longest wait.
	Stalled      int   `json:"stalled"`
	WorstStallMS int64 `json:"worst_stall_ms"`
	// ToSource counts the client's segments sent to the source's MAC after
	// the hand-off ended (the switch), and ToSourceAnswered how many
	// answers to the VIP's connections came back meanwhile, from any MAC.
	ToSource         int `json:"to_source"`
	ToSourceAnswered int `json:"to_source_answered"`
	// ReResolvedMS is when, after the switch, the client first sent to the
	// target's MAC: its neighbour entry for the VIP changed; -1 when it
	// never did in the window, 0 when it did before the switch.
	ReResolvedMS int64 `json:"re_resolved_ms"`
	// AnnouncedMS is when, after the switch, a gratuitous ARP for the VIP
	// was seen; -1 when none was, 0 when it came before the switch.
	AnnouncedMS int64 `json:"announced_ms"`
}
