//go:build !unix

package main

// lockDataDir does nothing where flock(2) does not exist; coibox is built for Unix.
func lockDataDir(string) (func(), error) { return func() {}, nil }
