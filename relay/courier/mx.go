package courier

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"
)

// Resolver looks up mail exchangers and addresses; *net.Resolver is one.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Router delivers without a next hop: each recipient domain goes to its mail exchangers, tried
// in preference order, or to the domain itself when it has none (RFC 5321 implicit MX).
type Router struct {
	Resolver Resolver // nil: net.DefaultResolver
	Port     string   // SMTP port of the exchangers (default 25)
	Helo     string
	Timeout  time.Duration
}

// Deliver sends one message to every recipient's domain and returns one result per recipient,
// each with the exchanger that answered.
func (rt *Router) Deliver(ctx context.Context, from string, rcpts []string, body *io.SectionReader) []Result {
	res := make([]Result, len(rcpts))
	byDomain := map[string][]int{}
	var order []string
	for i, r := range rcpts {
		_, d, ok := strings.Cut(r, "@")
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if !ok || d == "" {
			res[i] = Result{Reply: "550 5.1.3 bad recipient address syntax"}
			continue
		}
		if _, seen := byDomain[d]; !seen {
			order = append(order, d)
		}
		byDomain[d] = append(byDomain[d], i)
	}
	for _, d := range order {
		idx := byDomain[d]
		hosts, fail := rt.exchangers(ctx, d)
		if fail != nil {
			for _, i := range idx {
				res[i] = *fail
			}
			continue
		}
		sub := make([]string, len(idx))
		for j, i := range idx {
			sub[j] = rcpts[i]
		}
		var out []Result
		for _, h := range hosts {
			k := Courier{NextHop: net.JoinHostPort(h, rt.port()), Helo: rt.Helo, Timeout: rt.Timeout}
			out = k.Deliver(ctx, from, sub, io.NewSectionReader(body, 0, body.Size()))
			k.Close()
			if !unreachable(out) {
				break
			}
		}
		for j, i := range idx {
			res[i] = out[j]
		}
	}
	return res
}

// Close does nothing: a Router keeps no connection between messages.
func (rt *Router) Close() {}

func (rt *Router) port() string {
	if rt.Port == "" {
		return "25"
	}
	return rt.Port
}

// exchangers returns the hosts to try for domain, best first, or the failure for all its
// recipients.
func (rt *Router) exchangers(ctx context.Context, domain string) ([]string, *Result) {
	r := rt.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	mxs, err := r.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) > 0:
		var hosts []string
		for _, mx := range mxs {
			h := strings.TrimSuffix(mx.Host, ".")
			if h == "" { // null MX (RFC 7505): the domain accepts no mail
				return nil, &Result{Reply: "556 5.1.10 domain " + domain + " accepts no mail (null MX)"}
			}
			hosts = append(hosts, h)
		}
		return hosts, nil
	case err == nil, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// No MX: the domain's own address records, if it has any, receive its mail.
		_, herr := r.LookupHost(ctx, domain)
		if herr == nil {
			return []string{domain}, nil
		}
		if errors.As(herr, &dnsErr) && dnsErr.IsNotFound {
			return nil, &Result{Reply: "550 5.1.2 domain " + domain + " has no mail exchanger and no address"}
		}
		return nil, &Result{Temporary: true, Reply: "451 4.4.3 cannot look up " + domain + ": " + herr.Error()}
	default:
		return nil, &Result{Temporary: true, Reply: "451 4.4.3 cannot look up " + domain + ": " + err.Error()}
	}
}

// unreachable reports whether a delivery failed only because the host could not be reached,
// so the next exchanger is worth a try.
func unreachable(out []Result) bool {
	for _, r := range out {
		if r.OK || !r.Temporary || (len(r.Reply) >= 3 && r.Reply[0] == '4' && r.Reply[1] >= '0' && r.Reply[1] <= '9') {
			return false
		}
	}
	return true
}
