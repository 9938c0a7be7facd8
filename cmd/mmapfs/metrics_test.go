package main

import (
	"errors"
	"strings"
	"testing"
)

// --metrics and -o metrics= take the same addresses; metrics are off
// without them; a malformed address is a usage error (exit status 2).
func TestMetricsOption(t *testing.T) {
	o, err := parseMountArgs([]string{"/mnt"}, testEnv)
	if err != nil || o.Metrics != "" {
		t.Fatalf("default: %q, %v; want no metrics", o.Metrics, err)
	}
	for _, args := range [][]string{
		{"--metrics", "9100", "/mnt"},
		{"--metrics=9100", "/mnt"},
		{"-o", "metrics=9100", "/mnt"},
		{"mmapfs", "/mnt", "-o", "rw,metrics=9100"},
	} {
		o, err := parseMountArgs(args, testEnv)
		if err != nil || o.Metrics != "9100" {
			t.Errorf("%q: %+v, %v; want metrics 9100", args, o, err)
		}
	}
	o, err = parseMountArgs([]string{"-o", "metrics=[::1]:9100", "/mnt"}, testEnv)
	if err != nil || o.Metrics != "[::1]:9100" {
		t.Errorf("-o metrics=[::1]:9100: %q, %v", o.Metrics, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics", "localhost", "/mnt"}, `invalid value "localhost" for --metrics: want PORT, HOST:PORT or [IPv6]:PORT`},
		{[]string{"-o", "metrics=99999", "/mnt"}, "invalid mount option metrics=99999: the port must be a number from 0 to 65535"},
		{[]string{"-o", "metrics=", "/mnt"}, "invalid mount option metrics=: empty"},
		{[]string{"--metrics", "::1:9100", "/mnt"}, "an IPv6 address needs brackets"},
	} {
		_, err := parseMountArgs(c.args, testEnv)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}
