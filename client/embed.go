package client

import _ "embed" // for the go:embed of the script

// JS is push-gateway.js as written: a classic script that sets
// globalThis.PushGateway.
//
//go:embed push-gateway.js
var JS []byte

// moduleTail turns the classic script into an ES module: the script runs
// first and leaves PushGateway on globalThis, the tail exports it.
const moduleTail = "\nconst PushGateway = globalThis.PushGateway;\nexport { PushGateway };\nexport default PushGateway;\n"

// Module is JS as an ES module exporting PushGateway (named and default).
var Module = append(append([]byte(nil), JS...), moduleTail...)
