//go:build race

package main

// raceBuild makes the process tests build the binaries with -race too.
const raceBuild = true
