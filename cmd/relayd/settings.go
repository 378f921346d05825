package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"relayfix/internal/exitcode"
	"relayfix/internal/flagfile"
)

// settings checks the values of a command's flags once the command line and ROOT/relayd.json
// have both been read: a value out of range is refused, never replaced by a default, and the
// error names the setting where the operator wrote it (the flag, or the file's key). The first
// mistake found is kept; later checks are skipped.
type settings struct {
	flags *pflag.FlagSet
	err   error
}

func (s *settings) fail(name, format string, args ...any) {
	if s.err == nil {
		s.err = exitcode.Usagef("%s: %s", flagfile.Name(s.flags, name), fmt.Sprintf(format, args...))
	}
}

// atLeast refuses an integer setting below least.
func (s *settings) atLeast(name string, v, least int64) {
	if v < least {
		s.fail(name, "must be at least %d, not %d", least, v)
	}
}

// positive refuses a duration that is zero or negative.
func (s *settings) positive(name string, d time.Duration) {
	if d <= 0 {
		s.fail(name, "must be longer than 0, not %s", d)
	}
}

// notBelow refuses a duration shorter than the setting named lower, whose value is low.
func (s *settings) notBelow(name string, d time.Duration, lower string, low time.Duration) {
	if d < low {
		s.fail(name, "%s is shorter than %s (%s)", d, flagfile.Name(s.flags, lower), low)
	}
}

// address refuses anything but host:port with a numeric port; with remote the host must be
// given and the port must not be 0.
func (s *settings) address(name, v string, remote bool) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		s.fail(name, "%q is not host:port (%s)", v, strings.TrimPrefix(err.Error(), "address "+v+": "))
		return
	}
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil:
		s.fail(name, "%q: port %q is not a number from 0 to 65535", v, port)
	case remote && host == "":
		s.fail(name, "%q: no host", v)
	case remote && n == 0:
		s.fail(name, "%q: port 0 is no destination", v)
	}
}

// prefixes parses a list of CIDRs (a bare address is a single host).
func (s *settings) prefixes(name string, list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range list {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, ierr := netip.ParseAddr(a)
			if ierr != nil {
				s.fail(name, "%q is not a network such as 10.0.0.0/8", a)
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}
