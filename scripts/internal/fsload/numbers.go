package main

import "strconv"

// thousands prints n with a comma between each group of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	b := make([]byte, 0, len(s)+len(s)/3)
	for i := 0; i < len(s); i++ {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// humanNumber prints x with thousands separators, and up to 3 decimals
// below 100.
func humanNumber(x float64) string {
	if x != float64(int64(x)) && x < 100 && x > -100 {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return thousands(int64(x + 0.5))
}
