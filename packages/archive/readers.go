package archive

import (
	"context"
	"fmt"
	"io"
)

// cappedReader fails a read that would go past its budget, rather than returning EOF, so that a
// stream that runs long is an error and not a silent truncation.
type cappedReader struct {
	r    io.Reader
	left int64
	what string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One probe byte tells "exactly at the limit" from "over it".
		var b [1]byte
		n, err := c.r.Read(b[:])
		if n > 0 {
			return 0, fmt.Errorf("%s is over its size limit", c.what)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// ctxReader stops a long read when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// meter reports, as bytes pass through it, how many of a known total have passed: it is
// written to alongside the data (io.TeeReader when reading, io.MultiWriter when writing).
type meter struct {
	done   int64
	total  int64
	report func(done, total int64)
}

func (c *meter) Write(p []byte) (int, error) {
	c.done += int64(len(p))
	c.report(c.done, c.total)
	return len(p), nil
}
