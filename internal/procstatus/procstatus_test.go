package procstatus

import (
	"os"
	"runtime"
	"testing"
)

func TestOwnDescriptorTable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc: Linux only")
	}
	n, err := Int(0, "FDSize")
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("FDSize %d: a process has at least stdin, stdout and stderr", n)
	}
	pid, err := Int(os.Getpid(), "Pid")
	if err != nil || pid != os.Getpid() {
		t.Fatalf("Pid of this process by its number: %d, %v; want %d", pid, err, os.Getpid())
	}
}

func TestMissingProcessAndField(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc: Linux only")
	}
	if n, err := Int(1<<30, "FDSize"); err == nil {
		t.Fatalf("a process that cannot exist: %d, no error", n)
	}
	if v, err := Field(0, "NoSuchField"); err == nil {
		t.Fatalf("a field that does not exist: %q, no error", v)
	}
	if n, err := Int(0, "Name"); err == nil {
		t.Fatalf("a field that is not a number: %d, no error", n)
	}
}
