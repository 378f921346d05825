package manifest

import "testing"

func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, "sp2.json")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	m, err := Parse(readTestdata(b, "sp2.json"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
