package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
)

// temps lists the temp files in dir, with their sizes.
func temps(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, e := range entries {
		if strings.Contains(e.Name(), tempSuffix) {
			info, err := e.Info()
			require.NoError(t, err)
			out[e.Name()] = info.Size()
		}
	}
	return out
}

// A writer killed between its temp file and the rename (kill -9, a lost
// node) leaves a temp file holding a whole sealed state, here one that still
// has a version the store has since deleted. Open removes it; a secret whose
// id merely looks like a temp file name keeps its files.
func TestOpenRemovesLeftoverTempFiles(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	first, _, _ := rotate(t, s, "x", "")
	p, err := s.pathsFor("x")
	require.NoError(t, err)
	sealed, err := os.ReadFile(p.state)
	require.NoError(t, err)
	// What the killed writer left: the state with the first version, which
	// two rotations later the store no longer holds.
	leftover := p.state + tempSuffix + "0123456789abcdef"
	require.NoError(t, os.WriteFile(leftover, sealed, 0o600))
	second, _, _ := rotate(t, s, "x", first)
	rotate(t, s, "x", second)
	versions, err := s.List(t.Context(), "x")
	require.NoError(t, err)
	for _, v := range versions {
		require.NotEqual(t, first, v.ID, "the store deleted the first version")
	}
	// A secret called like a temp file of "x" is no temp file.
	lookalike := "x.json.tmp-12"
	rotate(t, s, lookalike, "")
	require.Len(t, temps(t, opts.Dir), 3, "the leftover and the lookalike's two files")

	reopened := openStore(t, opts)
	require.Equal(t, map[string]int64{}, onlyTemps(temps(t, opts.Dir), lookalike), "Open removed the leftover")
	_, err = os.Stat(leftover)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = reopened.Get(t.Context(), lookalike, providers.StageCurrent)
	require.NoError(t, err, "the lookalike secret is intact")
	_, err = reopened.Get(t.Context(), "x", providers.StageCurrent)
	require.NoError(t, err)
}

// onlyTemps drops the files of the secret whose id looks like a temp file.
func onlyTemps(files map[string]int64, lookalike string) map[string]int64 {
	out := map[string]int64{}
	for name, size := range files {
		if !strings.HasPrefix(name, lookalike+".") {
			out[name] = size
		}
	}
	return out
}

// A write that fails after its temp file was written (fsync, rename) leaves
// no temp file, and the state as it was.
func TestFailedWriteLeavesNoTempFile(t *testing.T) {
	t.Parallel()
	failure := errors.New("injected failure")
	for _, step := range []string{"sync", "rename"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			opts := newOptions(t)
			s := openStore(t, opts)
			current, _, _ := rotate(t, s, "x", "")
			switch step {
			case "sync":
				s.steps.sync = func(*os.File) error { return failure }
			case "rename":
				s.steps.rename = func(string, string) error { return failure }
			}
			v, _ := value(t)
			_, err := s.PutPending(t.Context(), "x", token(t), v)
			require.ErrorIs(t, err, failure)
			require.Empty(t, temps(t, opts.Dir), "no temp file stays")
			got, err := s.Get(t.Context(), "x", providers.StageCurrent)
			require.NoError(t, err)
			require.Equal(t, current, got.ID)
			_, err = s.Get(t.Context(), "x", providers.StagePending)
			require.ErrorIs(t, err, providers.ErrNotFound, "the failed write changed nothing")
		})
	}
}

// A folder made read-only during a write: the rename fails and so does the
// removal of the temp file (injected: root ignores permission bits). The
// temp file that has to stay is empty, and the secret's next write, once the
// folder is writable again, removes it.
func TestWriteIntoAFolderMadeReadOnlyLeavesNothingDecryptable(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	current, _, _ := rotate(t, s, "x", "")
	readOnly := errors.New("read-only file system")
	s.steps.rename = func(string, string) error { return readOnly }
	s.steps.remove = func(string) error { return readOnly }

	v, password := value(t)
	_, err := s.PutPending(t.Context(), "x", token(t), v)
	require.ErrorIs(t, err, readOnly)
	require.ErrorContains(t, err, "emptied")
	require.NotContains(t, err.Error(), password)
	left := temps(t, opts.Dir)
	require.Len(t, left, 1, "the folder keeps the temp file")
	for name, size := range left {
		require.Zero(t, size, "temp file %s holds nothing", name)
	}

	s.steps = osSteps
	rotate(t, s, "x", current)
	require.Empty(t, temps(t, opts.Dir), "the next write removed it")
}

// The emptied temp file of a failed write is removed at the next start too.
func TestOpenRemovesTheTempFileOfAFailedWrite(t *testing.T) {
	t.Parallel()
	opts := newOptions(t)
	s := openStore(t, opts)
	rotate(t, s, "x", "")
	readOnly := errors.New("read-only file system")
	s.steps.rename = func(string, string) error { return readOnly }
	s.steps.remove = func(string) error { return readOnly }
	v, _ := value(t)
	_, err := s.PutPending(t.Context(), "x", token(t), v)
	require.ErrorIs(t, err, readOnly)
	require.Len(t, temps(t, opts.Dir), 1)

	openStore(t, opts)
	require.Empty(t, temps(t, opts.Dir))
	_, err = os.Stat(filepath.Join(opts.Dir, "x.json"))
	require.NoError(t, err)
}
