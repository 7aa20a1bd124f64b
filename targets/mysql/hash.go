package mysql

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"filippo.io/edwards25519"

	"github.com/swarmkey/swarmkey/secret"
)

// The authentication plugins the target sets passwords for. For each the
// target computes, on the client, the value the server stores
// (authentication_string), and sends only that: the plaintext never
// reaches the server, its general or slow query log, or its binary log.
// Both plugins also log in without sending the password: the client
// answers a random challenge (a SHA-1 scramble, an Ed25519 signature).
const (
	// PluginNative is mysql_native_password: MariaDB's default, and MySQL's
	// up to 8.4 (deprecated there, off by default from 8.4, gone in 9).
	PluginNative = "mysql_native_password"
	// PluginEd25519 is MariaDB's ed25519 (the auth_ed25519 plugin, which the
	// server must load: INSTALL SONAME 'auth_ed25519').
	PluginEd25519 = "ed25519"
)

// hashShapes are exactly what the hash functions produce. ALTER USER takes
// no bind parameters, so the hash is spliced into the statement as a string
// literal; checking its shape first (hex and base64 never hold a quote or a
// backslash) is what makes that splice safe. They are compiled on first
// use, so that commands that never touch MySQL do not pay at start.
var hashShapes = sync.OnceValue(func() map[string]*regexp.Regexp {
	return map[string]*regexp.Regexp{
		PluginNative:  regexp.MustCompile(`^\*[0-9A-F]{40}$`),
		PluginEd25519: regexp.MustCompile(`^[A-Za-z0-9+/]{43}$`),
	}
})

// NativePasswordHash is mysql_native_password's stored value for password:
// "*" and the upper-case hex of SHA1(SHA1(password)), what the server's
// PASSWORD() returns.
func NativePasswordHash(password secret.Secret) (string, error) {
	if password.IsZero() {
		return "", errors.New("compute the password hash: password is empty")
	}
	raw := password.Reveal()
	defer clear(raw)
	first := sha1.Sum(raw)
	second := sha1.Sum(first[:])
	clear(first[:])
	return "*" + strings.ToUpper(hex.EncodeToString(second[:])), nil
}

// Ed25519PasswordHash is MariaDB ed25519's stored value for password: the
// Ed25519 public key whose secret scalar is the clamped first half of
// SHA-512(password) (the plugin uses the password where Ed25519 uses a
// 32-byte seed), in base64 without padding, what the server's
// PASSWORD() returns for an ed25519 account.
func Ed25519PasswordHash(password secret.Secret) (string, error) {
	if password.IsZero() {
		return "", errors.New("compute the password hash: password is empty")
	}
	raw := password.Reveal()
	defer clear(raw)
	digest := sha512.Sum512(raw)
	defer clear(digest[:])
	s, err := edwards25519.NewScalar().SetBytesWithClamping(digest[:32])
	if err != nil {
		return "", errors.New("compute the password hash: key derivation failed")
	}
	public := new(edwards25519.Point).ScalarBaseMult(s)
	return base64.RawStdEncoding.EncodeToString(public.Bytes()), nil
}

// passwordHash is the stored value of password under plugin.
func passwordHash(plugin string, password secret.Secret) (string, error) {
	var hash string
	var err error
	switch plugin {
	case PluginNative:
		hash, err = NativePasswordHash(password)
	case PluginEd25519:
		hash, err = Ed25519PasswordHash(password)
	default:
		return "", fmt.Errorf("unsupported authentication plugin %q", plugin)
	}
	if err != nil {
		return "", err
	}
	if !hashShapes()[plugin].MatchString(hash) {
		return "", errors.New("compute the password hash: result does not have the expected shape")
	}
	return hash, nil
}

// identifiedClause is the IDENTIFIED part of CREATE/ALTER USER for a hash
// that passwordHash made: "IDENTIFIED WITH plugin AS '<hash>'" (MariaDB
// reads WITH … AS as VIA … USING; MySQL knows only the first).
func identifiedClause(plugin, hash string) (string, error) {
	shape, ok := hashShapes()[plugin]
	if !ok || !shape.MatchString(hash) {
		return "", errors.New("refusing to quote a password hash of an unexpected shape")
	}
	return "IDENTIFIED WITH " + plugin + " AS '" + hash + "'", nil
}

// randomPassword is a password nobody knows: Restore sets it on a failed
// credential so that the credential stops working.
func randomPassword() (secret.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return secret.Secret{}, fmt.Errorf("random password: %w", err)
	}
	s := secret.FromString(base64.RawStdEncoding.EncodeToString(b))
	clear(b)
	return s, nil
}
