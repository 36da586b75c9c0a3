// Package client holds push_gateway's browser client, push-gateway.js: plain
// JavaScript with no dependencies and no build step. The gateway serves it on
// every push_gateway route, as <route>/client.js (a classic script that sets
// globalThis.PushGateway) and <route>/client.mjs (the same bytes followed by
// an export line, for `import { PushGateway } from '<route>/client.mjs'`).
package client
