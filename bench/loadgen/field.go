package main

import "bytes"

// field returns the raw value after the first `"name":` in a JSON object:
// a string's contents without quotes, or a number's digits. It is not a JSON
// parser: it relies on the name appearing once, which holds for the fields
// the benchmark reads (type, seq, and t inside the publisher's data).
func field(b []byte, name string) ([]byte, bool) {
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte(name))
		if i < 0 {
			return nil, false
		}
		i += off
		off = i + len(name)
		if i == 0 || b[i-1] != '"' || off >= len(b) || b[off] != '"' {
			continue
		}
		j := skipSpace(b, off+1)
		if j >= len(b) || b[j] != ':' {
			continue
		}
		j = skipSpace(b, j+1)
		if j >= len(b) {
			return nil, false
		}
		if b[j] == '"' {
			end := bytes.IndexByte(b[j+1:], '"')
			if end < 0 {
				return nil, false
			}
			return b[j+1 : j+1+end], true
		}
		end := j
		for end < len(b) && (b[end] == '-' || b[end] >= '0' && b[end] <= '9') {
			end++
		}
		return b[j:end], end > j
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// intField returns field(b, name) as an integer.
func intField(b []byte, name string) (int64, bool) {
	v, ok := field(b, name)
	if !ok || len(v) == 0 {
		return 0, false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, len(v) > 0
}
