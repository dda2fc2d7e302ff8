package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ipTimeout bounds each ip command: they take milliseconds, so one that
// hangs is stuck (a namespace being torn down, a locked rtnl).
const ipTimeout = 10 * time.Second

// ipFunc runs `ip args...` and returns its standard output. Up takes it as
// a parameter so tests can make a step fail.
type ipFunc func(ctx context.Context, args ...string) ([]byte, error)

// runIP runs the ip command with a timeout; its errors carry the command
// line and ip's own message.
func runIP(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.WaitDelay = time.Second // don't wait on pipes a stray child holds
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return out, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		return out, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}
