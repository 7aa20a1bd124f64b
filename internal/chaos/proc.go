package chaos

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one swarmkey child process. Its stdout and stderr lines go to
// OnLine as they come (from one goroutine per stream) and are kept, the last
// few hundred, for a report.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	code int // exit status; -1 when killed by a signal

	mu     sync.Mutex
	lines  []string
	killed bool
}

// children is every process the harness started and has not yet reaped;
// killAll ends them (kill -9) whatever happened.
type children struct {
	mu    sync.Mutex
	procs map[*Proc]bool
}

func (c *children) add(p *Proc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs == nil {
		c.procs = map[*Proc]bool{}
	}
	c.procs[p] = true
}

func (c *children) remove(p *Proc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.procs, p)
}

func (c *children) killAll() {
	c.mu.Lock()
	procs := make([]*Proc, 0, len(c.procs))
	for p := range c.procs {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	for _, p := range procs {
		p.Kill()
		p.Wait(10 * time.Second)
	}
}

// start runs cmd (already configured with its binary, args, env, dir and
// credential) and feeds its output to onLine.
func (c *children) start(name string, cmd *exec.Cmd, onLine func(string)) (*Proc, error) {
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A child never outlives the harness, even one killed before its
	// cleanup ran.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.add(p)
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				p.keep(line)
				if onLine != nil {
					onLine(line)
				}
			}
		}()
	}
	go func() {
		readers.Wait()
		err := cmd.Wait()
		p.code = 0
		if err != nil {
			p.code = -1
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
				p.code = ee.ExitCode()
			}
		}
		c.remove(p)
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) keep(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if len(p.lines) > 400 {
		p.lines = p.lines[len(p.lines)-300:]
	}
}

// Output is the last lines the process printed.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL (kill -9); a process that has exited is left alone.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// Signal sends sig unless the process has exited.
func (p *Proc) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits up to limit for the process to exit and returns its exit
// status (-1 after a signal); ok is false when it still runs.
func (p *Proc) Wait(limit time.Duration) (code int, ok bool) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		return p.code, true
	case <-t.C:
		return 0, false
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
