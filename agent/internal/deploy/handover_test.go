package deploy

import "testing"

func TestNumericUser(t *testing.T) {
	tests := []struct {
		user     string
		uid, gid int
		ok       bool
	}{
		{"65532:65532", 65532, 65532, true},
		{"1000", 1000, 1000, true},
		{"1000:2000", 1000, 2000, true},
		{"0", 0, 0, true},
		{"", 0, 0, false},
		{"nonroot", 0, 0, false},
		{"nonroot:nonroot", 0, 0, false},
		{"1000:staff", 0, 0, false},
		{"-1", 0, 0, false},
		{"1000:-5", 0, 0, false},
	}
	for _, tt := range tests {
		uid, gid, ok := numericUser(tt.user)
		if uid != tt.uid || gid != tt.gid || ok != tt.ok {
			t.Errorf("numericUser(%q) = %d, %d, %v; want %d, %d, %v", tt.user, uid, gid, ok, tt.uid, tt.gid, tt.ok)
		}
	}
}
