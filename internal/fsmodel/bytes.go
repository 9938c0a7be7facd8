package fsmodel

// Bytes returns n deterministic pseudo-random bytes for seed (xorshift32):
// the data that the tests write and the model expects.
func Bytes(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x >> 8)
	}
	return b
}
