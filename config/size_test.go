package config

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const smallPolicyFile = decodeHead + `
  - name: a
    schedule: "@daily"
    target: { generated: {} }
`

// TestFileSizeCap: a file over MaxFileSize is refused with its size and the
// cap, before it is read (a 52 MB file took 2.4 GB to decode), whether it
// is a main file or an included one; a file at the cap loads.
func TestFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	// Sparse: 52 MB on no disk.
	big, err := os.Create("big.yaml")
	require.NoError(t, err)
	require.NoError(t, big.Truncate(52<<20))
	require.NoError(t, big.Close())

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Load("big.yaml")
	runtime.ReadMemStats(&after)
	requireErrors(t, err, "big.yaml: the file is 52 MiB (54525952 bytes), over the limit of a policy file, 8 MiB (8388608 bytes); "+
		"split it into files that a main file reaches through include: (the limit holds for each file)")
	// The test is not parallel: the process allocates little else meanwhile.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "the file was not read")

	require.NoError(t, os.WriteFile("main.yaml", []byte(smallPolicyFile+"include: [big.yaml]\n"), 0o600))
	_, err = Load("main.yaml")
	requireErrors(t, err, "big.yaml: the file is 52 MiB (54525952 bytes), over the limit")

	// One byte over, and exactly at the cap (padded with a comment).
	at := smallPolicyFile + "#"
	at += strings.Repeat("x", MaxFileSize-len(at)-1) + "\n"
	require.Len(t, at, MaxFileSize)
	require.NoError(t, os.WriteFile("at.yaml", []byte(at), 0o600))
	cfg, err := Load("at.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Policies, 1)
	require.NoError(t, os.WriteFile("over.yaml", []byte(at+"\n"), 0o600))
	_, err = Load("over.yaml")
	requireErrors(t, err, "over.yaml: the file is 8.0 MiB (8388609 bytes), over the limit of a policy file, 8 MiB (8388608 bytes)")
}

// TestFileSizeCapWithoutSize: a file whose size says nothing (a device, a
// pipe) is read up to the cap and no further.
func TestFileSizeCapWithoutSize(t *testing.T) {
	t.Parallel()
	_, err := os.Stat("/dev/zero")
	require.NoError(t, err, "the test reads /dev/zero")
	_, err = Load("/dev/zero")
	requireErrors(t, err, "/dev/zero: more than 8 MiB (8388608 bytes), the limit of a policy file; split it")
}

// TestManyPoliciesFitTheCap: the file of 10,000 policies that
// TestLoadManyPolicies loads is well below MaxFileSize.
func TestManyPoliciesFitTheCap(t *testing.T) {
	t.Parallel()
	fi, err := os.Stat(writeManyPolicies(t, 10000))
	require.NoError(t, err)
	t.Logf("10,000 policies: %s", formatSize(fi.Size()))
	require.Less(t, fi.Size(), int64(MaxFileSize/2))
}
