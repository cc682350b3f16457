// Package config is the vocabulary that package rateltd and its engine share: a key's limit as
// the engine takes it (rateltd.Limit converts to it field for field), algorithms, overflow
// policies, priorities and how they are stored, the rules for keys, the defaults, and the errors
// the engine returns (the sentinels, TimeoutError, PanicError, RetryAfterError). It is part of
// the engine: it makes no stability promise, and users name all of it through package rateltd,
// where the user-facing types (Config, Limit, Decision, Status, the events) are defined with
// their documentation.
package config
