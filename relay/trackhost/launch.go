package trackhost

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"relayfix/internal/layout"
	"relayfix/relay/track"
	"relayfix/relay/trackrpc"
)

// launcher starts plugin processes: it checks the binary, runs it with hashicorp/go-plugin and
// waits for its handshake, version and health.
type launcher struct {
	root   layout.Root
	binary string
	check  *checker
	log    *slog.Logger
	stderr io.Writer
	src    atomic.Pointer[sourceBox] // the relay's message source, for protocol 1 plugins
	wg     *sync.WaitGroup           // the host's: each process has a watcher
}

type sourceBox struct{ src track.MessageSource }

func newLauncher(opts Options, log *slog.Logger, wg *sync.WaitGroup) *launcher {
	l := &launcher{root: opts.Root, binary: opts.Config.Binary, log: log, stderr: opts.PluginStderr, wg: wg}
	if l.binary == "" {
		l.binary = opts.Root.Bin("msgtrack")
	}
	if l.stderr == nil {
		l.stderr = io.Discard
	}
	l.check = &checker{binary: l.binary, expected: opts.Config.ExpectedSum, unverified: opts.Config.Unverified}
	return l
}

// build identifies the installed binary by its checksum ("" when it cannot be read): an
// escalation is taken once per build.
func (l *launcher) build() string {
	sum, err := l.check.sums.checksum(l.binary)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sum)
}

func (l *launcher) setSource(src track.MessageSource) { l.src.Store(&sourceBox{src}) }

// start runs the installed binary and waits for its handshake and version.
func (l *launcher) start(ctx context.Context) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want, note, err := l.check.verify()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(l.binary)
	cmd.Env = append(hostEnv(), layout.EnvRoot+"="+string(l.root))
	setPdeathsig(cmd)
	p := &proc{dead: make(chan struct{}), note: note, stderr: &stderrTail{copy: l.stderr}}
	p.src = &sourceWatch{src: &l.src}
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  trackrpc.Handshake,
		VersionedPlugins: trackrpc.Sets(p.src, nil, 1, 2),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "msgtrack", Level: hclog.Info, JSONFormat: true,
			Output: slogWriter{l.log}}),
		Stderr:       p.stderr,
		SkipHostEnv:  true,
		StartTimeout: 10 * time.Second,
	}
	if want != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	p.client = plugin.NewClient(cfg)
	if err := p.handshake(); err != nil {
		p.client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("%w (changed while starting)", ErrChecksum)
		}
		return nil, fmt.Errorf("start %s: %w", l.binary, err)
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now().UTC()
	l.wg.Add(1)
	go func() { defer l.wg.Done(); p.watch() }()
	return p, nil
}

// handshake connects to the started process and asks for its version and health.
func (p *proc) handshake() error {
	rc, err := p.client.Client()
	if err != nil {
		return err
	}
	raw, err := rc.Dispense(trackrpc.PluginName)
	if err != nil {
		return err
	}
	t, ok := raw.(*trackrpc.RPCClient)
	if !ok {
		return fmt.Errorf("unexpected plugin type %T", raw)
	}
	p.t, p.protocol = t, t.Protocol()
	if p.version, err = t.Version(); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if err := t.Health(); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

// hostEnv is relayd's environment without RELAYFIX_ROOT, which start sets for the plugin.
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, layout.EnvRoot+"=") {
			env = append(env, kv)
		}
	}
	return env
}
