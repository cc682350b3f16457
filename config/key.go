package config

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 512

// ValidateKey reports whether key may name a rate-limit bucket: 1 to 512 bytes of valid UTF-8
// without '{', '}' (they would break the Redis Cluster hash tag) or control characters.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key is %d bytes, at most %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidKey, key)
	}
	for _, r := range key {
		if r == '{' || r == '}' {
			return fmt.Errorf("%w: key %q contains %q", ErrInvalidKey, key, r)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: key %q contains control character %U", ErrInvalidKey, key, r)
		}
	}
	return nil
}

// Group is the part of key before its first ':', or the whole key when it has none.
func Group(key string) string {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return key[:i]
	}
	return key
}
