// Package chat implements the MyWebChat wire protocol (docs/protocol.md): rooms
// with per-room seq and epoch, bounded history for resume, dedupe of resent
// sends, presence, limits and the WebSocket connections themselves.
//
// A Hub either sequences messages itself (it is the rooms' authority) or
// forwards them to a Remote and keeps a replica fed through Apply and
// Install; see Remote for the storage seam.
package chat
