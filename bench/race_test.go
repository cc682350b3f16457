//go:build race

package bench

// raceEnabled: the race detector slows everything several times over, so TestCompare refuses
// to measure under it.
const raceEnabled = true
