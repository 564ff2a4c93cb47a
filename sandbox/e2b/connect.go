package e2b

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Connect envelope flags (connectrpc.com/docs/protocol): bit 0 marks a
// compressed message, bit 1 the end-of-stream message.
const (
	flagCompressed = 0x01
	flagEndStream  = 0x02
)

// maxEnvelope caps one message: envd sends output in small chunks.
const maxEnvelope = 16 << 20

// writeEnvelope writes msg as one envelope: a flag byte, the big-endian
// length of the JSON and the JSON.
func writeEnvelope(w io.Writer, flags byte, msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("connect: encode: %w", err)
	}
	head := make([]byte, 5, 5+len(b))
	head[0] = flags
	binary.BigEndian.PutUint32(head[1:], uint32(len(b)))
	_, err = w.Write(append(head, b...))
	return err
}

// readEnvelope reads one envelope; io.EOF only at a clean boundary.
func readEnvelope(r io.Reader) (flags byte, payload []byte, err error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("connect: truncated envelope header: %w", err)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > maxEnvelope {
		return 0, nil, fmt.Errorf("connect: envelope of %d bytes is over the limit", n)
	}
	if head[0]&flagCompressed != 0 {
		return 0, nil, errors.New("connect: compressed envelope, but we asked for none")
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("connect: truncated envelope: %w", err)
	}
	return head[0], payload, nil
}

// endStream is the last message of a Connect stream.
type endStream struct {
	Error *connectError `json:"error,omitempty"`
}

// connectError is a Connect error: a code such as "unavailable" and text.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *connectError) Error() string { return e.Code + ": " + e.Message }

// Messages of process.proto, in the protobuf JSON mapping (lowerCamelCase
// names, bytes as base64, zero values left out).
type (
	processConfig struct {
		Cmd  string            `json:"cmd"`
		Args []string          `json:"args,omitempty"`
		Envs map[string]string `json:"envs,omitempty"`
		Cwd  string            `json:"cwd,omitempty"`
	}
	startRequest struct {
		Process processConfig `json:"process"`
	}
	startResponse struct {
		Event processEvent `json:"event"`
	}
	processEvent struct {
		Start *struct {
			Pid uint32 `json:"pid"`
		} `json:"start,omitempty"`
		Data *struct {
			Stdout []byte `json:"stdout,omitempty"`
			Stderr []byte `json:"stderr,omitempty"`
		} `json:"data,omitempty"`
		End *struct {
			ExitCode int32  `json:"exitCode"`
			Exited   bool   `json:"exited"`
			Status   string `json:"status"`
			Error    string `json:"error,omitempty"`
		} `json:"end,omitempty"`
		Keepalive *struct{} `json:"keepalive,omitempty"`
	}
)
