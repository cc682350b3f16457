// Package importgraph holds no code: its test checks the module's import graph against the one
// docs/architecture.md writes down (the block after "import graph: read by
// internal/importgraph"), so that the documented graph stays the real one.
package importgraph
