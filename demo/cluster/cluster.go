package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/internal/procgroup"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/nsexec"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Config describes a cluster. Zero fields take the defaults noted.
type Config struct {
	Prefix string // lab prefix; default lab.DefaultPrefix
	// Servers is how many servers (a, b, c, ...); default
	// lab.DefaultServers.
	Servers int
	Exe     string // the sockshift binary; default this program
	RunDir  string // control sockets and key; default /run/sockshift/<prefix>
	// Restart starts a server again when its process dies.
	Restart bool
	// NodeArgs adds flags to a server's command line, by role.
	NodeArgs map[string][]string
	// NodeOutput receives the servers' logs; default os.Stderr.
	NodeOutput io.Writer
	Log        *log.Logger
}

// Cluster is a lab with its server processes.
type Cluster struct {
	cfg Config
	Lab *lab.Lab
	Key string // path of the lab's shared key

	mu      sync.Mutex
	servers map[string]*server
	closed  bool
	wg      sync.WaitGroup
}

type server struct {
	role     string
	hold     bool
	holdOnly []string // on a restart: the service addresses it still had
	extra    []string
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd exits
	stop     bool          // do not restart
}

// Start brings up the lab and its servers, a holding the VIP, and waits
// until they answer. A lab already up under the prefix is an error: it may
// belong to another demo. On failure it removes what it made.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = lab.DefaultPrefix
	}
	if cfg.Exe == "" {
		if cfg.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("cluster: find own binary: %w", err)
		}
	}
	if cfg.RunDir == "" {
		cfg.RunDir = filepath.Join("/run/sockshift", cfg.Prefix)
	}
	if cfg.NodeOutput == nil {
		cfg.NodeOutput = os.Stderr
	}
	if cfg.Log == nil {
		cfg.Log = log.New(os.Stderr, "sockshift: ", log.Ltime)
	}
	if err := lab.ValidatePrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Servers == 0 {
		cfg.Servers = lab.DefaultServers
	}
	if err := lab.ValidateServers(cfg.Servers); err != nil {
		return nil, err
	}
	if err := lab.CheckPrerequisites(); err != nil {
		return nil, err
	}
	l, err := lab.UpServers(ctx, cfg.Prefix, cfg.Servers)
	if errors.Is(err, lab.ErrExists) {
		return nil, fmt.Errorf("a lab with prefix %q is already up (another demo running?): stop it, or run `sockshift lab down --prefix %s`, or pick another prefix", cfg.Prefix, cfg.Prefix)
	}
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, Lab: l, servers: map[string]*server{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.Key = filepath.Join(cfg.RunDir, "key")
	os.Remove(c.Key) // a key left by a crashed run; each lab gets a new one
	if _, err := wire.GenerateKeyFile(c.Key); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	for i, role := range l.ServerNames() {
		if err := c.StartNode(ctx, role, i == 0, cfg.NodeArgs[role]...); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Close stops the servers, removes the lab and the run directory.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	roles := make([]string, 0, len(c.servers))
	for r := range c.servers {
		roles = append(roles, r)
	}
	c.mu.Unlock()
	for _, r := range roles {
		c.StopNode(r)
	}
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := lab.Down(ctx, c.cfg.Prefix)
	os.RemoveAll(c.cfg.RunDir)
	return err
}

// Host returns a server's host.
func (c *Cluster) Host(role string) (lab.Host, bool) { return c.Lab.Server(role) }

// Servers lists the servers' names: a, b, ...
func (c *Cluster) Servers() []string { return c.Lab.ServerNames() }

// ControlPath is where a server's control socket lives.
func (c *Cluster) ControlPath(role string) string {
	return filepath.Join(c.cfg.RunDir, role+".sock")
}

// Control returns the control client of a server.
func (c *Cluster) Control(role string) *node.Client { return node.NewClient(c.ControlPath(role)) }

// NodeArgs is the command line (after `ip`) that runs a server in its
// namespace.
func (c *Cluster) NodeArgs(role string, hold bool, extra ...string) []string {
	h, _ := c.Host(role)
	var peers []string
	for _, p := range c.Lab.Servers {
		if p.Role != role {
			peers = append(peers, p.Role+"="+p.Addr.Addr().String())
		}
	}
	args := []string{"netns", "exec", h.Namespace, c.cfg.Exe, "node",
		"--name", role, "--iface", h.Interface, "--addr", h.Addr.Addr().String(),
		"--vip", lab.VIP.String(), "--chat-vip", lab.ChatVIP.String(), "--peer", strings.Join(peers, ","),
		"--key-file", c.Key, "--control", c.ControlPath(role),
		"--state-dir", filepath.Join(c.cfg.RunDir, "state-"+role)}
	if hold {
		args = append(args, "--hold")
	}
	return append(args, extra...)
}

// StartNode starts a server's process and waits until it answers. With
// hold it takes the VIP; without, it drops a stale one.
func (c *Cluster) StartNode(ctx context.Context, role string, hold bool, extra ...string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("cluster: closed")
	}
	if s, ok := c.servers[role]; ok && !s.stop {
		c.mu.Unlock()
		return fmt.Errorf("cluster: server %s is already running", role)
	}
	s := &server{role: role, hold: hold, extra: extra}
	c.servers[role] = s
	c.mu.Unlock()
	if err := c.spawn(s); err != nil {
		return err
	}
	return c.waitNode(ctx, role)
}

func (c *Cluster) spawn(s *server) error {
	extra := s.extra
	if len(s.holdOnly) > 0 {
		extra = append([]string{"--hold-only", strings.Join(s.holdOnly, ",")}, extra...)
	}
	cmd := exec.Command("ip", c.NodeArgs(s.role, s.hold, extra...)...)
	cmd.Stdout, cmd.Stderr = c.cfg.NodeOutput, c.cfg.NodeOutput
	procgroup.Own(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start server %s: %w", s.role, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	s.cmd, s.done = cmd, done
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := cmd.Wait()
		close(done)
		c.mu.Lock()
		restart := c.cfg.Restart && !s.stop && !c.closed && c.servers[s.role] == s
		c.mu.Unlock()
		if !restart {
			return
		}
		c.cfg.Log.Printf("server %s exited (%v); starting it again", s.role, err)
		time.Sleep(300 * time.Millisecond)
		// It takes back the service addresses still on its interface: it
		// held them when it died, and they must not be orphaned.
		s.hold, s.holdOnly = false, c.addrsAssigned(s.role)
		if err := c.spawn(s); err != nil {
			c.cfg.Log.Print(err)
		}
	}()
	return nil
}

func (c *Cluster) waitNode(ctx context.Context, role string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Control(role).State(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: server %s did not come up: %w", role, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// addrsAssigned lists the service addresses on a server's interface.
func (c *Cluster) addrsAssigned(role string) []string {
	h, _ := c.Host(role)
	out, err := exec.Command("ip", "-n", h.Namespace, "-br", "addr", "show", "dev", h.Interface).Output()
	var held []string
	for _, a := range node.ServiceAddrs(lab.VIP) {
		if err == nil && strings.Contains(string(out), " "+a.String()+"/") {
			held = append(held, a.String())
		}
	}
	return held
}

// signalNode sends sig to a server's process group and waits for it to
// end, killing it after a grace period.
func (c *Cluster) signalNode(role string, sig syscall.Signal) {
	c.mu.Lock()
	s := c.servers[role]
	if s != nil {
		s.stop = true
	}
	c.mu.Unlock()
	if s == nil || s.cmd == nil {
		return
	}
	procgroup.Signal(s.cmd.Process, sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		procgroup.Signal(s.cmd.Process, syscall.SIGKILL)
		<-s.done
	}
}

// PID returns a server's process ID, 0 if it never started: `ip netns
// exec` becomes the server, so this is the server itself.
func (c *Cluster) PID(role string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.servers[role]; s != nil && s.cmd != nil && s.cmd.Process != nil {
		return s.cmd.Process.Pid
	}
	return 0
}

// StopNode stops a server's process (SIGTERM) for good.
func (c *Cluster) StopNode(role string) { c.signalNode(role, syscall.SIGTERM) }

// KillNode kills a server's process at once (SIGKILL), as a crash would.
// It is not restarted.
func (c *Cluster) KillNode(role string) { c.signalNode(role, syscall.SIGKILL) }

// CrashNode kills a server's process without marking it stopped: with
// Restart set, it comes back as after a real crash.
func (c *Cluster) CrashNode(role string) error {
	c.mu.Lock()
	s := c.servers[role]
	c.mu.Unlock()
	if s == nil || s.cmd == nil {
		return fmt.Errorf("cluster: no server %s", role)
	}
	return procgroup.Signal(s.cmd.Process, syscall.SIGKILL)
}

// Holder returns the server that holds the VIP ("" if none).
func (c *Cluster) Holder(ctx context.Context) (string, error) {
	holder := ""
	for _, role := range c.Servers() {
		st, err := c.Control(role).State(ctx)
		if err != nil {
			continue
		}
		if st.HoldsVIP {
			if holder != "" {
				return "", fmt.Errorf("cluster: servers %s and %s both hold the VIP", holder, role)
			}
			holder = role
		}
	}
	return holder, nil
}

// HandOff asks server from to hand every connection to server to.
func (c *Cluster) HandOff(ctx context.Context, from, to string) (node.HandoffResult, error) {
	return c.Control(from).HandOff(ctx, to)
}

// HandOffServices asks server from to hand some services to server to.
func (c *Cluster) HandOffServices(ctx context.Context, from, to string, services ...string) (node.HandoffResult, error) {
	return c.Control(from).HandOffWith(ctx, node.HandoffRequest{To: to, Services: services})
}

// Holders says which server holds each service's address ("" if none).
func (c *Cluster) Holders(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, role := range c.Servers() {
		st, err := c.Control(role).State(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range st.Services {
			if _, ok := out[s.Name]; !ok {
				out[s.Name] = ""
			}
			if s.Holds {
				if out[s.Name] != "" {
					return nil, fmt.Errorf("cluster: servers %s and %s both hold %s's address %s", out[s.Name], role, s.Name, s.Address)
				}
				out[s.Name] = role
			}
		}
	}
	return out, nil
}

// Dial connects from the client's namespace; the connection is usable from
// anywhere.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := nsexec.Do(c.Lab.Client.Namespace, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}
