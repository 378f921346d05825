// Package lazyfs is a FUSE file system for power-cut tests: it shows a backing directory, keeps
// every change in memory and writes a change to the backing directory only once it is durable
// under the strict POSIX model. A file's data (its content, size, mode and times) becomes
// durable when that file is fsynced; a directory's entries (creations, renames, unlinks, mkdirs)
// become durable when that directory is fsynced. Cut then drops everything that is not durable:
// the backing directory is what a machine would find after a power loss.
//
// The model is kept whole in memory rather than as an overlay on the backing directory because
// the durable state is not a prefix of the operations: a file may be fsynced while its name is
// not, a rename may be durable in its new directory and not yet in its old one. Holding the
// volatile tree (what processes see) and, per node, the durable data and the durable entries
// (what the backing directory holds), makes each rule one assignment at fsync time and the
// backing directory a rendering of the durable tree. One lock guards the whole model: the file
// system is for tests, and one lock keeps every fsync atomic with respect to a cut.
//
// It is stricter than ext4 in its default mode, which also commits a new file's name when the
// file is fsynced: software that passes here survives any POSIX file system.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is one mounted instance over a backing directory.
type FS struct {
	backing string

	mu   sync.Mutex
	cut  bool
	root *node
}

// node is a file, directory or socket. What processes see is data/mode/mtime and, for a
// directory, kids; what the backing directory holds is the dur* fields.
type node struct {
	gofs.Inode
	fsys *FS

	mode  uint32 // type and permission bits
	mtime time.Time
	data  []byte
	// dirtyFrom is the lowest offset of data changed since the last fsync: the part of the
	// file an fsync has to copy and write.
	dirtyFrom int64
	kids      map[string]*node

	durMode  uint32
	durMtime time.Time
	durData  []byte
	durKids  map[string]*node
}

// Mounted is a mounted FS.
type Mounted struct {
	FS     *FS
	server *fuse.Server
	dir    string
}

// Mount loads backing into memory and mounts a view of it on mountpoint. Root is needed (the
// mount is made directly, without fusermount). The calling process serves the mount, so it must
// not exec a file on it directly: Go execs through vfork, and a garbage collection that begins
// while the child waits for the mount waits for the forking thread, so neither goes on. Exec
// such a file through a program outside the mount (a shell) instead.
func Mount(backing, mountpoint string) (*Mounted, error) {
	f := &FS{backing: backing}
	root, err := f.load(backing)
	if err != nil {
		return nil, err
	}
	f.root = root
	zero := time.Duration(0)
	srv, err := gofs.Mount(mountpoint, root, &gofs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			AllowOther:        true,
			MaxWrite:          1 << 20,
		},
		// The model is the only source of truth; the kernel must not answer from stale caches
		// after a rename or unlink made through another path.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	})
	if err != nil {
		return nil, fmt.Errorf("mount lazyfs on %s: %w", mountpoint, err)
	}
	return &Mounted{FS: f, server: srv, dir: mountpoint}, nil
}

// Cut is the power loss: from now on every operation fails with EIO and nothing more reaches
// the backing directory, whatever a process still holding the mount does.
func (f *FS) Cut() {
	f.mu.Lock()
	f.cut = true
	f.mu.Unlock()
}

// Unmount unmounts, lazily if a process still holds the mount, and waits for the server.
func (m *Mounted) Unmount() error {
	err := m.server.Unmount()
	if err != nil {
		if derr := syscall.Unmount(m.dir, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmount %s: %w (detach: %v)", m.dir, err, derr)
		}
	}
	m.server.Wait()
	return nil
}

// load builds the model from what backing holds; volatile and durable start equal.
func (f *FS) load(path string) (*node, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("lazyfs load: %w", err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	n := &node{fsys: f, mode: sys.Mode, mtime: st.ModTime()}
	switch st.Mode().Type() {
	case fs.ModeDir:
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("lazyfs load: %w", err)
		}
		n.kids = make(map[string]*node, len(ents))
		for _, e := range ents {
			c, err := f.load(filepath.Join(path, e.Name()))
			if err != nil {
				return nil, err
			}
			if c != nil {
				n.kids[e.Name()] = c
			}
		}
		n.durKids = maps(n.kids)
	case 0:
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("lazyfs load: %w", err)
		}
		n.data, n.durData = b, slices.Clone(b)
	case fs.ModeSocket:
	default:
		return nil, nil // symlinks and devices are not modelled; a test root has none
	}
	n.durMode, n.durMtime = n.mode, n.mtime
	n.dirtyFrom = int64(len(n.data))
	return n, nil
}

func maps(m map[string]*node) map[string]*node {
	c := make(map[string]*node, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (n *node) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }

// OnAdd adds the loaded tree to the kernel-visible tree.
func (n *node) OnAdd(ctx context.Context) {
	if n != n.fsys.root {
		return
	}
	var add func(p *node)
	add = func(p *node) {
		for name, c := range p.kids {
			ch := p.NewPersistentInode(ctx, c, gofs.StableAttr{Mode: c.mode & syscall.S_IFMT})
			p.AddChild(name, ch, false)
			add(c)
		}
	}
	add(n)
}

var (
	_ gofs.NodeGetattrer = (*node)(nil)
	_ gofs.NodeSetattrer = (*node)(nil)
	_ gofs.NodeOpener    = (*node)(nil)
	_ gofs.NodeReader    = (*node)(nil)
	_ gofs.NodeWriter    = (*node)(nil)
	_ gofs.NodeFsyncer   = (*node)(nil)
	_ gofs.NodeFlusher   = (*node)(nil)
	_ gofs.NodeCreater   = (*node)(nil)
	_ gofs.NodeMkdirer   = (*node)(nil)
	_ gofs.NodeMknoder   = (*node)(nil)
	_ gofs.NodeUnlinker  = (*node)(nil)
	_ gofs.NodeRmdirer   = (*node)(nil)
	_ gofs.NodeRenamer   = (*node)(nil)
	_ gofs.NodeStatfser  = (*node)(nil)
	_ gofs.NodeAllocater = (*node)(nil)
)

// lock takes the model's lock and reports EIO once the power is cut.
func (n *node) lock() syscall.Errno {
	n.fsys.mu.Lock()
	if n.fsys.cut {
		n.fsys.mu.Unlock()
		return syscall.EIO
	}
	return 0
}

func (n *node) unlock() { n.fsys.mu.Unlock() }

func (n *node) fill(out *fuse.Attr) {
	out.Mode = n.mode
	out.Size = uint64(len(n.data))
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	if n.isDir() {
		out.Nlink = 2
	}
	out.SetTimes(nil, &n.mtime, &n.mtime)
}

func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	n.fill(&out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	if sz, ok := in.GetSize(); ok {
		n.resize(int64(sz))
		n.mtime = time.Now()
	}
	if m, ok := in.GetMode(); ok {
		n.mode = n.mode&syscall.S_IFMT | m&07777
	}
	if mt, ok := in.GetMTime(); ok {
		n.mtime = mt
	}
	n.fill(&out.Attr)
	return 0
}

func (n *node) resize(sz int64) {
	if sz < int64(len(n.data)) {
		n.data = n.data[:sz]
	} else {
		n.data = append(n.data, make([]byte, sz-int64(len(n.data)))...)
	}
	n.dirtyFrom = min(n.dirtyFrom, sz)
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, 0, e
	}
	defer n.unlock()
	if flags&syscall.O_TRUNC != 0 {
		n.resize(0)
		n.mtime = time.Now()
	}
	return nil, 0, 0
}

func (n *node) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.unlock()
	off = min(off, int64(len(n.data)))
	end := min(off+int64(len(dest)), int64(len(n.data)))
	return fuse.ReadResultData(slices.Clone(n.data[off:end])), 0
}

func (n *node) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return 0, e
	}
	defer n.unlock()
	if end := off + int64(len(data)); end > int64(len(n.data)) {
		n.resize(end)
	}
	copy(n.data[off:], data)
	n.dirtyFrom = min(n.dirtyFrom, off)
	n.mtime = time.Now()
	return uint32(len(data)), 0
}

func (n *node) Allocate(ctx context.Context, fh gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	if mode&1 == 0 { // not FALLOC_FL_KEEP_SIZE
		if end := int64(off + size); end > int64(len(n.data)) {
			n.resize(end)
		}
	}
	return 0
}

func (n *node) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return 0 }

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.fsys.backing, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

// newChild makes a node for a new name in n; the name is volatile until n is fsynced, and
// the node starts durable as empty (a name made durable before the data is an empty file).
func (n *node) newChild(ctx context.Context, name string, mode uint32) (*node, *gofs.Inode, syscall.Errno) {
	if _, ok := n.kids[name]; ok {
		return nil, nil, syscall.EEXIST
	}
	now := time.Now()
	c := &node{fsys: n.fsys, mode: mode, mtime: now, durMode: mode, durMtime: now}
	if c.isDir() {
		c.kids, c.durKids = map[string]*node{}, map[string]*node{}
	}
	n.kids[name] = c
	n.mtime = now
	return c, n.NewPersistentInode(ctx, c, gofs.StableAttr{Mode: mode & syscall.S_IFMT}), 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, nil, 0, e
	}
	defer n.unlock()
	c, ch, e := n.newChild(ctx, name, syscall.S_IFREG|mode&07777)
	if e != 0 {
		return nil, nil, 0, e
	}
	c.fill(&out.Attr)
	return ch, nil, 0, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.unlock()
	c, ch, e := n.newChild(ctx, name, syscall.S_IFDIR|mode&07777)
	if e != 0 {
		return nil, e
	}
	c.fill(&out.Attr)
	return ch, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.lock(); e != 0 {
		return nil, e
	}
	defer n.unlock()
	if mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, syscall.ENOTSUP
	}
	c, ch, e := n.newChild(ctx, name, mode)
	if e != 0 {
		return nil, e
	}
	c.fill(&out.Attr)
	return ch, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return n.remove(name, false) }

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno { return n.remove(name, true) }

// remove takes name out of the volatile entries; the durable ones keep it until n is fsynced.
func (n *node) remove(name string, dir bool) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	c, ok := n.kids[name]
	switch {
	case !ok:
		return syscall.ENOENT
	case dir && !c.isDir():
		return syscall.ENOTDIR
	case !dir && c.isDir():
		return syscall.EISDIR
	case dir && len(c.kids) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.kids, name)
	n.mtime = time.Now()
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	c, ok := n.kids[name]
	if !ok {
		return syscall.ENOENT
	}
	const noReplace, exchange = 1, 2 // RENAME_NOREPLACE, RENAME_EXCHANGE
	if flags&exchange != 0 {
		return syscall.ENOTSUP
	}
	if old, ok := np.kids[newName]; ok {
		if old == c {
			return 0
		}
		if flags&noReplace != 0 {
			return syscall.EEXIST
		}
		if old.isDir() != c.isDir() {
			if c.isDir() {
				return syscall.ENOTDIR
			}
			return syscall.EISDIR
		}
		if old.isDir() && len(old.kids) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	delete(n.kids, name)
	np.kids[newName] = c
	now := time.Now()
	n.mtime, np.mtime = now, now
	return 0
}

// Fsync makes a file's data, or a directory's entries, durable: it records them as durable
// and writes them to every place in the backing directory where the durable tree has the node.
func (n *node) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	if e := n.lock(); e != 0 {
		return e
	}
	defer n.unlock()
	var err error
	if n.isDir() {
		old := n.durKids
		n.durKids = maps(n.kids)
		n.durMode, n.durMtime = n.mode, n.mtime
		for _, p := range n.fsys.paths(n) {
			if err = n.fsys.syncEntries(p, old, n.durKids); err != nil {
				break
			}
		}
	} else {
		from := min(n.dirtyFrom, int64(len(n.durData)), int64(len(n.data)))
		n.durData = append(n.durData[:from], n.data[from:]...)
		n.durMode, n.durMtime = n.mode, n.mtime
		n.dirtyFrom = int64(len(n.data))
		for _, p := range n.fsys.paths(n) {
			if err = n.writeBacking(p, from); err != nil {
				break
			}
		}
	}
	if err != nil {
		// The backing directory is the test's disk: failing to write it is the test's failure,
		// reported to the process as an I/O error.
		return syscall.EIO
	}
	return 0
}

// paths returns every backing path at which the durable tree holds target.
func (f *FS) paths(target *node) []string {
	var out []string
	var walk func(n *node, p string, depth int)
	walk = func(n *node, p string, depth int) {
		if n == target {
			out = append(out, p)
		}
		if depth > 64 { // a durable tree can hold a cycle (a directory moved under itself in two steps)
			return
		}
		for name, c := range n.durKids {
			walk(c, filepath.Join(p, name), depth+1)
		}
	}
	walk(f.root, f.backing, 0)
	return out
}

// syncEntries changes the backing directory p from the durable entries old to new.
func (f *FS) syncEntries(p string, old, new map[string]*node) error {
	for name, c := range old {
		if new[name] != c {
			if err := os.RemoveAll(filepath.Join(p, name)); err != nil {
				return err
			}
		}
	}
	for name, c := range new {
		if old[name] != c {
			if err := f.render(filepath.Join(p, name), c, 0); err != nil {
				return err
			}
		}
	}
	return os.Chtimes(p, time.Time{}, time.Now())
}

// render writes n's durable state, and for a directory its durable subtree, at backing path p.
func (f *FS) render(p string, n *node, depth int) error {
	if depth > 64 {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	perm := os.FileMode(n.durMode & 0777)
	switch n.durMode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		if err := os.Mkdir(p, perm); err != nil {
			return err
		}
		for name, c := range n.durKids {
			if err := f.render(filepath.Join(p, name), c, depth+1); err != nil {
				return err
			}
		}
	case syscall.S_IFSOCK:
		return syscall.Mknod(p, n.durMode, 0)
	default:
		if err := os.WriteFile(p, n.durData, perm); err != nil {
			return err
		}
		if err := os.Chmod(p, perm); err != nil {
			return err
		}
	}
	return os.Chtimes(p, n.durMtime, n.durMtime)
}

// writeBacking brings the backing file p, which holds the durable data up to offset from, to
// n's durable data.
func (n *node) writeBacking(p string, from int64) error {
	bf, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := bf.WriteAt(n.durData[from:], from)
	err = errors.Join(werr, bf.Truncate(int64(len(n.durData))), bf.Chmod(os.FileMode(n.durMode&0777)), bf.Close())
	if err != nil {
		return err
	}
	return os.Chtimes(p, n.durMtime, n.durMtime)
}

// Require skips t on a machine that cannot mount a lazyfs, saying how to run it, and fails it
// when the environment variable CI is set: CI installs fuse3 and runs as root, so there the
// power-cut tests are required.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("power-cut tests need FUSE and root (apt-get install fuse3; run as root): %v", err)
		}
		t.Skipf("power-cut tests skipped: %v (they need /dev/fuse and root; CI requires them)", err)
	}
}

// Available reports why this machine cannot mount a lazyfs, or nil if it can: it needs
// /dev/fuse and root (the mount is made directly).
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no FUSE device: %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("mounting FUSE directly needs root")
	}
	return nil
}
