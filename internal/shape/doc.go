// Package shape holds no code: its test keeps the module's units small enough to hold in mind
// (docs/architecture.md, "Units"): no Go file outside tests over 500 lines, no Go function
// outside tests over 80 lines, no function of a Lua script over 80 lines.
package shape
