package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
)

func TestParseReference(t *testing.T) {
	t.Parallel()

	valid := []struct {
		in   string
		want Reference
	}{
		{"env:PG_ADMIN_URL", Reference{Scheme: SchemeEnv, Name: "PG_ADMIN_URL"}},
		{"env:_x1", Reference{Scheme: SchemeEnv, Name: "_x1"}},
		{"file:/etc/swarmkey/admin", Reference{Scheme: SchemeFile, Name: "/etc/swarmkey/admin"}},
		{"store:aws/loadtest/admin", Reference{Scheme: SchemeStore, Name: "aws/loadtest/admin", Provider: "aws", SecretID: "loadtest/admin"}},
		{"store:file/admin#password", Reference{Scheme: SchemeStore, Name: "file/admin", Provider: "file", SecretID: "admin", Field: "password"}},
	}
	for _, tt := range valid {
		got, err := ParseReference(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
		require.Equal(t, tt.in, got.String(), "String round-trips")
		require.False(t, got.IsZero())
	}

	invalid := []struct {
		in, msg string
	}{
		{"", "empty reference"},
		{"hunter2", "plaintext credentials are not allowed"},
		{"postgres://admin:hunter2@db/app", "plaintext credentials are not allowed"},
		{"postgresql://admin:hunter2@db/app", "plaintext credentials are not allowed"},
		{"password:hunter2", "plaintext credentials are not allowed"},
		{"env:", "env: reference needs a variable name"},
		{"env:1X", "env: reference needs a variable name"},
		{"env:A-B", "env: reference needs a variable name"},
		{"file:relative/path", "file: reference needs an absolute path"},
		{"file:", "file: reference needs an absolute path"},
		{"store:aws", "store: reference needs a provider and a secret id"},
		{"store:/id", "store: reference needs a provider and a secret id"},
		{"store:aws/", "store: reference needs a provider and a secret id"},
		{"store:aws/a b", "store: reference needs a provider and a secret id"},
		{"store:aws/id#", "empty or malformed #field"},
	}
	for _, tt := range invalid {
		_, err := ParseReference(tt.in)
		require.ErrorContains(t, err, tt.msg, tt.in)
		require.NotContains(t, err.Error(), "hunter2")
	}
	_, err := ParseReference("postgres://admin:hunter2@db/app")
	require.EqualError(t, err, "plaintext credentials are not allowed here; give a reference: env:NAME, file:/absolute/path or store:<provider>/<secret-id>[#field]")
	require.True(t, Reference{}.IsZero())
	require.Empty(t, Reference{}.String())
}

// setenv sets a variable whose name no other test uses; t.Setenv cannot be
// used in parallel tests.
func setenv(t *testing.T, name, value string) {
	t.Helper()
	require.NoError(t, os.Setenv(name, value))
	t.Cleanup(func() { _ = os.Unsetenv(name) })
}

func TestResolveEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setenv(t, "SWARMKEY_CONFIG_TEST_SET", "env-s3cret")
	setenv(t, "SWARMKEY_CONFIG_TEST_EMPTY", "")

	s, err := Reference{Scheme: SchemeEnv, Name: "SWARMKEY_CONFIG_TEST_SET"}.Resolve(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "env-s3cret", s.RevealString())

	for _, name := range []string{"SWARMKEY_CONFIG_TEST_EMPTY", "SWARMKEY_CONFIG_TEST_UNSET"} {
		_, err := Reference{Scheme: SchemeEnv, Name: name}.Resolve(ctx, nil)
		require.EqualError(t, err, "reference env:"+name+": the environment variable is unset or empty")
	}
}

func TestResolveFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	resolve := func(path string) (secret.Secret, error) {
		ref, err := ParseReference("file:" + path)
		require.NoError(t, err)
		return ref.Resolve(ctx, nil)
	}

	for content, want := range map[string]string{
		"file-s3cret":     "file-s3cret",
		"file-s3cret\n":   "file-s3cret",
		"file-s3cret\r\n": "file-s3cret",
		"file-s3cret\n\n": "file-s3cret\n",
		"two\nlines\n":    "two\nlines",
	} {
		s, err := resolve(write("ok", content, 0o600))
		require.NoError(t, err)
		require.Equal(t, want, s.RevealString(), "%q", content)
	}

	s, err := resolve(write("readonly", "file-s3cret", 0o400))
	require.NoError(t, err)
	require.Equal(t, "file-s3cret", s.RevealString())

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		p := write("open", "file-s3cret\n", mode)
		_, err := resolve(p)
		require.ErrorContains(t, err, "reference file:"+p+": mode")
		require.ErrorContains(t, err, "lets group or others read it; run chmod 600 "+p)
		require.NotContains(t, err.Error(), "file-s3cret")
	}

	missing := filepath.Join(dir, "missing")
	_, err = resolve(missing)
	require.EqualError(t, err, "reference file:"+missing+": no such file or directory")

	_, err = resolve(write("empty", "\n", 0o600))
	require.EqualError(t, err, "reference file:"+filepath.Join(dir, "empty")+": the value is empty")

	_, err = resolve(dir)
	require.ErrorContains(t, err, "not a regular file")
}

func TestResolveStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	errDown := errors.New("store unavailable")
	docs := map[string]string{
		"file/admin":  `{"url":"postgres://admin:store-s3cret@db/app","port":5432,"flag":true,"empty":""}`,
		"file/plain":  `store-s3cret-plain`,
		"aws/missing": "",
	}
	var calls []string
	reader := func(_ context.Context, provider, id string) (secret.Secret, error) {
		calls = append(calls, provider+"/"+id)
		doc, ok := docs[provider+"/"+id]
		if !ok {
			return secret.Secret{}, errDown
		}
		return secret.FromString(doc), nil
	}
	resolve := func(s string) (secret.Secret, error) {
		ref, err := ParseReference(s)
		require.NoError(t, err)
		return ref.Resolve(ctx, reader)
	}

	s, err := resolve("store:file/admin#url")
	require.NoError(t, err)
	require.Equal(t, "postgres://admin:store-s3cret@db/app", s.RevealString())
	require.Equal(t, []string{"file/admin"}, calls)

	s, err = resolve("store:file/admin#port")
	require.NoError(t, err)
	require.Equal(t, "5432", s.RevealString())

	s, err = resolve("store:file/plain")
	require.NoError(t, err)
	require.Equal(t, "store-s3cret-plain", s.RevealString())

	errCases := map[string]string{
		"store:file/admin#nope":  `reference store:file/admin#nope: the secret has no field "nope"`,
		"store:file/admin#flag":  `reference store:file/admin#flag: field "flag" is neither a string nor a number`,
		"store:file/admin#empty": "reference store:file/admin#empty: the value is empty",
		"store:file/plain#url":   "reference store:file/plain#url: the secret is not a JSON object, so it has no fields",
		"store:aws/missing":      "reference store:aws/missing: the value is empty",
		"store:gcp/down":         "reference store:gcp/down: store unavailable",
	}
	for ref, want := range errCases {
		_, err := resolve(ref)
		require.EqualError(t, err, want)
		require.NotContains(t, err.Error(), "s3cret")
	}
	_, err = resolve("store:gcp/down")
	require.ErrorIs(t, err, errDown)

	ref, err := ParseReference("store:file/admin#url")
	require.NoError(t, err)
	_, err = ref.Resolve(ctx, nil)
	require.EqualError(t, err, "reference store:file/admin#url: no secret stores to read from")
}
