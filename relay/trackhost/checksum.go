package trackhost

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
)

// ExpectedSumFunc returns the SHA-256 the installed-files database records for the file at rel
// (relative to the install root, e.g. "bin/msgtrack"), and whether the database lists the file
// at all.
type ExpectedSumFunc func(rel string) (sum []byte, listed bool, err error)

// checker decides whether a plugin binary may run: it compares the binary's checksum with the one
// the installed-files database records.
type checker struct {
	binary     string
	expected   ExpectedSumFunc // nil: the database lists nothing
	unverified bool            // run a binary the database does not list
	sums       sumCache
}

// verify checks the binary and returns the checksum go-plugin should check again (nil when
// running unverified) and a note for the status.
func (c *checker) verify() (want []byte, note string, err error) {
	have, err := c.sums.checksum(c.binary)
	if err != nil {
		return nil, "", fmt.Errorf("plugin binary: %w", err)
	}
	var listed bool
	if c.expected != nil {
		if want, listed, err = c.expected(DBPath); err != nil {
			return nil, "", err
		}
	}
	if !listed {
		if !c.unverified {
			return nil, "", ErrNotInstalled
		}
		return nil, "unverified: bin/msgtrack has no record in the installed-files database", nil
	}
	if !bytes.Equal(want, have) {
		return nil, "", fmt.Errorf("%w (want %x, have %x)", ErrChecksum, want, have)
	}
	return have, "", nil
}

// sumCache remembers the checksum of the plugin binary for as long as the file is the same file
// (device, inode, size, modification and change times): a crash-looping plugin is restarted
// often, and hashing an 18 MB binary each time cost the relay more than the restarts themselves.
// go-plugin's SecureConfig still hashes the file at each start, right before it runs it.
type sumCache struct {
	mu  sync.Mutex
	key fileKey
	sum []byte
}

type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// checksum returns the SHA-256 of the file at path.
func (c *sumCache) checksum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	key, ok := identify(f)
	c.mu.Lock()
	if ok && key == c.key && c.sum != nil {
		sum := c.sum
		c.mu.Unlock()
		return sum, nil
	}
	c.mu.Unlock()
	hs := sha256.New()
	if _, err := io.Copy(hs, f); err != nil {
		return nil, err
	}
	sum := hs.Sum(nil)
	if ok {
		c.mu.Lock()
		c.key, c.sum = key, sum
		c.mu.Unlock()
	}
	return sum, nil
}
