// Package fakebuild makes stand-in executables for tests that pack, publish and apply packages
// without building the real programs: the head of the running binary, so that the platform reads
// statically as this machine's, and a stamped four-part file version. Nothing runs them; the
// verifier and the install store read versions statically, as they do from real builds.
package fakebuild

import (
	"fmt"
	"io"
	"os"

	"relayfix/internal/stamp"
)

// Bytes returns the bytes of a stand-in build of version, different for every version.
func Bytes(version string) ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("fake build: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("fake build: %w", err)
	}
	defer f.Close()
	b := make([]byte, 4096, 4096+8192)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("fake build: head of %s: %w", exe, err)
	}
	b = append(b, "\x00"+stamp.Marker+version+stamp.Terminator+"\x00"...)
	for i := range 4096 {
		b = append(b, byte(i*31)^version[i%len(version)])
	}
	return b, nil
}

// Write writes a stand-in build of version to path, executable.
func Write(path, version string) error {
	b, err := Bytes(version)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o755)
}
