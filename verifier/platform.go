package verifier

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"relayfix/manifest"
)

// headerLen is how much of a file the platform is read from. An ELF or Mach-O header sits in the
// first few dozen bytes; a PE header is found through an offset at 0x3c and in practice lies in
// the first kilobyte.
const headerLen = 4096

// ReadPlatform returns the platform, as GOOS/GOARCH ("linux/amd64"), that the executable at path
// was built for, read from its ELF, PE or Mach-O header. A file that is none of these is
// manifest.PlatformAny.
func ReadPlatform(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read platform: %w", err)
	}
	defer f.Close()
	buf := make([]byte, headerLen)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read platform of %s: %w", path, err)
	}
	p, err := platformFromHeader(buf[:n])
	if err != nil {
		return "", fmt.Errorf("read platform of %s: %w", path, err)
	}
	return p, nil
}

// platformFromHeader decodes the platform from the first bytes of a file. It parses only the
// fixed header fields, so that the same code serves a file on disk and a payload still streaming
// out of an archive, where the section tables at the end of the file have not arrived yet.
func platformFromHeader(h []byte) (string, error) {
	switch {
	case bytes.HasPrefix(h, []byte(elf.ELFMAG)):
		return elfPlatform(h)
	case bytes.HasPrefix(h, []byte("MZ")):
		return pePlatform(h)
	case len(h) >= 8:
		if p, ok, err := machoPlatform(h); ok {
			return p, err
		}
	}
	return manifest.PlatformAny, nil
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:    "amd64",
	elf.EM_386:       "386",
	elf.EM_AARCH64:   "arm64",
	elf.EM_ARM:       "arm",
	elf.EM_RISCV:     "riscv64",
	elf.EM_PPC64:     "ppc64",
	elf.EM_S390:      "s390x",
	elf.EM_MIPS:      "mips",
	elf.EM_LOONGARCH: "loong64",
}

func elfPlatform(h []byte) (string, error) {
	if len(h) < 20 {
		return "", errors.New("truncated ELF header")
	}
	var order binary.ByteOrder
	switch elf.Data(h[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		order = binary.BigEndian
	default:
		return "", fmt.Errorf("ELF header: unknown byte order %d", h[elf.EI_DATA])
	}
	m := elf.Machine(order.Uint16(h[18:20]))
	arch, ok := elfArch[m]
	if !ok {
		return "", fmt.Errorf("ELF header: unsupported machine %v", m)
	}
	switch {
	case m == elf.EM_PPC64 && order == binary.LittleEndian:
		arch = "ppc64le"
	case m == elf.EM_MIPS && order == binary.LittleEndian:
		arch = "mipsle"
	}
	var goos string
	switch abi := elf.OSABI(h[elf.EI_OSABI]); abi {
	case elf.ELFOSABI_NONE, elf.ELFOSABI_LINUX:
		// Go and most toolchains leave OSABI at NONE (System V) for Linux.
		goos = "linux"
	case elf.ELFOSABI_FREEBSD:
		goos = "freebsd"
	case elf.ELFOSABI_NETBSD:
		goos = "netbsd"
	case elf.ELFOSABI_OPENBSD:
		goos = "openbsd"
	case elf.ELFOSABI_SOLARIS:
		goos = "solaris"
	default:
		return "", fmt.Errorf("ELF header: unsupported OS ABI %v", abi)
	}
	return goos + "/" + arch, nil
}

var peArch = map[uint16]string{
	pe.IMAGE_FILE_MACHINE_AMD64: "amd64",
	pe.IMAGE_FILE_MACHINE_I386:  "386",
	pe.IMAGE_FILE_MACHINE_ARM64: "arm64",
	pe.IMAGE_FILE_MACHINE_ARMNT: "arm",
}

func pePlatform(h []byte) (string, error) {
	if len(h) < 0x40 {
		return manifest.PlatformAny, nil
	}
	off := binary.LittleEndian.Uint32(h[0x3c:])
	if uint64(off)+6 > uint64(len(h)) || !bytes.Equal(h[off:off+4], []byte("PE\x00\x00")) {
		// An "MZ" text file, or a DOS program: not a PE executable.
		return manifest.PlatformAny, nil
	}
	m := binary.LittleEndian.Uint16(h[off+4:])
	arch, ok := peArch[m]
	if !ok {
		return "", fmt.Errorf("PE header: unsupported machine %#x", m)
	}
	return "windows/" + arch, nil
}

var machoArch = map[macho.Cpu]string{
	macho.CpuAmd64: "amd64",
	macho.CpuArm64: "arm64",
	macho.Cpu386:   "386",
}

// machoPlatform reports ok when h is a Mach-O header.
func machoPlatform(h []byte) (platform string, ok bool, err error) {
	var order binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint32(h) == macho.Magic64 || binary.LittleEndian.Uint32(h) == macho.Magic32:
		order = binary.LittleEndian
	case binary.BigEndian.Uint32(h) == macho.Magic64 || binary.BigEndian.Uint32(h) == macho.Magic32:
		order = binary.BigEndian
	default:
		return "", false, nil
	}
	cpu := macho.Cpu(order.Uint32(h[4:]))
	arch, known := machoArch[cpu]
	if !known {
		return "", true, fmt.Errorf("Mach-O header: unsupported CPU %v", cpu)
	}
	return "darwin/" + arch, true, nil
}
