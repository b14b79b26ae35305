// Command kafkago drives segmentio's kafka-go 0.2.1 (Debian's golang-github-segmentio-kafka-go-dev)
// against one broker and exits non-zero naming the first mismatch. scripts/compat_go.sh builds
// and runs it.
//
//	kafkago -bootstrap 127.0.0.1:9092
//
// kafka-go 0.2.1 asks for no ApiVersions and sends fixed versions: Produce v2 and Fetch v2
// (message format v1), ListOffsets v1, Metadata v1, CreateTopics v0, JoinGroup v1, SyncGroup v0,
// OffsetCommit v2, OffsetFetch v1. The steps:
//
//   - produce: CreateTopics with 3 partitions, then a Writer (hash balancer) writes keyed,
//     timestamped records, half uncompressed and half gzip. Where that fails, sarama at 2.1.0
//     produces them instead, so that the reads below are still checked.
//   - read: a Reader without a group reads each partition from its first offset to its last
//     (ListOffsets): contiguous offsets from 0, every record once with its key, value and
//     timestamp, each key in one partition and in the order written.
//   - group: a Reader with a GroupID fetches and commits half of the records and closes; a new
//     one must fetch exactly the other half, commit and close; a third must fetch nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Shopify/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
)

const (
	clientID        = "kafka-go-0.2.1"
	partitions      = 3
	recordsPerCodec = 150
	writeBatchSize  = 25
	waitMax         = 20 * time.Second // for any one answer or message
	groupJoinMax    = 30 * time.Second // a join waits out group.initial.rebalance.delay.ms
	runMax          = 60 * time.Second
	quietAfterRead  = 3 * time.Second // a group read waits this long for records it must not get
)

// record is one produced message, identified by the sequence number in its value.
type record struct {
	key   string
	value string
	time  time.Time
}

type run struct {
	bootstrap string
	topic     string
	dialer    *kafka.Dialer
	failures  []string
}

// failure is what fail panics with; step recovers it, so that one step's failure is reported
// and the next steps still run.
type failure string

func main() {
	bootstrap := flag.String("bootstrap", "", "the broker, HOST:PORT")
	flag.Parse()
	if *bootstrap == "" {
		log.Fatal("usage: kafkago -bootstrap HOST:PORT")
	}
	r := &run{
		bootstrap: *bootstrap,
		topic:     fmt.Sprintf("compat-kafkago-%d", time.Now().UnixNano()),
		dialer:    &kafka.Dialer{ClientID: clientID, Timeout: waitMax},
	}
	time.AfterFunc(runMax, func() {
		r.log("FAIL: timed out after %s", runMax)
		os.Exit(1)
	})

	var produced []record
	if !r.step(func() { produced = r.produce() }) {
		r.topic += "-fallback"
		r.log("producing with sarama at 2.1.0 instead, to %s, so that kafka-go's reads are still checked", r.topic)
		if !r.step(func() { produced = r.produceWithSarama() }) {
			r.exit()
		}
	}
	r.step(func() { r.read(produced) })
	r.step(func() { r.group(produced) })
	r.exit()
}

func (r *run) log(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", clientID, fmt.Sprintf(format, args...))
}

func (r *run) fail(format string, args ...interface{}) {
	message := fmt.Sprintf(format, args...)
	r.log("FAIL: %s", message)
	panic(failure(message))
}

// step runs one check; a failure in it is logged, counted, and ends only that step.
func (r *run) step(check func()) (passed bool) {
	defer func() {
		if v := recover(); v != nil {
			message, ok := v.(failure)
			if !ok {
				panic(v)
			}
			r.failures = append(r.failures, string(message))
		}
	}()
	check()
	return true
}

func (r *run) exit() {
	if len(r.failures) == 0 {
		r.log("all checks passed")
		os.Exit(0)
	}
	r.log("%d check(s) failed, the first: %s", len(r.failures), r.failures[0])
	os.Exit(1)
}

// records are what produce writes: keys cycle through 10, timestamps are a millisecond apart.
func records() []record {
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []record
	for i := 0; i < 2*recordsPerCodec; i++ {
		codec := "none"
		if i >= recordsPerCodec {
			codec = "gzip"
		}
		recs = append(recs, record{
			key:   fmt.Sprintf("key-%d", i%10),
			value: fmt.Sprintf("%s record %d (%s)", clientID, i, codec),
			time:  base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	return recs
}

// sequence is the number a produced value carries: "kafka-go-0.2.1 record 17 (none)" is 17.
func sequence(value string) int {
	fields := strings.Fields(value)
	if len(fields) < 3 {
		return -1
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil {
		return -1
	}
	return n
}

func (r *run) createTopic() {
	conn, err := r.dialer.Dial("tcp", r.bootstrap)
	if err != nil {
		r.fail("dial %s: %v", r.bootstrap, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitMax))
	topic := kafka.TopicConfig{Topic: r.topic, NumPartitions: partitions, ReplicationFactor: 1}
	if err := conn.CreateTopics(topic); err != nil {
		r.fail("CreateTopics %s (v0): %v", r.topic, err)
	}
}

func (r *run) produce() []record {
	r.createTopic()
	recs := records()
	r.write(recs[:recordsPerCodec], nil)
	r.write(recs[recordsPerCodec:], gzip.NewCompressionCodec())
	r.log("PASS produce: CreateTopics, then %d keyed records (none and gzip) through a Writer", len(recs))
	return recs
}

func (r *run) write(recs []record, codec kafka.CompressionCodec) {
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:          []string{r.bootstrap},
		Topic:            r.topic,
		Dialer:           r.dialer,
		Balancer:         &kafka.Hash{},
		BatchSize:        writeBatchSize,
		BatchTimeout:     10 * time.Millisecond,
		MaxAttempts:      2,
		ReadTimeout:      waitMax,
		WriteTimeout:     waitMax,
		RequiredAcks:     -1,
		CompressionCodec: codec,
	})
	defer w.Close()
	var msgs []kafka.Message
	for _, rec := range recs {
		msgs = append(msgs, kafka.Message{Key: []byte(rec.key), Value: []byte(rec.value), Time: rec.time})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitMax)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		r.fail("Writer.WriteMessages (Produce v2): %v", err)
	}
}

// produceWithSarama writes the same records with sarama at 2.1.0 (Produce v3, record batches).
func (r *run) produceWithSarama() []record {
	c := sarama.NewConfig()
	c.ClientID = "sarama-2.1.0-for-kafka-go"
	c.Version = sarama.V2_1_0_0
	c.Net.ReadTimeout = waitMax
	c.Admin.Timeout = waitMax
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	admin, err := sarama.NewClusterAdmin([]string{r.bootstrap}, c)
	if err != nil {
		r.fail("sarama NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(r.topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		r.fail("sarama CreateTopic %s: %v", r.topic, err)
	}
	recs := records()
	for i, codec := range []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP} {
		c.Producer.Compression = codec
		producer, err := sarama.NewSyncProducer([]string{r.bootstrap}, c)
		if err != nil {
			r.fail("sarama NewSyncProducer: %v", err)
		}
		var msgs []*sarama.ProducerMessage
		for _, rec := range recs[i*recordsPerCodec : (i+1)*recordsPerCodec] {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: r.topic, Key: sarama.StringEncoder(rec.key), Value: sarama.StringEncoder(rec.value), Timestamp: rec.time,
			})
		}
		err = producer.SendMessages(msgs)
		producer.Close()
		if err != nil {
			r.fail("sarama SendMessages: %v", err)
		}
	}
	r.log("PASS produce with sarama at 2.1.0: %d keyed records (none and gzip)", len(recs))
	return recs
}

// read reads every partition whole without a group and checks it against produced.
func (r *run) read(produced []record) {
	seen := map[int]int{} // sequence number -> partition
	keyPartition := map[string]int{}
	for p := 0; p < partitions; p++ {
		last := r.lastOffset(p)
		msgs := r.readPartition(p, last)
		previous := map[string]int{} // key -> sequence number last read under it
		for i, m := range msgs {
			if m.Offset != int64(i) {
				r.fail("partition %d: message %d has offset %d", p, i, m.Offset)
			}
			n := r.checkMessage(m, produced)
			if earlier, ok := seen[n]; ok {
				r.fail("record %d read twice: in partition %d and at %d/%d", n, earlier, p, m.Offset)
			}
			seen[n] = p
			key := string(m.Key)
			if kp, ok := keyPartition[key]; ok && kp != p {
				r.fail("key %s in partitions %d and %d: the hash balancer sends a key to one partition", key, kp, p)
			}
			keyPartition[key] = p
			if before, ok := previous[key]; ok && before > n {
				r.fail("partition %d: record %d of key %s read after record %d", p, n, key, before)
			}
			previous[key] = n
		}
	}
	if len(seen) != len(produced) {
		r.fail("read %d distinct records in all, want %d", len(seen), len(produced))
	}
	r.log("PASS read: every partition from offset 0 to its end, each record once, in order per key, with its timestamp")
}

// checkMessage compares a read message with the produced record its value names.
func (r *run) checkMessage(m kafka.Message, produced []record) int {
	n := sequence(string(m.Value))
	if n < 0 || n >= len(produced) {
		r.fail("partition %d offset %d: value %q was not produced", m.Partition, m.Offset, m.Value)
	}
	want := produced[n]
	if string(m.Key) != want.key || string(m.Value) != want.value {
		r.fail("partition %d offset %d: key %q value %q, want key %q value %q", m.Partition, m.Offset, m.Key, m.Value, want.key, want.value)
	}
	if !m.Time.Equal(want.time) {
		r.fail("partition %d offset %d: timestamp %s, want %s", m.Partition, m.Offset, m.Time, want.time)
	}
	return n
}

func (r *run) lastOffset(p int) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	conn, err := r.dialer.DialLeader(ctx, "tcp", r.bootstrap, r.topic, p)
	if err != nil {
		r.fail("DialLeader %s/%d: %v", r.topic, p, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitMax))
	first, last, err := conn.ReadOffsets()
	if err != nil {
		r.fail("ReadOffsets %s/%d (ListOffsets v1): %v", r.topic, p, err)
	}
	if first != 0 {
		r.fail("partition %d: first offset %d, want 0", p, first)
	}
	return last
}

// readPartition reads partition p from offset 0 up to (not including) last.
func (r *run) readPartition(p int, last int64) []kafka.Message {
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{r.bootstrap},
		Topic:     r.topic,
		Partition: p,
		Dialer:    r.dialer,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   500 * time.Millisecond,
	})
	defer reader.Close()
	var msgs []kafka.Message
	for int64(len(msgs)) < last {
		ctx, cancel := context.WithTimeout(context.Background(), waitMax)
		m, err := reader.FetchMessage(ctx)
		cancel()
		if err != nil {
			r.fail("partition %d: after %d of %d messages (Fetch v2): %v", p, len(msgs), last, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func (r *run) group(produced []record) {
	groupID := r.topic + "-group"
	first := r.groupRead(groupID, produced, len(produced)/2, false)
	nothingCommitted := map[int]int64{0: kafka.FirstOffset, 1: kafka.FirstOffset, 2: kafka.FirstOffset}
	r.checkSubscribed(groupID, "the first member (nothing committed)", first.subscribed, nothingCommitted)
	second := r.groupRead(groupID, produced, len(produced)-len(produced)/2, true)
	r.checkSubscribed(groupID, "the second member (the first one's commits)", second.subscribed, first.next)
	third := r.groupRead(groupID, produced, 0, true)
	ends := map[int]int64{}
	for p := 0; p < partitions; p++ {
		ends[p] = r.lastOffset(p)
	}
	r.checkSubscribed(groupID, "the third member (the partitions' ends)", third.subscribed, ends)
	for n := range second.sequences {
		if first.sequences[n] {
			r.fail("group %s: record %d read again by the second member: the first had committed it", groupID, n)
		}
	}
	if len(first.sequences)+len(second.sequences) != len(produced) {
		r.fail("group %s: %d + %d distinct records read, want %d + %d", groupID,
			len(first.sequences), len(second.sequences), len(produced)/2, len(produced)-len(produced)/2)
	}
	r.log("PASS group: read and committed %d, closed; the next member resumed at %s and read the other %d; a third resumed at the ends and read none",
		len(first.sequences), second.subscribed, len(second.sequences))
}

// checkSubscribed compares the offsets a member started its partitions at (kafka-go prints the
// map it got from OffsetFetch, FirstOffset = -2 where nothing was committed) with want.
func (r *run) checkSubscribed(groupID, who, got string, want map[int]int64) {
	if got != fmt.Sprintf("%+v", want) {
		r.fail("group %s: %s started at %s, want %+v", groupID, who, got, want)
	}
}

// subscriptions catches the line a group Reader logs once it has joined, been given its
// partitions and fetched their committed offsets: "subscribed to partitions: map[0:36 1:90 2:-2]".
type subscriptions struct {
	offsets chan string
}

const subscribedPrefix = "subscribed to partitions: "

func (s *subscriptions) Write(line []byte) (int, error) {
	if i := strings.Index(string(line), subscribedPrefix); i >= 0 {
		select {
		case s.offsets <- strings.TrimSpace(string(line[i+len(subscribedPrefix):])):
		default: // a later rebalance: the first subscription is the one checked
		}
	}
	return len(line), nil
}

type groupReadResult struct {
	subscribed string        // the offsets the member started at, as kafka-go logs them
	sequences  map[int]bool  // the records read
	next       map[int]int64 // by partition: the offset after the last one read
}

// groupRead joins the group, waits until the Reader has its partitions, fetches and commits
// want messages and closes. With atEnd, those must be all there is: it then waits
// quietAfterRead for one more, a failure. (kafka-go 0.2.1's Close sends no LeaveGroup: it dials
// the coordinator with the context it has just cancelled, so the next member's join waits until
// the broker expires this one, SessionTimeout later.)
func (r *run) groupRead(groupID string, produced []record, want int, atEnd bool) groupReadResult {
	subscribed := &subscriptions{offsets: make(chan string, 1)}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{r.bootstrap},
		GroupID:           groupID,
		Topic:             r.topic,
		Dialer:            r.dialer,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           500 * time.Millisecond,
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second, // the broker's group.min.session.timeout.ms
		RebalanceTimeout:  10 * time.Second,
		CommitInterval:    0, // CommitMessages commits before it returns
		Logger:            log.New(subscribed, "", 0),
	})
	defer reader.Close() // kafka-go 0.2.1's Close always answers nil
	result := groupReadResult{sequences: map[int]bool{}, next: map[int]int64{}}
	for p := 0; p < partitions; p++ {
		result.next[p] = kafka.FirstOffset // what a partition read from nothing commits
	}
	select {
	case result.subscribed = <-subscribed.offsets:
	case <-time.After(groupJoinMax):
		r.fail("group %s: no partitions assigned within %s (JoinGroup v1, SyncGroup v0, OffsetFetch v1)", groupID, groupJoinMax)
	}
	for len(result.sequences) < want {
		ctx, cancel := context.WithTimeout(context.Background(), waitMax)
		m, err := reader.FetchMessage(ctx)
		if err == nil {
			err = reader.CommitMessages(ctx, m)
		}
		cancel()
		if err != nil {
			r.fail("group %s: after %d of %d messages (Fetch v2, OffsetCommit v2): %v", groupID, len(result.sequences), want, err)
		}
		result.sequences[r.checkMessage(m, produced)] = true
		result.next[m.Partition] = m.Offset + 1
	}
	if !atEnd {
		return result
	}
	ctx, cancel := context.WithTimeout(context.Background(), quietAfterRead)
	extra, err := reader.FetchMessage(ctx)
	cancel()
	if err == nil {
		r.fail("group %s: a message more than the %d expected: partition %d offset %d %q",
			groupID, want, extra.Partition, extra.Offset, extra.Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		r.fail("group %s: waiting for no more messages: %v", groupID, err)
	}
	return result
}
