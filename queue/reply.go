package queue

import (
	"fmt"
	"strconv"
)

// Checked conversions of Lua replies: a malformed reply is an error, never a panic.

func replyInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want integer, got %q", x)
		}
		return n, nil
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("want integer, got %T", v)
}

func replySlice(v any, min int) ([]any, error) {
	s, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want array, got %T", v)
	}
	if len(s) < min {
		return nil, fmt.Errorf("want at least %d elements, got %d", min, len(s))
	}
	return s, nil
}

func replyInts(s []any) ([]int64, error) {
	out := make([]int64, len(s))
	for i, v := range s {
		n, err := replyInt(v)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = n
	}
	return out, nil
}

func replyBytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("want string, got %T", v)
}

func replyByteList(v any) ([][]byte, error) {
	s, err := replySlice(v, 0)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(s))
	for i, e := range s {
		if out[i], err = replyBytes(e); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return out, nil
}
