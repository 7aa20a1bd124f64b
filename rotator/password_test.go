package rotator_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/swarmkey/swarmkey/rotator"
)

func TestGeneratePasswordFollowsRules(t *testing.T) {
	t.Parallel()

	rapid.Check(t, func(t *rapid.T) {
		alphabet := rapid.SampledFrom([]string{"alphanumeric", "hex", "ascii-printable"}).Draw(t, "alphabet")
		length := rapid.IntRange(16, 128).Draw(t, "length")
		chars := rotator.Alphabets[alphabet]

		p, err := rotator.GeneratePassword(rotator.PasswordRules{Length: length, Characters: chars})
		require.NoError(t, err)
		require.Equal(t, length, len([]rune(p.RevealString())))
		for _, r := range p.RevealString() {
			require.True(t, strings.ContainsRune(chars, r), "character %q outside the alphabet", r)
		}
	})
}

func TestGeneratePasswordIsNotRepeated(t *testing.T) {
	t.Parallel()

	seen := map[string]bool{}
	for range 1000 {
		p, err := rotator.GeneratePassword(rotator.PasswordRules{})
		require.NoError(t, err)
		require.Len(t, p.RevealString(), rotator.DefaultPasswordLength)
		require.False(t, seen[p.RevealString()])
		seen[p.RevealString()] = true
	}
}

func TestGeneratePasswordRefusesWeakRules(t *testing.T) {
	t.Parallel()

	_, err := rotator.GeneratePassword(rotator.PasswordRules{Length: 4})
	require.ErrorContains(t, err, "too short")
	_, err = rotator.GeneratePassword(rotator.PasswordRules{Length: 20, Characters: "a"})
	require.ErrorContains(t, err, "at least two")
}
