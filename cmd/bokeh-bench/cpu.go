package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuSplit says which CPUs the servers (API, workers, redis, the limits' child processes) and
// the load generator (this process) run on.
type cpuSplit struct {
	Server []int `json:"server_cpus"`
	Client []int `json:"client_cpus"`
	// UpdateWorker are the CPUs of the update scenario's worker (the other scenarios' workers
	// run on Server): beside the load generator unless --update-worker-cpus says otherwise.
	UpdateWorker []int  `json:"update_worker_cpus"`
	Pinned       bool   `json:"pinned"`
	Total        int    `json:"cpus"`
	Note         string `json:"note"`
}

// onlineCPUs lists the CPUs this process may run on.
func onlineCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		out := make([]int, runtime.NumCPU())
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for i := 0; i < 1024 && len(out) < set.Count(); i++ {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}

// parseCPUList reads "0", "0,2", "1-3" or "all".
func parseCPUList(s string, online []int) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return append([]int(nil), online...), nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cpu list %q is empty", s)
	}
	return out, nil
}

// decideSplit applies --server-cpus/--client-cpus/--update-worker-cpus; by default the
// servers get the first half of the CPUs and the load generator the rest (one each on two
// cores), except that the update scenario's worker runs beside the load generator: the API
// then has a CPU of its own, and neither CPU is left mostly idle (the load generator of the
// update loop needs about half of one, the worker a quarter).
func decideSplit(serverFlag, clientFlag, updateWorkerFlag string, attach bool) (cpuSplit, error) {
	online := onlineCPUs()
	sp := cpuSplit{Total: len(online)}
	if serverFlag == "none" || clientFlag == "none" || len(online) < 2 {
		sp.Server, sp.Client, sp.UpdateWorker = online, online, online
		sp.Note = "not pinned: servers and load generator share every CPU"
		return sp, nil
	}
	half := len(online) / 2
	sp.Server, sp.Client = online[:half], online[half:]
	var err error
	if serverFlag != "" {
		if sp.Server, err = parseCPUList(serverFlag, online); err != nil {
			return sp, err
		}
	}
	if clientFlag != "" {
		if sp.Client, err = parseCPUList(clientFlag, online); err != nil {
			return sp, err
		}
	}
	switch updateWorkerFlag {
	case "", "client":
		sp.UpdateWorker = sp.Client
	case "server":
		sp.UpdateWorker = sp.Server
	default:
		if sp.UpdateWorker, err = parseCPUList(updateWorkerFlag, online); err != nil {
			return sp, err
		}
	}
	sp.Pinned = true
	sp.Note = fmt.Sprintf("servers pinned to CPU %s (GOMAXPROCS %d each), load generator to CPU %s (GOMAXPROCS %d); "+
		"the update scenario's ws-worker to CPU %s (its API and redis alone on CPU %s)",
		cpuString(sp.Server), len(sp.Server), cpuString(sp.Client), len(sp.Client), cpuString(sp.UpdateWorker), cpuString(sp.Server))
	if cpuString(sp.UpdateWorker) == cpuString(sp.Server) {
		sp.Note = fmt.Sprintf("servers pinned to CPU %s (GOMAXPROCS %d each), load generator to CPU %s (GOMAXPROCS %d)",
			cpuString(sp.Server), len(sp.Server), cpuString(sp.Client), len(sp.Client))
	}
	if attach {
		sp.Note = fmt.Sprintf("attached servers not pinned by us; load generator and limit processes: clients on CPU %s, limit servers on CPU %s",
			cpuString(sp.Client), cpuString(sp.Server))
	}
	return sp, nil
}

func cpuString(cpus []int) string {
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	set.Zero()
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinSelf pins every thread of this process to cpus (threads created later inherit the mask
// of the thread creating them) and sets GOMAXPROCS to match.
func pinSelf(cpus []int) error {
	set := cpuSet(cpus)
	// Twice: a thread started while the first pass ran may have copied an old mask.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil {
				return fmt.Errorf("sched_setaffinity %d: %w", tid, err)
			}
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// startPinned starts cmd with its CPU affinity set to cpus from the first instruction on:
// the fork happens on a thread locked to this goroutine whose mask is cpus meanwhile, so
// the child (and every thread, child and grandchild it makes) inherits it, and a Go child
// sizes GOMAXPROCS from it.
func startPinned(start func() error, cpus, restore []int) error {
	if len(cpus) == 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return fmt.Errorf("sched_setaffinity: %w", err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, cpuSet(restore)); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// rssKB reads VmRSS of pid in KiB.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuTime reads the user+system CPU time of pid (all threads) from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}
