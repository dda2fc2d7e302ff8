package node

import (
	"github.com/sockshift/sockshift/handoff"
)

// State is what GET /state answers.
type State struct {
	Name        string       `json:"name"`
	Address     string       `json:"address"`
	MAC         string       `json:"mac"`
	HoldsVIP    bool         `json:"holds_vip"`
	Busy        bool         `json:"busy"`
	Step        *StepState   `json:"step,omitempty"`
	Connections []Connection `json:"connections"`
	Services    []Service    `json:"services"`
	// Recovered says what the node settled at start from its journal:
	// hand-offs its previous process left open when it died.
	Recovered []string `json:"recovered,omitempty"`
}

// Service is one service of the node, its address, and whether the node
// holds that address now.
type Service struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Holds   bool   `json:"holds"`
}

// Connection is one live connection on the node.
type Connection struct {
	Service  string `json:"service"`
	Client   string `json:"client"`
	Local    string `json:"local"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// HandoffRequest is the body of POST /handoff.
type HandoffRequest struct {
	To string `json:"to"` // a peer's name
	// Services names the services to move; none means every service
	// whose address this node holds.
	Services []string `json:"services,omitempty"`
	// Step runs the hand-off one phase at a time: each waits for POST /step.
	Step bool `json:"step,omitempty"`
	// KeepVIP breaks the hand-off on purpose, for teaching: the source
	// keeps the addresses. (To skip the announce, arm the target with
	// POST /break.)
	KeepVIP bool `json:"keep_vip,omitempty"`
}

// BreakRequest is the body of POST /break: it arms the node's next
// incoming hand-off to leave a step out on purpose, for teaching.
type BreakRequest struct {
	SkipAnnounce bool `json:"skip_announce"` // send no gratuitous ARP
}

// StepRequest is the body of POST /step.
type StepRequest struct {
	Abort bool `json:"abort,omitempty"` // roll the hand-off back instead
}

// StepState says where a step-mode hand-off stands.
type StepState struct {
	Waiting string   `json:"waiting"` // the phase that runs on the next step
	Done    []string `json:"done"`    // phases already run
}

// Phase is one step of a hand-off and how long it took.
type Phase struct {
	Name string `json:"name"`
	US   int64  `json:"us"` // microseconds
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
	Caught      int     `json:"caught"` // client frames caught during the switch and delivered
	Moved       []Moved `json:"moved,omitempty"`
	// Services and Addresses moved; Stayed are the connections that
	// stayed on the source, and why.
	Services  []string `json:"services"`
	Addresses []string `json:"addresses"`
	Stayed    []Stayed `json:"stayed"`
	Closed    int      `json:"closed,omitempty"` // were closing: closed, not moved
}

// Stayed is a connection that stayed on the source of a hand-off.
type Stayed struct {
	Service string `json:"service"`
	Client  string `json:"client"`
	Local   string `json:"local"`
	Reason  string `json:"reason"`
}

// Moved is one connection's TCP state as dumped on the source (before)
// and read back from the rebuilt socket on the target (after).
type Moved struct {
	Client string             `json:"client"`
	Before handoff.TCPSummary `json:"before"`
	After  handoff.TCPSummary `json:"after"`
}

// VIPRequest is the body of POST /vip: the plain fail-over a server
// without hand-off does (the baseline the benchmark compares against).
type VIPRequest struct {
	Hold             bool `json:"hold"`              // take the VIP (and announce it), or drop it
	CloseConnections bool `json:"close_connections"` // end every connection (echo's and chat's) first
}

// VIPResult is what POST /vip answers.
type VIPResult struct {
	Closed int `json:"closed"` // connections ended
}
