package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header of a webhook delivery that signs its body:
//
//	Swarmkey-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>
//
// The timestamp is inside the signed text, so a receiver that refuses old
// timestamps (Verify with a tolerance) refuses a replayed request. Each
// attempt of a delivery is signed anew with its own time; the body, and the
// event id in it, stay the same.
const SignatureHeader = "Swarmkey-Signature"

// DefaultTolerance is how old a signature's timestamp Verify accepts by
// default (and how far in the future, for clock skew).
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrBadSignatureHeader = errors.New("malformed " + SignatureHeader + " header: want t=<unix seconds>,v1=<hex>")
	ErrSignatureMismatch  = errors.New("signature does not match the body")
	ErrSignatureExpired   = errors.New("signature timestamp outside the tolerance (a replay, or clocks apart)")
)

// Sign returns the header value that signs body at t with key.
func Sign(key, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Swarmkey-Signature header against the body received and
// the key shared with swarmkey, at now: the timestamp must lie within
// tolerance of now (0 means DefaultTolerance) and one v1 signature must
// match (compared in constant time). Receivers in Go call it as is; others
// follow the same steps (see README.md). To refuse a replay inside the
// tolerance too, a receiver also remembers the event ids it has seen for
// that long.
func Verify(header string, body, key []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadSignatureHeader
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrBadSignatureHeader
			}
			sigs = append(sigs, sig)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignatureHeader
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now", ErrSignatureExpired, time.Unix(unix, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	want := mac(key, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
