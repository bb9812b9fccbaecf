package natsauth

import "time"

// SetRequestTimeout sets how long Push waits for the server's answer to
// one request, until the test ends (restore).
func SetRequestTimeout(d time.Duration) (restore func()) {
	old := requestTimeout
	requestTimeout = d
	return func() { requestTimeout = old }
}
