package store

// Helpers the store_test package shares with the internal tests.
var (
	Backends = eachStore
	WaitFor  = waitUntil
)
