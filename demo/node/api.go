package node

// State is what GET /state answers.
type State struct {
	Name        string       `json:"name"`
	Address     string       `json:"address"`
	MAC         string       `json:"mac"`
	HoldsVIP    bool         `json:"holds_vip"`
	Busy        bool         `json:"busy"`
	Connections []Connection `json:"connections"`
}

// Connection is one live connection on the node.
type Connection struct {
	Service  string `json:"service"`
	Client   string `json:"client"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// HandoffRequest is the body of POST /handoff.
type HandoffRequest struct {
	To string `json:"to"` // a peer's name
}

// Phase is one step of a hand-off.
type Phase struct {
	Name string `json:"name"`
	US   int64  `json:"us"`
}

// HandoffResult is what POST /handoff answers.
type HandoffResult struct {
	OK          bool    `json:"ok"`
	From        string  `json:"from"`
	To          string  `json:"to"`
	Connections int     `json:"connections"`
	TotalUS     int64   `json:"total_us"`
	Phases      []Phase `json:"phases"`
	Error       string  `json:"error,omitempty"`
	RolledBack  bool    `json:"rolled_back,omitempty"`
}

// VIPRequest is the body of POST /vip: the plain fail-over a server
// without hand-off does (the baseline the benchmark compares against).
type VIPRequest struct {
	Hold             bool `json:"hold"`              // take the VIP (and announce it), or drop it
	CloseConnections bool `json:"close_connections"` // end every connection first
}

// VIPResult is what POST /vip answers.
type VIPResult struct {
	Closed int `json:"closed"` // connections ended
}
