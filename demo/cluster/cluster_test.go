package cluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

func TestRestartsAServerThatDies(t *testing.T) {
	exe := labtest.Binary(t) // skips outside CI without root
	dir, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{Prefix: labtest.Prefix(), Exe: exe, RunDir: dir, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, role := range []string{"b", "a"} {
		before, err := c.Holder(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CrashNode(role); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := c.Control(role).State(ctx); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %s was not restarted", role)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The holder of the VIP stays the holder across its restart.
		if after, err := c.Holder(ctx); err != nil || after != before {
			t.Fatalf("after restarting %s the VIP is on %q (was %q): %v", role, after, before, err)
		}
	}
}

func TestStartRefusesALabThatIsUp(t *testing.T) {
	exe := labtest.Binary(t)
	prefix := labtest.Prefix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir1, _ := os.MkdirTemp("", "ss")
	c, err := cluster.Start(ctx, cluster.Config{Prefix: prefix, Exe: exe, RunDir: dir1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir2, _ := os.MkdirTemp("", "ss")
	defer os.RemoveAll(dir2)
	if c2, err := cluster.Start(ctx, cluster.Config{Prefix: prefix, Exe: exe, RunDir: dir2}); err == nil {
		c2.Close()
		t.Fatal("a second cluster on the same prefix should be refused")
	}
	// The first one is unharmed.
	if h, err := c.Holder(ctx); err != nil || h != "a" {
		t.Fatalf("first cluster after the refusal: holder %q, %v", h, err)
	}
}
