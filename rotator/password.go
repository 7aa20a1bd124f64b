package rotator

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"

	"github.com/swarmkey/swarmkey/secret"
)

// Alphabets a policy may name under `password.alphabet`.
var Alphabets = map[string]string{
	"alphanumeric":    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"hex":             "0123456789abcdef",
	"ascii-printable": "!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~",
}

// PasswordRules are a policy's rules for generated passwords.
type PasswordRules struct {
	// Length in characters; 0 means DefaultPasswordLength.
	Length int
	// Characters to draw from; "" means the alphanumeric alphabet.
	Characters string
}

// DefaultPasswordLength gives about 190 bits over the alphanumeric alphabet.
const DefaultPasswordLength = 32

// GeneratePassword draws Length characters uniformly from Characters with
// crypto/rand (rejection sampling through rand.Int, so no modulo bias).
func GeneratePassword(rules PasswordRules) (secret.Secret, error) {
	length := rules.Length
	if length == 0 {
		length = DefaultPasswordLength
	}
	chars := []rune(rules.Characters)
	if len(chars) == 0 {
		chars = []rune(Alphabets["alphanumeric"])
	}
	if length < 8 {
		return secret.Secret{}, fmt.Errorf("password length %d is too short: use at least 16", length)
	}
	if len(chars) < 2 {
		return secret.Secret{}, errors.New("password alphabet needs at least two characters")
	}
	max := big.NewInt(int64(len(chars)))
	out := make([]rune, length)
	for i := range out {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return secret.Secret{}, fmt.Errorf("generate password: %w", err)
		}
		out[i] = chars[n.Int64()]
	}
	return secret.FromString(string(out)), nil
}
