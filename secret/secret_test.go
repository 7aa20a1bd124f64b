package secret_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
)

const plaintext = "hunter2-correct-horse"

type holder struct {
	Name  string
	Value secret.Secret
	Ptr   *secret.Secret
}

func TestSecretNeverFormatsItsValue(t *testing.T) {
	t.Parallel()

	s := secret.FromString(plaintext)
	h := holder{Name: "db", Value: s, Ptr: &s}

	var out []string
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%-8v"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(s, h), s.String(), s.GoString())
	out = append(out, fmt.Errorf("wrapped: %v", s).Error(), errors.Join(fmt.Errorf("%w: %s", errors.New("x"), s)).Error())

	j, err := json.Marshal(h)
	require.NoError(t, err)
	out = append(out, string(j))

	m, err := json.Marshal(map[string]any{"s": s, "list": []secret.Secret{s}})
	require.NoError(t, err)
	out = append(out, string(m))

	var logBuf bytes.Buffer
	for _, handler := range []slog.Handler{slog.NewJSONHandler(&logBuf, nil), slog.NewTextHandler(&logBuf, nil)} {
		logger := slog.New(handler)
		logger.Info("rotated", "password", s, "holder", h, slog.Any("any", s))
		logger.Info("group", slog.Group("g", "v", s))
	}
	out = append(out, logBuf.String())

	for _, line := range out {
		require.NotContains(t, line, plaintext)
		require.NotContains(t, line, fmt.Sprintf("%x", plaintext))
	}
	require.Contains(t, strings.Join(out, "\n"), secret.Redacted)
}

func TestSecretRevealAndEqual(t *testing.T) {
	t.Parallel()

	raw := []byte(plaintext)
	s := secret.New(raw)
	raw[0] = 'X' // the Secret holds its own copy
	require.Equal(t, plaintext, s.RevealString())

	revealed := s.Reveal()
	revealed[0] = 'Y' // and hands out copies
	require.Equal(t, plaintext, s.RevealString())

	require.True(t, s.Equal(secret.FromString(plaintext)))
	require.False(t, s.Equal(secret.FromString(plaintext+"x")))
	require.True(t, secret.Secret{}.IsZero())
	require.True(t, secret.New(nil).IsZero())
	require.Equal(t, len(plaintext), s.Len())
}
