package main

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartupMemory hands back to the kernel what only starting up
// used: the heap garbage of loading the config and opening the store, and
// the executable's read-only pages that the initialisation of every
// package touched and that an idle server does not touch again. The kernel
// maps 64 KB around each page of the executable first touched, so the
// initialisation of a few hundred packages, most of them never run again
// (the AWS, GitHub, Git and Postgres clients a config does not use), leaves
// most of the binary's code and data resident. The pages stay in the page
// cache; a page touched again is mapped again from it.
//
// Only the read-only mappings of a position-dependent executable are
// released: a writable mapping, or a read-only one a dynamic loader wrote
// relocations into before protecting it (a PIE), holds data the file does
// not, and releasing it would lose that data.
func releaseStartupMemory() {
	debug.FreeOSMemory()
	self := uint64(reflect.ValueOf(releaseStartupMemory).Pointer())
	head := make([]byte, 18)
	if f, err := os.Open("/proc/self/exe"); err != nil {
		return
	} else {
		_, err := f.ReadAt(head, 0)
		f.Close()
		// ELF, 64-bit, little-endian, type 2 (an executable, not a PIE).
		if err != nil || !bytes.Equal(head[:4], []byte("\x7fELF")) || head[4] != 2 || head[5] != 1 || head[16] != 2 || head[17] != 0 {
			return
		}
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	type mapping struct {
		lo, hi uint64
		perms  string
		inode  string
	}
	var all []mapping
	var exe string // the inode of the mapping that holds this function
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		m := mapping{perms: fields[1], inode: fields[3] + ":" + fields[4]}
		var err1, err2 error
		m.lo, err1 = strconv.ParseUint(lo, 16, 64)
		m.hi, err2 = strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if m.lo <= self && self < m.hi {
			exe = m.inode
		}
		all = append(all, m)
	}
	if exe == "" {
		return
	}
	for _, m := range all {
		if m.inode != exe || len(m.perms) < 4 || m.perms[1] != '-' || m.perms[3] != 'p' {
			continue
		}
		// By address: the range is not memory Go allocated.
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.lo), uintptr(m.hi-m.lo), syscall.MADV_DONTNEED)
	}
}
