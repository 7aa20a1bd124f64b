package main

import (
	"net"
	"sync"
	"sync/atomic"
)

// relay forwards connections to a PostgreSQL server and counts what a
// rotation costs in the network: connections opened, and round trips (a
// client message sent after the server last spoke, or the first one of a
// connection, is a new round trip). Only the profile pass goes through it,
// never the measured rounds: it adds a hop.
type relay struct {
	listener      net.Listener
	dialNet, dial string
	connections   atomic.Int64
	roundTrips    atomic.Int64
	wg            sync.WaitGroup
}

// startRelay listens on network/address (tcp 127.0.0.1:0, or a unix
// socket path) and forwards to dialNet/dial.
func startRelay(network, address, dialNet, dial string) (*relay, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	r := &relay{listener: l, dialNet: dialNet, dial: dial}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.listener.Accept()
		if err != nil {
			return
		}
		r.connections.Add(1)
		go r.forward(client)
	}
}

func (r *relay) forward(client net.Conn) {
	defer client.Close()
	server, err := net.Dial(r.dialNet, r.dial)
	if err != nil {
		return
	}
	defer server.Close()
	// serverSpoke is set when the server sends and cleared when the client
	// sends: a client write that finds it set (or the first) starts a trip.
	var serverSpoke atomic.Bool
	serverSpoke.Store(true)
	done := make(chan struct{}, 2)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if serverSpoke.Swap(false) {
					r.roundTrips.Add(1)
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				serverSpoke.Store(true)
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
}

func (r *relay) close() { _ = r.listener.Close(); r.wg.Wait() }

// counts is a snapshot of a relay's counters.
type counts struct{ connections, roundTrips int64 }

func (r *relay) snapshot() counts {
	return counts{connections: r.connections.Load(), roundTrips: r.roundTrips.Load()}
}
