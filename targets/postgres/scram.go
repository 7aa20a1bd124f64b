package postgres

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/xdg-go/scram"

	"github.com/swarmkey/swarmkey/secret"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// verifierShape is exactly what SCRAMVerifier produces. ALTER ROLE takes no
// bind parameters, so the verifier is spliced into the statement as a string
// literal; checking its shape first (base64 never holds a quote or a
// backslash) is what makes that splice safe.
var verifierShape = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`)
})

// SCRAMVerifier computes, on the client, the SCRAM-SHA-256 verifier that
// PostgreSQL stores for password, in PostgreSQL's own format:
//
//	SCRAM-SHA-256$4096:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>
//
// so the plaintext never reaches the server, its statement log or
// pg_stat_statements. Like the server, it SASLpreps the password and falls
// back to the raw bytes when SASLprep rejects it.
func SCRAMVerifier(password secret.Secret) (string, error) {
	if password.IsZero() {
		return "", errors.New("compute SCRAM verifier: password is empty")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("compute SCRAM verifier: random salt: %w", err)
	}
	pw := password.RevealString()
	// The username plays no part in PostgreSQL's verifier.
	client, err := scram.SHA256.NewClient("", pw, "")
	if err != nil {
		// PostgreSQL (pg_saslprep) uses the raw password when SASLprep fails,
		// and so do libpq and pgx when they log in. The error is dropped: its
		// text may describe the offending character.
		client, err = scram.SHA256.NewClientUnprepped("", pw, "")
		if err != nil {
			return "", errors.New("compute SCRAM verifier: cannot prepare the password")
		}
	}
	creds, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	if err != nil {
		return "", errors.New("compute SCRAM verifier: key derivation failed")
	}
	b64 := base64.StdEncoding.EncodeToString
	v := fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(creds.StoredKey), b64(creds.ServerKey))
	if !verifierShape().MatchString(v) {
		return "", errors.New("compute SCRAM verifier: result does not have the expected shape")
	}
	return v, nil
}

// passwordLiteral returns the verifier as a quoted SQL literal, refusing
// anything that is not a verifier's exact shape.
func passwordLiteral(verifier string) (string, error) {
	if !verifierShape().MatchString(verifier) {
		return "", errors.New("refusing to quote a password verifier of an unexpected shape")
	}
	return "'" + verifier + "'", nil
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
