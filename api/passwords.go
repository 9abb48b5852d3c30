package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is the work factor of new password hashes: bcrypt's default, tens of
// milliseconds per check, which is what makes guessing slow.
const bcryptCost = 10

func hashPassword(password string) (string, error) {
	// bcrypt reads at most 72 bytes; longer passwords are refused by the library.
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// checkPassword verifies password against a bcrypt hash or the original's werkzeug form
// sha1$<salt>$<hex> (HMAC-SHA1 keyed by the salt, §3.4). legacy reports the latter, so the
// caller can upgrade the stored hash.
func checkPassword(hash, password string) (ok, legacy bool) {
	if rest, isLegacy := strings.CutPrefix(hash, "sha1$"); isLegacy {
		salt, want, found := strings.Cut(rest, "$")
		if !found {
			return false, true
		}
		m := hmac.New(sha1.New, []byte(salt))
		m.Write([]byte(password))
		got := hex.EncodeToString(m.Sum(nil))
		return hmac.Equal([]byte(got), []byte(want)), true
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, false
}
