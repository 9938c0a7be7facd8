package metrics

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// defaultHost is where a port given alone listens: the figures of a server
// are for its own machine unless the address says otherwise.
const defaultHost = "127.0.0.1"

// ParseAddr checks the address of --metrics and returns the one to listen
// on: PORT and :PORT mean 127.0.0.1:PORT, HOST:PORT and [IPv6]:PORT are
// taken as given. The port is a number, 0 for any free port. portOnly says
// that no host was given.
func ParseAddr(addr string) (hostport string, portOnly bool, err error) {
	if addr == "" {
		return "", false, errors.New("empty (want PORT, HOST:PORT or [IPv6]:PORT)")
	}
	host, port := "", addr
	if !isDigits(addr) {
		host, port, err = net.SplitHostPort(addr)
		if err != nil {
			if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
				return "", false, errors.New("an IPv6 address needs brackets, as in [::1]:9100")
			}
			return "", false, errors.New("want PORT, HOST:PORT or [IPv6]:PORT")
		}
	}
	if port == "" {
		return "", false, errors.New("no port (want PORT, HOST:PORT or [IPv6]:PORT)")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || !isDigits(port) {
		return "", false, errors.New("the port must be a number from 0 to 65535")
	}
	port = strconv.FormatUint(n, 10) // 09100 is 9100
	if host == "" {
		return net.JoinHostPort(defaultHost, port), true, nil
	}
	return net.JoinHostPort(host, port), false, nil
}

// isDigits reports whether s is one or more decimal digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// reach says, for the log, who can reach a listener on a: this machine
// alone, or the network.
func reach(a net.Addr, portOnly bool) string {
	tcp, ok := a.(*net.TCPAddr)
	switch {
	case !ok:
		return ""
	case tcp.IP.IsLoopback() && portOnly:
		return fmt.Sprintf("loopback only (give a host, as in 0.0.0.0:%d, to serve the network)", tcp.Port)
	case tcp.IP.IsLoopback():
		return "loopback only"
	case tcp.IP.IsUnspecified():
		return "reachable from the network, on every interface"
	}
	return "reachable from the network"
}
