package chat

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxBatch is the most bytes gathered before a batch is written out.
const maxBatch = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// batchConn lets a connection's writer coalesce the frames it has queued into
// one write system call: under fan-out load a client's queue holds several
// frames, and one syscall per frame would dominate the CPU. Outside a batch
// (the handshake, pings from timers) writes go straight through. The buffer
// is pooled and only held during a batch, so idle connections cost nothing.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	buf      *[]byte // non-nil during a batch
	deadline time.Time
	// pending is true when a deadline was set during the batch: gorilla sets
	// it before every frame, and each call costs a runtime timer update, so
	// during a batch only the last one is applied, once, before the write.
	pending bool
}

// SetWriteDeadline applies at once outside a batch and at the flush inside one.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.Conn.SetWriteDeadline(t)
	}
	b.deadline, b.pending = t, true
	return nil
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.Conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= maxBatch {
		if err := b.writeOutLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (b *batchConn) writeOutLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	if b.pending {
		b.pending = false
		if err := b.Conn.SetWriteDeadline(b.deadline); err != nil {
			return err
		}
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// begin starts gathering writes.
func (b *batchConn) begin() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
		*b.buf = (*b.buf)[:0]
	}
}

// flush writes what was gathered and ends the batch.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return nil
	}
	err := b.writeOutLocked()
	if cap(*b.buf) <= 4*maxBatch {
		batchPool.Put(b.buf)
	}
	b.buf = nil
	return err
}

// readBufferSize is each connection's read buffer; frames are at most 2 KiB
// and small buffers keep idle connections cheap.
const readBufferSize = 512

// hijackWriter hands gorilla's Upgrade a batchConn instead of the raw
// connection, and a read buffer of ours (gorilla reads through a hijacked
// reader it is given when its own ReadBufferSize is 0), so that a move can
// see which bytes were read from the socket but not consumed.
type hijackWriter struct {
	http.ResponseWriter
	conn *batchConn
	br   *bufio.Reader
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c}
	if brw.Reader.Buffered() > 0 {
		// Data before the handshake finished: gorilla refuses it.
		return h.conn, brw, nil
	}
	h.br = bufio.NewReaderSize(h.conn, readBufferSize)
	return h.conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}
