package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat. USER_HZ is 100 on every
// Linux architecture Go supports; reading it would need sysconf through cgo.
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user + system) a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	return parseStatCPU(data)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from /proc/<pid>/stat. The
// command name (field 2) is in parentheses and may itself hold spaces and parentheses,
// so fields are counted from the last ')'.
func parseStatCPU(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: utime %q, stime %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// memory is a process's resident memory as /proc/<pid>/status reports it.
type memory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM, the peak RSS, bytes
	// Anon is RssAnon, the part of RSS that is not file-backed (heap, stacks); the rest
	// is mostly the binary's own pages. 0 if the kernel does not report it.
	Anon int64
}

func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read memory: %w", err)
	}
	return parseStatusMemory(data)
}

// parseStatusMemory reads VmRSS, VmHWM and RssAnon (in kB) from /proc/<pid>/status.
func parseStatusMemory(data []byte) (memory, error) {
	var m memory
	var found int
	for line := range strings.Lines(string(data)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM" && name != "RssAnon") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("parse /proc status: %s %q", name, value)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse /proc status: %s: %w", name, err)
		}
		switch name {
		case "VmRSS":
			m.RSS = kb * 1024
			found++
		case "VmHWM":
			m.Peak = kb * 1024
			found++
		case "RssAnon":
			m.Anon = kb * 1024
		}
	}
	if found != 2 {
		return m, fmt.Errorf("parse /proc status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// resetPeak sets a process's VmHWM back to its current RSS (Linux clear_refs value 5),
// so that the peak of each benchmark run can be read on its own. It needs the right to
// write the process's clear_refs, which the user who started it has.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak rss: %w", err)
	}
	return nil
}

// openFDs counts a process's open file descriptors (its sockets among them).
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	return len(ents), nil
}
