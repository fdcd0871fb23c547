//go:build !linux

package main

import "runtime/debug"

// releaseStartupMemory hands the heap garbage of starting up back to the
// system (on Linux it releases the executable's start-up pages too).
func releaseStartupMemory() { debug.FreeOSMemory() }
