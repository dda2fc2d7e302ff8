//go:build !linux

package bench

func findProcess(string) (int, error) { return 0, errNotLinux() }

func procStats(int) (int64, int, error) { return 0, 0, errNotLinux() }
