// Command wiretap relays Kafka connections from -listen to -broker byte for byte and prints one
// line per request it sees going to the broker: "client_id api_name vN". The broker is started
// with -listen's address as its advertised listener, so every connection a client opens (the
// bootstrap one, the leader's, the group coordinator's) passes through here, and the versions
// printed are the ones the clients really sent, not the ones their source suggests.
//
//	wiretap -listen 127.0.0.1:9093 -broker 127.0.0.1:9092
//
// It never changes a byte: the bytes are copied first and parsed from a copy, and a frame it
// cannot parse is reported and relayed all the same.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

// Kafka's API names by key, as far as these clients go (an unknown key prints as its number).
var apiNames = map[int16]string{
	0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
	9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup",
	14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups", 18: "ApiVersions",
	19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
	32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions", 42: "DeleteGroups",
}

// headerBytesMax bounds what is buffered to parse one request header: the header's fixed part
// (api key, version, correlation id, client id length) plus a client id of at most 32 KiB.
const headerBytesMax = 10 + 32767

var out = struct {
	sync.Mutex
	w *bufio.Writer
}{w: bufio.NewWriter(os.Stdout)}

func main() {
	listen := flag.String("listen", "", "address to accept clients on")
	broker := flag.String("broker", "", "the broker's listener")
	flag.Parse()
	if *listen == "" || *broker == "" {
		log.Fatal("usage: wiretap -listen HOST:PORT -broker HOST:PORT")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("wiretap: listen on %s: %v", *listen, err)
	}
	fmt.Fprintf(os.Stderr, "wiretap listening on %s, relaying to %s\n", *listen, *broker)
	for {
		client, err := ln.Accept()
		if err != nil {
			log.Fatalf("wiretap: accept: %v", err)
		}
		go relay(client, *broker)
	}
}

func relay(client net.Conn, broker string) {
	defer client.Close()
	upstream, err := net.Dial("tcp", broker)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wiretap: dial %s: %v\n", broker, err)
		return
	}
	defer upstream.Close()
	pr, pw := io.Pipe()
	go parseRequests(pr)
	go func() {
		// Answers go back untouched; when the broker closes, so does the client's side.
		_, _ = io.Copy(client, upstream)
		client.Close()
	}()
	_, _ = io.Copy(&tee{to: upstream, copy: pw}, client)
	pw.Close()
}

// tee writes to the broker first and then hands the bytes to the parser; once the parser has
// stopped (a frame it could not follow), the relay goes on without it.
type tee struct {
	to   io.Writer
	copy *io.PipeWriter
	lost bool
}

func (t *tee) Write(p []byte) (int, error) {
	n, err := t.to.Write(p)
	if err == nil && !t.lost {
		if _, copyErr := t.copy.Write(p); copyErr != nil {
			t.lost = true
		}
	}
	return n, err
}

// parseRequests reads size-prefixed request frames and prints each one's header.
func parseRequests(r *io.PipeReader) {
	defer r.Close()
	br := bufio.NewReader(r)
	var size [4]byte
	for {
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return // the client closed
		}
		n := int64(binary.BigEndian.Uint32(size[:]))
		head := make([]byte, minInt64(n, headerBytesMax))
		if _, err := io.ReadFull(br, head); err != nil {
			return
		}
		printHeader(head)
		if _, err := io.CopyN(io.Discard, br, n-int64(len(head))); err != nil {
			return
		}
	}
}

func printHeader(head []byte) {
	line := "unparsable request header"
	if len(head) >= 10 {
		key := int16(binary.BigEndian.Uint16(head[0:2]))
		version := int16(binary.BigEndian.Uint16(head[2:4]))
		idLen := int(int16(binary.BigEndian.Uint16(head[8:10])))
		clientID := "-"
		if idLen >= 0 && 10+idLen <= len(head) {
			clientID = string(head[10 : 10+idLen])
		}
		name, ok := apiNames[key]
		if !ok {
			name = fmt.Sprintf("api%d", key)
		}
		line = fmt.Sprintf("%s %s v%d", clientID, name, version)
	}
	out.Lock()
	defer out.Unlock()
	fmt.Fprintln(out.w, line)
	out.w.Flush()
}

func minInt64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}
