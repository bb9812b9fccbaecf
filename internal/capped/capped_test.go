package capped

import (
	"fmt"
	"testing"
)

func TestBuffer(t *testing.T) {
	tests := []struct {
		max    int64
		writes []string
		want   string
	}{
		{10, []string{"hello", " world"}, "hello worl\n[lantern: log cut at 10 bytes]\n"},
		{11, []string{"hello", " world"}, "hello world"},
		{5, []string{"hello", "!"}, "hello\n[lantern: log cut at 5 bytes]\n"},
		{0, []string{"x"}, "\n[lantern: log cut at 0 bytes]\n"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max, tt.writes), func(t *testing.T) {
			b := &Buffer{Max: tt.max}
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := string(b.Bytes("log")); got != tt.want {
				t.Errorf("Bytes = %q, want %q", got, tt.want)
			}
			if int64(len(b.Kept())) > tt.max {
				t.Errorf("Kept holds %d bytes, more than %d", len(b.Kept()), tt.max)
			}
		})
	}
}
