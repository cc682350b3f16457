// Package faultproxy is a TCP proxy for tests that injects network faults between a client and
// a server (Redis): latency with jitter, a bandwidth cap, connections reset, and a blackhole in
// one direction or both. Faults are switched at run time; Heal ends them all.
//
// It is a small proxy of its own rather than toxiproxy: the faults the tests need fit in a few
// hundred lines, and toxiproxy as a library would add its HTTP API, CLI and logging packages to
// the module's go.mod.
package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Direction names which way the bytes of a connection flow.
type Direction int

const (
	// Upstream is from the client to the server.
	Upstream Direction = 1 << iota
	// Downstream is from the server to the client.
	Downstream
	// Both is both ways.
	Both = Upstream | Downstream
)

// faults are the faults in force.
type faults struct {
	latency, jitter time.Duration // added before each chunk is forwarded: latency + [0, jitter)
	bandwidth       int           // bytes per second and per direction of each connection; 0: no cap
	blackhole       Direction     // directions whose bytes are read and dropped
}

// Proxy forwards every connection made to Addr to the target address, applying the faults
// in force. Its zero value is not usable; start one with Start. Safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu sync.Mutex
	// f is the faults in force: written by the fault setters, read by every pipe. Guarded by mu.
	f faults
	// links are the open connections: added by the accept loop, removed by their pipes, reset
	// by Reset and Close. Guarded by mu.
	links  map[*link]struct{}
	closed bool
}

// link is one proxied connection: the client's side and the server's.
type link struct {
	client, server net.Conn
	once           sync.Once
}

// Start listens on a free loopback port and forwards each connection to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, done: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port, for clients to dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays each chunk of bytes, both ways, by latency plus a random part of jitter
// (uniform in [0, jitter)), chunk by chunk: bytes keep their order.
func (p *Proxy) SetLatency(latency, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f.latency, p.f.jitter = latency, jitter
}

// SetBandwidth caps each direction of each connection at bytesPerSec; 0 removes the cap.
func (p *Proxy) SetBandwidth(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f.bandwidth = bytesPerSec
}

// Blackhole drops the bytes flowing in dir, on open connections and new ones, which are still
// accepted: what is sent that way is read and never delivered. Blackhole(0) ends it.
func (p *Proxy) Blackhole(dir Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f.blackhole = dir
}

// Heal ends every fault. Connections reset stay closed; bytes dropped stay lost.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f = faults{}
}

// Reset ends every open connection with a TCP reset (RST) on both sides, as a peer that
// crashed or a middlebox that dropped the connection would. New connections are accepted.
// It returns how many connections it reset.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
	return len(links)
}

// Open counts the connections open now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops accepting, resets every open connection and waits for every goroutine the
// proxy started. Closing twice is safe.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.ln.Close()
	p.Reset()
	p.wg.Wait()
	return err
}

func (p *Proxy) faults() faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			reset(c) // the server is down: the client sees its connection refused, as near as can be
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.reset()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(l, s, c, Downstream)
		go p.pipe(l, c, s, Upstream)
	}
}

// pipe copies from src to dst, chunk by chunk, applying the faults in force for dir. When
// either side ends, it closes both, and the other pipe of the link ends too.
func (p *Proxy) pipe(l *link, src, dst net.Conn, dir Direction) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.close()
	}()
	buf := make([]byte, maxChunk)
	for {
		n, err := src.Read(buf[:p.chunk()])
		if n > 0 && !p.forward(dst, buf[:n], dir) {
			return
		}
		if err != nil {
			return
		}
	}
}

// maxChunk is the most a pipe reads at once.
const maxChunk = 16 << 10

// chunk is how much a pipe reads at once: under a bandwidth cap, a twentieth of a second's
// worth, so that the cap is smooth.
func (p *Proxy) chunk() int {
	if bw := p.faults().bandwidth; bw > 0 {
		return min(maxChunk, max(1, bw/20))
	}
	return maxChunk
}

// forward applies the faults to one chunk and writes it to dst; false when the link is done.
func (p *Proxy) forward(dst net.Conn, b []byte, dir Direction) bool {
	f := p.faults()
	if f.blackhole&dir != 0 {
		return true // read, dropped
	}
	d := f.latency
	if f.jitter > 0 {
		d += rand.N(f.jitter)
	}
	if !p.sleep(d) {
		return false
	}
	if _, err := dst.Write(b); err != nil {
		return false
	}
	if f.bandwidth > 0 {
		return p.sleep(time.Duration(len(b)) * time.Second / time.Duration(f.bandwidth))
	}
	return true
}

// sleep waits d, or until the proxy closes (false).
func (p *Proxy) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.server.Close()
	})
}

func (l *link) reset() {
	l.once.Do(func() {
		reset(l.client)
		reset(l.server)
	})
}

// reset closes c with a TCP reset rather than an orderly close.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
