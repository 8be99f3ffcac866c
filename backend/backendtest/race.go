//go:build race

package backendtest

// raceEnabled is true when the race detector is on: the suite then runs
// its largest concurrent tests smaller (the detector slows pure-Go stores
// such as modernc.org/sqlite by an order of magnitude) and says so.
const raceEnabled = true
