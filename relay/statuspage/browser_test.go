package statuspage_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/html"

	"relayfix/internal/relaytest"
	"relayfix/internal/smtpload"
	"relayfix/internal/stamp"
	"relayfix/packages/store"
	"relayfix/relay/control"
	"relayfix/relay/tracklog"
)

var (
	screenshot        = flag.String("screenshot", "", "also write the screenshot of the status page under load to this file (docs/status.png)")
	screenshotCrashes = flag.String("screenshot-crashes", "", "also write a screenshot of the page with tracking crash-looping to this file")
)

var bins relaytest.Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	relaytest.Main(m, &bins, relaytest.RelaydProgram, relaytest.TrackFixedProgram, relaytest.TrackPrefixProgram)
}

// Subjects of messages that try to run script on the page.
const (
	xssAlert = "<script>alert(1)</script>"
	xssMark  = "<script>document.body.setAttribute('data-pwned','1')</script>"
)

// deferFrom is the first sequence number the next hop defers: those messages stay queued.
const deferFrom = 1000

// TestStatusPageInBrowser loads the status page of a real relayd in headless Chromium and reads
// the rendered DOM: the installed versions, the queue depth, a restart pending after the
// installed tracking build changed under the running one, and message subjects that try to run
// script shown as text.
func TestStatusPageInBrowser(t *testing.T) {
	chromium := relaytest.Tool(t, "chromium", "chromium")
	root := relaytest.ShortRoot(t)
	relaydRow := relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: stamp.RelaydVersion, Package: "SP2"}
	relaytest.Install(t, root, stamp.ProductVersion, 2, relaydRow,
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: stamp.TrackFixedVersion, Package: "KB910618", Src: bins.TrackFixed})
	now := time.Now().UTC()
	relaytest.AppendHistory(t, root,
		store.HistoryEntry{ID: "T1", Package: "SP2", Action: "apply", Result: store.ResultCommitted, Start: now.Add(-2 * time.Hour), End: now.Add(-2 * time.Hour)},
		store.HistoryEntry{ID: "T2", Package: "KB910618", Action: "apply", Result: store.ResultCommitted, Start: now.Add(-time.Hour), End: now.Add(-time.Hour), Detail: "tracking restarted live"})

	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() }) // after relayd has stopped: cleanups run last first
	sink.SetReply(func(seq int) error {
		if seq >= deferFrom {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "next hop busy, try later"}
		}
		return nil
	})
	r := relaytest.StartRelayd(t, bins.Relayd, root, sink.Addr(), "--metrics-listen", "127.0.0.1:0", "--retry-base", "1h")
	url := "http://" + r.HTTPAddr() + "/"
	relaytest.WaitFor(t, time.Minute, "tracking healthy", func() bool {
		st, err := r.Ctl.Status(t.Context())
		return err == nil && len(st.Components) == 1 && st.Components[0].Health == control.HealthHealthy
	})

	const deferred = 7
	res, err := smtpload.Load(t.Context(), smtpload.LoadOptions{Addr: r.Addr, N: deferred, FirstSeq: deferFrom, Duration: time.Minute})
	if err != nil || res.Acked != deferred {
		t.Fatalf("load: %v %+v", err, res)
	}
	for i, subject := range []string{xssAlert, xssMark} {
		msg := fmt.Sprintf("From: <a@example.test>\r\nTo: <b@example.test>\r\nSubject: %s\r\nMessage-ID: <xss%d@example.test>\r\n%s: %d\r\n\r\nhello\r\n",
			subject, i, smtpload.SeqHeader, i+1)
		c, err := smtp.Dial(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("a@example.test", []string{"b@example.test"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		c.Quit()
	}
	relaytest.WaitFor(t, time.Minute, "the deferred messages tried once and the subjects in the tracking log", func() bool {
		recs, err := tracklog.Search(root.TrackingLog(), tracklog.Query{MessageID: "<xss1@example.test>"})
		if err != nil || len(recs) == 0 {
			return false
		}
		st, err := r.Ctl.Status(t.Context())
		return err == nil && st.QueueDepth == deferred && st.Counters["deferred"] >= deferred
	})

	// hotfix rolled the tracking files back while the relay kept the fixed build running: the
	// installed file is now the service pack's build, and a restart is pending.
	relaytest.Install(t, root, stamp.ProductVersion, 2, relaydRow,
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: stamp.TrackPrefixVersion, Package: "SP2", Src: bins.TrackPrefix})

	dom := dumpDOM(t, chromium, url)
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what string
		got  string
		want string
	}{
		{"product version", text(byID(doc, "product-version")), stamp.ProductVersion},
		{"service pack", text(byID(doc, "service-pack")), "Service Pack 2"},
		{"queue depth", text(byID(doc, "queue-depth")), fmt.Sprint(deferred)},
		{"relayd installed version", text(byAttr(doc, "data-path", "bin/relayd", "file-version")), stamp.RelaydVersion},
		{"msgtrack installed version", text(byAttr(doc, "data-path", "bin/msgtrack", "file-version")), stamp.TrackPrefixVersion},
		{"tracking row", text(byAttr(doc, "data-component", "tracking", "")), "restart pending"},
		{"relayd row", text(byAttr(doc, "data-component", "relayd", "")), "up to date"},
		{"banner", text(byID(doc, "restart-pending")), "Restart pending: tracking"},
		{"tracking records", text(byID(doc, "tracking-records")), xssAlert},
	}
	for _, c := range checks {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: rendered %q, want it to contain %q", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(text(byAttr(doc, "data-component", "tracking", "")), stamp.TrackFixedVersion) {
		t.Errorf("tracking row does not show the running build %s", stamp.TrackFixedVersion)
	}
	// The subjects are text: no script element anywhere in the page, and the one that would
	// have marked the body did not run.
	var scripts []string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "script" {
			scripts = append(scripts, text(n))
		}
		if n.Type == html.ElementNode && n.Data == "body" && attr(n, "data-pwned") != "" {
			t.Errorf("a subject's script ran: body has data-pwned")
		}
	})
	if len(scripts) != 0 {
		t.Errorf("the page holds script elements: %q", scripts)
	}
	// Usable on a phone, and it refreshes itself without script.
	var viewport, refresh string
	walk(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "meta" {
			if attr(n, "name") == "viewport" {
				viewport = attr(n, "content")
			}
			if strings.EqualFold(attr(n, "http-equiv"), "refresh") {
				refresh = attr(n, "content")
			}
		}
	})
	if !strings.Contains(viewport, "width=device-width") || refresh == "" {
		t.Errorf("viewport %q, refresh %q", viewport, refresh)
	}
	if !strings.Contains(text(byID(doc, "tracking-records")), xssMark) {
		t.Errorf("the second subject is not shown as text")
	}

	// The screenshot, under load: messages keep flowing while the browser renders the page.
	ctx, cancel := context.WithCancel(t.Context())
	loaded := make(chan error, 1)
	go func() {
		_, err := smtpload.Load(ctx, smtpload.LoadOptions{Addr: r.Addr, N: 20000, Concurrency: 8, Rate: 400, FirstSeq: 10, Duration: 30 * time.Second})
		loaded <- err
	}()
	relaytest.WaitFor(t, time.Minute, "load under way", func() bool { return sink.Count() > 200 })
	png := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, chromium, "--screenshot="+png, "--window-size=1280,1400", url)
	cancel()
	<-loaded
	b, err := os.ReadFile(png)
	if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(b))
	}
	if *screenshot != "" {
		if err := os.WriteFile(*screenshot, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	return runChromium(t, chromium, "--dump-dom", url)
}

// runChromium runs headless Chromium with nothing that talks to the network beyond url.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return class == "" || strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

func byID(doc *html.Node, id string) *html.Node { return byAttr(doc, "id", id, "") }

// byAttr returns the first element with attribute key=val, or, with class set, the first element
// of that class inside it.
func byAttr(doc *html.Node, key, val, class string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if found == nil && n.Type == html.ElementNode && attr(n, key) == val {
			found = n
		}
	})
	if found == nil || class == "" {
		return found
	}
	var inner *html.Node
	walk(found, func(n *html.Node) {
		if inner == nil && n.Type == html.ElementNode && hasClass(n, class) {
			inner = n
		}
	})
	return inner
}

// text returns the text content of n, as the browser shows it.
func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

// TestStatusPageShowsCrashes runs the service pack's tracking build, which has the KB 910618
// defect, under load until it has crashed, and finds the crash's signature on the page.
func TestStatusPageShowsCrashes(t *testing.T) {
	chromium := relaytest.Tool(t, "chromium", "chromium")
	root := relaytest.ShortRoot(t)
	relaytest.Install(t, root, stamp.ProductVersion, 2,
		relaytest.Installed{Name: "relayd", Path: "bin/relayd", Version: stamp.RelaydVersion, Package: "SP2"},
		relaytest.Installed{Name: "msgtrack", Path: "bin/msgtrack", Component: "tracking", Version: stamp.TrackPrefixVersion, Package: "SP2", Src: bins.TrackPrefix})
	sink, err := smtpload.NewSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	const kbSig = "nil pointer dereference in relayfix/relay/trackplugin.recordsFor"
	relaytest.OfferFix(t, root, "http://127.0.0.1:1/repo", "KB910618", "tracking", kbSig)
	r := relaytest.StartRelayd(t, bins.Relayd, root, sink.Addr(), "--metrics-listen", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(t.Context())
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		smtpload.Load(ctx, smtpload.LoadOptions{Addr: r.Addr, N: 20000, Concurrency: 8, Duration: 45 * time.Second})
	}()
	var sig string
	relaytest.WaitFor(t, 50*time.Second, "a recorded tracking crash", func() bool {
		st, err := r.Ctl.Status(t.Context())
		if err != nil || len(st.Components) != 1 || len(st.Components[0].CrashSignatures) == 0 {
			return false
		}
		sig = st.Components[0].CrashSignatures[0].Signature
		return true
	})
	cancel()
	<-loaded
	doc, err := html.Parse(strings.NewReader(dumpDOM(t, chromium, "http://"+r.HTTPAddr()+"/")))
	if err != nil {
		t.Fatal(err)
	}
	got := text(byID(doc, "crash-signatures"))
	if !strings.Contains(got, sig) || !strings.Contains(got, "recordsFor") || !strings.Contains(got, stamp.TrackPrefixVersion) {
		t.Fatalf("crash table %q, want the signature %q of build %s", got, sig, stamp.TrackPrefixVersion)
	}
	if sig == kbSig && !strings.Contains(got, "A solution is available: KB910618") {
		t.Errorf("crash table %q does not name the fix a repository offers", got)
	}
	if n, err := strconv.Atoi(text(byID(doc, "tracking-crashes"))); err != nil || n < 1 {
		t.Errorf("crash count %q", text(byID(doc, "tracking-crashes")))
	}
	if *screenshotCrashes != "" {
		runChromium(t, chromium, "--screenshot="+*screenshotCrashes, "--window-size=1280,1000", "http://"+r.HTTPAddr()+"/")
	}
}
