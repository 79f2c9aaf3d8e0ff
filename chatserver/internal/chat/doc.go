// Package chat implements the MyWebChat wire protocol (docs/protocol.md): rooms
// with per-room seq and epoch, bounded history for resume, dedupe of resent
// sends, presence, limits and the WebSocket connections themselves.
//
// A Hub either sequences messages itself (it is the rooms' authority; other
// processes are served through its Authority view) or forwards them to a
// Remote and keeps a copy fed through its Replica view; see Remote for the
// storage seam and Hub for the order in which its locks nest.
package chat
