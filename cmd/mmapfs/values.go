package main

import (
	"errors"
	"fmt"
	"math/big"
	"os/user"
	"strconv"
	"strings"
)

// The values of options: sizes and counts with their suffixes, modes, and
// owners by number or name.

// sizeUnits are the suffixes of sizes and counts. All are powers of 1024,
// as tmpfs has them; "KiB" and "KB" are accepted for "k" too.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60,
}

// parseQuantity parses a non-negative number with an optional fraction and
// a binary suffix (k, M, GiB, ...): "64m", "1.5G", "4096".
func parseQuantity(s string) (uint64, error) {
	n, _, err := parseQuantityExact(s)
	return n, err
}

// parseQuantityExact is parseQuantity, also reporting whether the value
// was a whole number (1.5k is; 1.5 is not).
func parseQuantityExact(s string) (uint64, bool, error) {
	if s == "" {
		return 0, false, errors.New("empty value")
	}
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	num, suffix := s[:end], strings.ToLower(s[end:])
	if num == "" || strings.Count(num, ".") > 1 || num == "." {
		return 0, false, errors.New("not a number")
	}
	if len(suffix) > 1 {
		// "KiB", "kb": both mean "k".
		switch suffix[1:] {
		case "b", "ib":
			suffix = suffix[:1]
		default:
			suffix = "?"
		}
	}
	mult, ok := sizeUnits[suffix]
	if !ok || (suffix == "b" && len(s)-end > 1) {
		return 0, false, fmt.Errorf("unknown suffix %q (use k, m, g, t, p or e, powers of 1024)", s[end:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, false, errors.New("not a number")
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsUint64() || n.Uint64() > 1<<63-1 {
		return 0, false, errors.New("too large")
	}
	return n.Uint64(), r.IsInt(), nil
}

// parseSize parses size=: bytes with a suffix, or a percentage of RAM
// ("50%"). The result is rounded up to whole pages, as tmpfs does; 0 means
// no limit.
func parseSize(s string, env sysEnv) (int64, error) {
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseUint(pct, 10, 32)
		if err != nil {
			return 0, errors.New("want a whole percentage of RAM, such as 50%")
		}
		return percentOfRAM(p, env)
	}
	n, err := parseQuantity(s)
	if err != nil {
		return 0, err
	}
	return roundPages(n, env.PageSize)
}

func percentOfRAM(pct uint64, env sysEnv) (int64, error) {
	n := new(big.Int).SetUint64(env.RAM)
	n.Mul(n, new(big.Int).SetUint64(pct))
	n.Quo(n, big.NewInt(100))
	if !n.IsUint64() {
		return 0, errors.New("too large")
	}
	return roundPages(n.Uint64(), env.PageSize)
}

func roundPages(n uint64, pageSize int64) (int64, error) {
	ps := uint64(pageSize)
	if ps == 0 {
		ps = 4096
	}
	if n > 1<<63-1-ps {
		return 0, errors.New("too large")
	}
	return int64((n + ps - 1) / ps * ps), nil
}

// parseCount parses inodes=: a count with an optional k, m, g suffix
// (powers of 1024, as tmpfs has them); 0 means no limit.
func parseCount(s string) (uint64, error) {
	n, whole, err := parseQuantityExact(s)
	if err == nil && !whole {
		return 0, errors.New("not a whole number")
	}
	return n, err
}

// parseMode parses mode=: octal permission bits, 07777 at most.
func parseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, errors.New("want octal permission bits such as 1777 or 0755")
	}
	return uint32(m), nil
}

// parseID parses uid= or gid=: a number or, for convenience, a name.
func parseID(s string, group bool) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if n == 1<<32-1 {
			return 0, errors.New("invalid id")
		}
		return uint32(n), nil
	}
	var idStr string
	if group {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, errors.New("no such group")
		}
		idStr = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, errors.New("no such user")
		}
		idStr = u.Uid
	}
	n, err := strconv.ParseUint(idStr, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("non-numeric id %q", idStr)
	}
	return uint32(n), nil
}
