package config

import (
	"errors"
	"reflect"
	"runtime"
	"strconv"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The entries of a cut file (split.go) are parsed in batches of consecutive
// entries, each batch one small YAML document: a parser per entry would
// cost more than the entry (yaml.v3 allocates some 2 KiB of buffers per
// parser). Batches are parsed, checked (checkTree), decoded and indexed by
// GOMAXPROCS goroutines, a few batches ahead of the loader, which takes
// them in file order and checks their policies one by one: a parsed batch
// waits for its turn, so the node trees alive at once are a few batches'
// worth, never the file's.

const (
	// entryBatch is how many entries one batch holds: about 35 KiB of a
	// typical file, whose tree is some 0.75 MiB.
	entryBatch = 128
	// batchesAhead bounds the batches parsed and not yet checked. Two
	// keep both cores of a small host parsing while the loader checks.
	// Against batches of 256 entries, 4 ahead, the private memory of
	// reading 10,000 policies peaked 3 to 5 MiB lower (25.4 to 26.4
	// against 29.0 to 32.4 MiB) in the same time, and `swarmkey validate`
	// of 100,000 peaked at 255 to 263 MiB against 271 to 289.
	batchesAhead = 2
)

// errEntryUnparsed is the answer for entries that do not parse on their
// own: the file is then decoded whole (see split.go).
var errEntryUnparsed = errors.New("the entries do not parse on their own")

// parsedBatch is one batch of entries, parsed and decoded.
type parsedBatch struct {
	// first is the index of the batch's first entry in the file.
	first int
	// src indexes the batch's entries at their paths in the file
	// ("policies[i]…"), and shares the file's badUnits.
	src   *source
	items []*yaml.Node
	raws  []rawPolicy
	// problems are checkTree's, errors in FILE:LINE form; decoded are
	// yaml.v3's decoding errors, placed but not yet counted (decodeShown).
	problems, decoded Errors
	err               error
}

// parseBatch parses entries, the batch of s's entries that starts with
// entry first, as parseDocument parses a whole file.
func (s *source) parseBatch(first int, entries []policyEntry, tc *treeChecker) (b parsedBatch) {
	b.first = first
	defer func() {
		// yaml.v3 reports through panics internally: the whole file is
		// parsed then, and reports it.
		if r := recover(); r != nil {
			b = parsedBatch{first: first, err: errEntryUnparsed}
		}
	}()
	var doc yaml.Node
	text := s.data[entries[0].start:entries[len(entries)-1].end]
	// One document: the cut leaves no markers in the entries (split.go).
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return parsedBatch{first: first, err: errEntryUnparsed}
	}
	root := resolve(&doc)
	if root == nil || root.Kind != yaml.SequenceNode || len(root.Content) != len(entries) {
		return parsedBatch{first: first, err: errEntryUnparsed}
	}
	shiftLines(&doc, entries[0].line-1)
	b.items = root.Content
	b.raws = make([]rawPolicy, len(entries))
	idx := nodeIndex{byPath: make(map[string]int, 24*len(entries)), entries: make([]nodeEntry, 0, 24*len(entries))}
	var messages []string
	for k, item := range b.items {
		path := "policies[" + strconv.Itoa(first+k) + "]"
		for _, p := range tc.check(path, item, reflect.TypeFor[rawPolicy]()) {
			b.problems = append(b.problems, Error{File: s.file, Line: p.line, Field: p.path, Msg: p.msg})
		}
		err := item.Decode(&b.raws[k])
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			messages = append(messages, te.Errors...)
		case err != nil:
			return parsedBatch{first: first, err: errEntryUnparsed}
		}
		idx.add(nodeEntry{path: path, value: item})
		idx.walk(path, item)
	}
	b.src = &source{file: s.file, include: s.include, idx: idx, badUnits: s.badUnits, decodeErrs: s.decodeErrs}
	for i := range b.problems {
		b.problems[i].Field = b.src.display(b.problems[i].Field)
	}
	for _, msg := range messages {
		e, _ := b.src.decodeError(msg)
		if e.Field == "" {
			// Not placed in an entry: decoded whole, the file is spoilt
			// from the start (unitOf), so it is read so.
			return parsedBatch{first: first, err: errEntryUnparsed}
		}
		b.decoded = append(b.decoded, e)
	}
	return b
}

// parseEntries parses s's entries in batches on GOMAXPROCS goroutines and
// hands each batch to use, in file order, until use or a batch fails; it
// returns the first failure. It returns once no goroutine of its runs.
func (s *source) parseEntries(use func(b *parsedBatch) error) error {
	n := (len(s.entries) + entryBatch - 1) / entryBatch
	results := make([]chan parsedBatch, n)
	for i := range results {
		results[i] = make(chan parsedBatch, 1)
	}
	next := make(chan int)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			tc := newTreeChecker()
			for i := range next {
				lo := i * entryBatch
				results[i] <- s.parseBatch(lo, s.entries[lo:min(lo+entryBatch, len(s.entries))], tc)
			}
		})
	}
	// The feeder hands out a batch only when fewer than batchesAhead are
	// parsed or being parsed and not yet used.
	ahead := make(chan struct{}, batchesAhead)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case ahead <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	}()
	var err error
	for i := range n {
		b := <-results[i]
		<-ahead
		if err = b.err; err == nil {
			err = use(&b)
		}
		if err != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	return err
}
