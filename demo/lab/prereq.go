package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Capability bits (linux/capability.h): creating links and addresses needs
// CAP_NET_ADMIN; creating and entering named namespaces (mount, setns)
// needs CAP_SYS_ADMIN.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// CheckPrerequisites says, in one sentence, what stops this process from
// building a lab: not Linux, not root (or without CAP_NET_ADMIN and
// CAP_SYS_ADMIN), or a missing command. It returns nil if nothing does.
func CheckPrerequisites() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("the lab needs Linux network namespaces, and this is %s", runtime.GOOS)
	}
	if ok, known := hasCaps(capNetAdmin, capSysAdmin); !ok {
		if known && os.Geteuid() == 0 {
			return errors.New("the lab needs CAP_NET_ADMIN and CAP_SYS_ADMIN, which this root process lacks: run it with sudo on the host, or give its container those capabilities")
		}
		return errors.New("the lab needs root to create network namespaces: run it with sudo")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command is missing: install iproute2")
	}
	if _, err := exec.LookPath("sysctl"); err != nil {
		return errors.New("the sysctl command is missing: install procps")
	}
	return nil
}

// hasCaps reports whether the process has every capability in its
// effective set; known is false if that could not be read, and then only
// root counts.
func hasCaps(caps ...uint) (ok, known bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		hex, found := strings.CutPrefix(s.Text(), "CapEff:")
		if !found {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			break
		}
		for _, c := range caps {
			if eff&(1<<c) == 0 {
				return false, true
			}
		}
		return true, true
	}
	return os.Geteuid() == 0, false
}
