package verifier

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"relayfix/manifest"
)

// elfHeader builds the first bytes of an ELF file.
func elfHeader(order binary.ByteOrder, abi elf.OSABI, m elf.Machine) []byte {
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	if order == binary.BigEndian {
		h[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	h[elf.EI_OSABI] = byte(abi)
	order.PutUint16(h[16:], uint16(elf.ET_EXEC))
	order.PutUint16(h[18:], uint16(m))
	return h
}

func peHeader(m uint16) []byte {
	h := make([]byte, 512)
	copy(h, "MZ")
	binary.LittleEndian.PutUint32(h[0x3c:], 0x80)
	copy(h[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(h[0x84:], m)
	return h
}

func machoHeader(cpu macho.Cpu) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h, macho.Magic64)
	binary.LittleEndian.PutUint32(h[4:], uint32(cpu))
	return h
}

func TestPlatformFromHeader(t *testing.T) {
	tests := []struct {
		name    string
		header  []byte
		want    string
		wantErr string
	}{
		{"linux amd64 (Go leaves OSABI at none)", elfHeader(binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_X86_64), "linux/amd64", ""},
		{"linux 386", elfHeader(binary.LittleEndian, elf.ELFOSABI_LINUX, elf.EM_386), "linux/386", ""},
		{"linux arm64", elfHeader(binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_AARCH64), "linux/arm64", ""},
		{"linux ppc64le", elfHeader(binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_PPC64), "linux/ppc64le", ""},
		{"linux s390x", elfHeader(binary.BigEndian, elf.ELFOSABI_NONE, elf.EM_S390), "linux/s390x", ""},
		{"freebsd amd64", elfHeader(binary.LittleEndian, elf.ELFOSABI_FREEBSD, elf.EM_X86_64), "freebsd/amd64", ""},
		{"unknown machine", elfHeader(binary.LittleEndian, elf.ELFOSABI_NONE, elf.EM_VAX), "", "unsupported machine"},
		{"unknown OS ABI", elfHeader(binary.LittleEndian, elf.ELFOSABI_HPUX, elf.EM_X86_64), "", "unsupported OS ABI"},
		{"truncated ELF", []byte(elf.ELFMAG + "\x02\x01"), "", "truncated ELF header"},
		{"windows amd64", peHeader(pe.IMAGE_FILE_MACHINE_AMD64), "windows/amd64", ""},
		{"windows 386 (the KB's x86)", peHeader(pe.IMAGE_FILE_MACHINE_I386), "windows/386", ""},
		{"windows unknown machine", peHeader(0x1234), "", "unsupported machine"},
		{"MZ text, not PE", []byte("MZ is how this config file starts\n"), manifest.PlatformAny, ""},
		{"darwin arm64", machoHeader(macho.CpuArm64), "darwin/arm64", ""},
		{"darwin unknown CPU", machoHeader(macho.CpuPpc), "", "unsupported CPU"},
		{"text file", []byte("listen = 127.0.0.1:2525\n"), manifest.PlatformAny, ""},
		{"empty file", nil, manifest.PlatformAny, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := platformFromHeader(tc.header)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestReadPlatformOfRealBinary reads the header of this very test binary, a real executable.
func TestReadPlatformOfRealBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadPlatform(exe)
	if want := runtime.GOOS + "/" + runtime.GOARCH; err != nil || got != want {
		t.Fatalf("ReadPlatform(%s) = %q, %v; want %q", exe, got, err, want)
	}
	// It agrees with the standard library's full parse.
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 && runtime.GOARCH == "amd64" {
		t.Errorf("debug/elf says %v", f.Machine)
	}
	if _, err := ReadPlatform(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("no error for a missing file")
	}
}
