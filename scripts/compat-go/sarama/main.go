// Command sarama drives sarama 1.22 (Debian's golang-github-shopify-sarama-dev) against one
// broker and exits non-zero naming the first mismatch. scripts/compat_go.sh builds and runs it.
//
//	sarama -bootstrap 127.0.0.1:9092 -version 2.1.0
//	sarama -bootstrap 127.0.0.1:9092 -version default   # sarama's own default, 0.8.2.0
//
// -version is the broker version sarama is told to expect, and it picks the request versions:
// 0.8.2.0 sends Produce v0 / Fetch v0 with message format v0, 0.10.2.0 sends Produce v2 / Fetch
// v3 with message format v1, 2.1.0 sends Produce v3 / Fetch v4 with record batches (v2). The
// steps, each on topics of its own run (a failed step is reported and the next one still runs;
// where producing at -version fails, the records are produced at 2.1.0 so the reads are checked):
//
//   - admin (at 0.11.0.0 where the run's version is older: sarama's own minimum for it):
//     CreateTopic with 3 partitions and a config, DescribeConfig, ListTopics, DeleteTopic.
//   - produce: a SyncProducer sends keyed, timestamped records in batches, half uncompressed and
//     half gzip; every one must land on contiguous offsets from 0 per partition.
//   - consume: a partition consumer reads every partition from the oldest offset and must see
//     exactly what was produced (offset, key, value, timestamp from message format v1 on), then
//     reads from the middle of a partition and must start at exactly that offset.
//   - group (needs >= 0.10.2.0): a consumer group reads everything and commits (sarama commits
//     with OffsetCommit v1), closes; after more records a new group member must read only those,
//     and the committed offsets must be the partitions' ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

const (
	partitions        = 3
	recordsPerCodec   = 150
	recordsAfterGroup = 30
	sendBatchSize     = 25
	waitMax           = 20 * time.Second // for any one answer or message
	runMax            = 60 * time.Second
	quietAfterRead    = 2 * time.Second // a group read waits this long for records it must not get
	retentionMs       = "3600000"
)

// record is what one produced message must read back as.
type record struct {
	partition int32
	offset    int64
	key       string
	value     string
	timestamp time.Time
}

type run struct {
	bootstrap []string
	version   sarama.KafkaVersion
	name      string // "sarama-2.1.0": the client id of this run's requests (see config)
	topic     string
	// producerVersion is version, unless producing at version failed: then the records the
	// later steps read are produced at 2.1.0, so that reading at version is still checked.
	producerVersion sarama.KafkaVersion
	failures        []string
}

// failure is what fail panics with; step recovers it, so that one step's failure is reported
// and the next steps still run.
type failure string

func main() {
	bootstrap := flag.String("bootstrap", "", "the broker, HOST:PORT")
	versionFlag := flag.String("version", "default", "the Kafka version sarama assumes, or 'default'")
	verbose := flag.Bool("verbose", false, "print sarama's own log")
	flag.Parse()
	if *bootstrap == "" {
		log.Fatal("usage: sarama -bootstrap HOST:PORT [-version X.Y.Z|default]")
	}
	version := sarama.NewConfig().Version
	if *versionFlag != "default" {
		parsed, err := sarama.ParseKafkaVersion(*versionFlag)
		if err != nil {
			log.Fatalf("-version %s: %v", *versionFlag, err)
		}
		version = parsed
	}
	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	}
	r := &run{
		bootstrap: []string{*bootstrap},
		version:   version,
		name:      "sarama-" + version.String(),
		topic:     fmt.Sprintf("compat-sarama-%s-%d", version.String(), time.Now().UnixNano()),

		producerVersion: version,
	}
	time.AfterFunc(runMax, func() {
		r.log("FAIL: timed out after %s", runMax)
		os.Exit(1)
	})

	if !r.step(r.admin) {
		os.Exit(1) // no topic to go on with
	}
	var produced map[int32][]record
	if !r.step(func() { produced = r.produce() }) {
		r.producerVersion = sarama.V2_1_0_0
		r.topic += "-fallback"
		r.log("producing at %s instead, to %s, so that the reads at %s are still checked", r.producerVersion, r.topic, version)
		if !r.step(func() { r.createTopic(r.topic); produced = r.produce() }) {
			r.exit()
		}
	}
	r.step(func() { r.consume(produced) })
	if version.IsAtLeast(sarama.V0_10_2_0) {
		r.step(func() { r.group(produced) })
	} else {
		r.log("skip group: sarama's consumer groups need version >= 0.10.2.0")
	}
	r.exit()
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

func (r *run) log(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", r.name, fmt.Sprintf(format, args...))
}

func (r *run) fail(format string, args ...interface{}) {
	message := fmt.Sprintf(format, args...)
	r.log("FAIL: %s", message)
	panic(failure(message))
}

// config is this run's client configuration. Its client id names the run, so that the wiretap's
// lines say which run sent what; a client set to another version (the admin before 0.11.0.0,
// the fallback producer) gets "-as-VERSION" appended by clientAt.
func (r *run) config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = r.name
	c.Version = r.version
	c.Net.DialTimeout = waitMax
	c.Net.ReadTimeout = waitMax
	c.Net.WriteTimeout = waitMax
	c.Metadata.Retry.Max = 3
	c.Admin.Timeout = waitMax
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Retry.Max = 2
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// adminClient is a ClusterAdmin at this run's version, or at 0.11.0.0 where that is older:
// sarama's ClusterAdmin asks for the controller (Metadata v1, 0.10.0.0) and refuses
// DescribeConfigs before 0.11.0.0 itself, without asking the broker.
func (r *run) adminClient() sarama.ClusterAdmin {
	c := r.clientAt(r.adminVersion())
	admin, err := sarama.NewClusterAdmin(r.bootstrap, c)
	if err != nil {
		r.fail("NewClusterAdmin (version %s): %v", c.Version, err)
	}
	return admin
}

func (r *run) clientAt(version sarama.KafkaVersion) *sarama.Config {
	c := r.config()
	if version != r.version {
		c.Version = version
		c.ClientID = r.name + "-as-" + version.String()
	}
	return c
}

func (r *run) adminVersion() sarama.KafkaVersion {
	if r.version.IsAtLeast(sarama.V0_11_0_0) {
		return r.version
	}
	return sarama.V0_11_0_0
}

func (r *run) admin() {
	admin := r.adminClient()
	defer admin.Close()
	r.createTopic(r.topic)

	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: r.topic})
	if err != nil {
		r.fail("DescribeConfig %s: %v", r.topic, err)
	}
	got := ""
	for _, entry := range entries {
		if entry.Name == "retention.ms" {
			got = entry.Value
		}
	}
	if got != retentionMs {
		r.fail("DescribeConfig %s: retention.ms is %q, want %q (of %d entries)", r.topic, got, retentionMs, len(entries))
	}

	doomed := r.topic + "-deleted"
	if err := admin.CreateTopic(doomed, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		r.fail("CreateTopic %s: %v", doomed, err)
	}
	topics := r.listTopics(admin)
	if d, ok := topics[r.topic]; !ok || d.NumPartitions != partitions {
		r.fail("ListTopics: %s has %d partitions (listed: %v), want %d", r.topic, d.NumPartitions, ok, partitions)
	}
	if value := topics[r.topic].ConfigEntries["retention.ms"]; value == nil || *value != retentionMs {
		r.fail("ListTopics: %s does not carry retention.ms=%s among its non-default configs", r.topic, retentionMs)
	}
	if _, ok := topics[doomed]; !ok {
		r.fail("ListTopics: %s is missing", doomed)
	}
	if err := admin.DeleteTopic(doomed); err != nil {
		r.fail("DeleteTopic %s: %v", doomed, err)
	}
	if _, ok := r.listTopics(admin)[doomed]; ok {
		r.fail("ListTopics after DeleteTopic still shows %s", doomed)
	}
	r.log("PASS admin (version %s): CreateTopic, DescribeConfig, ListTopics, DeleteTopic", r.adminVersion())
}

// createTopic creates a topic of 3 partitions with retention.ms set.
func (r *run) createTopic(name string) {
	admin := r.adminClient()
	defer admin.Close()
	retention := retentionMs
	detail := &sarama.TopicDetail{
		NumPartitions:     partitions,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"retention.ms": &retention},
	}
	if err := admin.CreateTopic(name, detail, false); err != nil {
		r.fail("CreateTopic %s: %v", name, err)
	}
}

func (r *run) listTopics(admin sarama.ClusterAdmin) map[string]sarama.TopicDetail {
	topics, err := admin.ListTopics()
	if err != nil {
		r.fail("ListTopics: %v", err)
	}
	return topics
}

// produce sends recordsPerCodec records uncompressed, then as many with gzip, and returns them
// by partition, in offset order.
func (r *run) produce() map[int32][]record {
	produced := map[int32][]record{}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	sequence := 0
	for _, codec := range []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP} {
		for _, rec := range r.send(codec, base, &sequence, recordsPerCodec) {
			produced[rec.partition] = append(produced[rec.partition], rec)
		}
	}
	r.checkContiguous(produced, 0)
	r.log("PASS produce (version %s): %d keyed records (none and gzip, batches of %d) on contiguous offsets %s",
		r.producerVersion, sequence, sendBatchSize, describe(produced))
	return produced
}

// send produces count records through one SyncProducer, numbering them from *sequence on.
func (r *run) send(codec sarama.CompressionCodec, base time.Time, sequence *int, count int) []record {
	c := r.clientAt(r.producerVersion)
	c.Producer.Compression = codec
	producer, err := sarama.NewSyncProducer(r.bootstrap, c)
	if err != nil {
		r.fail("NewSyncProducer: %v", err)
	}
	defer producer.Close()
	var sent []record
	for len(sent) < count {
		var batch []*sarama.ProducerMessage
		for len(batch) < sendBatchSize && len(sent)+len(batch) < count {
			i := *sequence
			*sequence++
			batch = append(batch, &sarama.ProducerMessage{
				Topic:     r.topic,
				Key:       sarama.StringEncoder(fmt.Sprintf("key-%d", i%10)),
				Value:     sarama.StringEncoder(fmt.Sprintf("%s record %d (%s)", r.name, i, codecName(codec))),
				Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			})
		}
		if err := producer.SendMessages(batch); err != nil {
			r.fail("SendMessages (%s, Produce at version %s): %v", codecName(codec), r.producerVersion, producerError(err))
		}
		for _, m := range batch {
			key, _ := m.Key.Encode()
			value, _ := m.Value.Encode()
			sent = append(sent, record{m.Partition, m.Offset, string(key), string(value), m.Timestamp})
		}
	}
	return sent
}

func codecName(codec sarama.CompressionCodec) string {
	if codec == sarama.CompressionGZIP {
		return "gzip"
	}
	return "none"
}

// producerError names the first failed message's error: sarama's ProducerErrors prints only a count.
func producerError(err error) error {
	if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
		return fmt.Errorf("%d of the batch failed, the first with: %v", len(errs), errs[0].Err)
	}
	return err
}

// checkContiguous sorts each partition's records by offset and checks the offsets run from
// first on without a gap, and that the records kept the order they were sent in.
func (r *run) checkContiguous(byPartition map[int32][]record, first int64) {
	for p, recs := range byPartition {
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].offset < recs[j].offset })
		for i, rec := range recs {
			if rec.offset != first+int64(i) {
				r.fail("partition %d: record %q has offset %d, want %d", p, rec.value, rec.offset, first+int64(i))
			}
			if i > 0 && !rec.timestamp.After(recs[i-1].timestamp) {
				r.fail("partition %d: %q at offset %d was sent before %q at %d", p, rec.value, rec.offset, recs[i-1].value, recs[i-1].offset)
			}
		}
	}
}

func describe(byPartition map[int32][]record) string {
	var parts []string
	for p := int32(0); p < partitions; p++ {
		parts = append(parts, fmt.Sprintf("p%d:0..%d", p, len(byPartition[p])-1))
	}
	return strings.Join(parts, " ")
}

func (r *run) consume(produced map[int32][]record) {
	consumer, err := sarama.NewConsumer(r.bootstrap, r.config())
	if err != nil {
		r.fail("NewConsumer: %v", err)
	}
	defer consumer.Close()
	for p := int32(0); p < partitions; p++ {
		r.readPartition(consumer, p, sarama.OffsetOldest, produced[p])
	}
	// From the middle of a partition: inside a gzip message set, the broker hands back the whole
	// set and the client must skip what comes before the offset asked for.
	longest := int32(0)
	for p := int32(1); p < partitions; p++ {
		if len(produced[p]) > len(produced[longest]) {
			longest = p
		}
	}
	middle := produced[longest][len(produced[longest])*3/4:]
	r.readPartition(consumer, longest, middle[0].offset, middle)
	r.log("PASS consume: every partition from the oldest offset, and partition %d from offset %d", longest, middle[0].offset)
}

// readPartition reads len(want) messages of partition p from offset and compares them with want.
func (r *run) readPartition(consumer sarama.Consumer, p int32, offset int64, want []record) {
	pc, err := consumer.ConsumePartition(r.topic, p, offset)
	if err != nil {
		r.fail("ConsumePartition %s/%d from %s: %v", r.topic, p, offsetName(offset), err)
	}
	defer pc.Close()
	for i, w := range want {
		select {
		case m := <-pc.Messages():
			r.checkMessage(m, w)
		case err := <-pc.Errors():
			r.fail("partition %d from %s, after %d of %d messages (Fetch at version %s): %v", p, offsetName(offset), i, len(want), r.version, err)
		case <-time.After(waitMax):
			r.fail("partition %d from %s: %d of %d messages within %s", p, offsetName(offset), i, len(want), waitMax)
		}
	}
}

func offsetName(offset int64) string {
	if offset == sarama.OffsetOldest {
		return "the oldest offset"
	}
	return fmt.Sprintf("offset %d", offset)
}

func (r *run) checkMessage(m *sarama.ConsumerMessage, w record) {
	got := record{m.Partition, m.Offset, string(m.Key), string(m.Value), m.Timestamp}
	// Message format v0 (before 0.10.0.0) carries no timestamp.
	if r.version.IsAtLeast(sarama.V0_10_0_0) && !got.timestamp.Equal(w.timestamp) {
		r.fail("partition %d offset %d: timestamp %s, want %s", w.partition, w.offset, got.timestamp, w.timestamp)
	}
	got.timestamp = w.timestamp
	if got != w {
		r.fail("read %+v, want %+v", got, w)
	}
}

// collector is a consumer group handler that marks every message it is given and passes it on.
type collector struct {
	messages chan *sarama.ConsumerMessage
}

func (c *collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collector) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		session.MarkMessage(m, "")
		select {
		case c.messages <- m:
		case <-session.Context().Done():
			return nil
		}
	}
	return nil
}

func (r *run) group(produced map[int32][]record) {
	groupID := r.topic + "-group"
	first := r.groupRead(groupID, count(produced))
	r.checkSame("first group read", first, produced)

	// More records; a new member of the same group must start at the committed offsets.
	sequence := 2 * recordsPerCodec
	more := map[int32][]record{}
	for _, rec := range r.send(sarama.CompressionNone, time.Now().Truncate(time.Millisecond), &sequence, recordsAfterGroup) {
		more[rec.partition] = append(more[rec.partition], rec)
	}
	second := r.groupRead(groupID, recordsAfterGroup)
	r.checkSame("second group read (from the committed offsets)", second, more)

	admin := r.adminClient()
	defer admin.Close()
	asked := map[string][]int32{r.topic: {0, 1, 2}}
	committed, err := admin.ListConsumerGroupOffsets(groupID, asked)
	if err != nil {
		r.fail("ListConsumerGroupOffsets %s: %v", groupID, err)
	}
	for p := int32(0); p < partitions; p++ {
		block := committed.GetBlock(r.topic, p)
		end := int64(len(produced[p]) + len(more[p]))
		if block == nil || block.Err != sarama.ErrNoError || block.Offset != end {
			r.fail("committed offset of %s/%d: %+v, want %d", r.topic, p, block, end)
		}
	}
	r.log("PASS group: read %d, committed, closed; the next member read only the %d new records; committed offsets are the ends",
		count(first), count(second))
}

// groupRead joins the group, reads want messages, waits quietAfterRead for any extra one (a
// failure), and closes the group, which commits the marked offsets and leaves.
func (r *run) groupRead(groupID string, want int) map[int32][]record {
	group, err := sarama.NewConsumerGroup(r.bootstrap, groupID, r.config())
	if err != nil {
		r.fail("NewConsumerGroup %s: %v", groupID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	handler := &collector{messages: make(chan *sarama.ConsumerMessage, want+1)}
	consumeDone := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{r.topic}, handler); err != nil {
				consumeDone <- err
				return
			}
		}
		consumeDone <- nil
	}()

	got := map[int32][]record{}
	n := 0
	deadline := time.After(waitMax + 10*time.Second) // a join waits out group.initial.rebalance.delay.ms
	for n < want {
		select {
		case m := <-handler.messages:
			got[m.Partition] = append(got[m.Partition], record{m.Partition, m.Offset, string(m.Key), string(m.Value), m.Timestamp})
			n++
		case err := <-group.Errors():
			r.fail("group %s after %d of %d messages: %v", groupID, n, want, err)
		case err := <-consumeDone:
			r.fail("group %s: Consume returned after %d of %d messages: %v", groupID, n, want, err)
		case <-deadline:
			r.fail("group %s: %d of %d messages in time", groupID, n, want)
		}
	}
	select {
	case m := <-handler.messages:
		r.fail("group %s: one message more than the %d expected: partition %d offset %d %q", groupID, want, m.Partition, m.Offset, m.Value)
	case <-time.After(quietAfterRead):
	}
	cancel()
	if err := <-consumeDone; err != nil {
		r.fail("group %s: Consume: %v", groupID, err)
	}
	if err := group.Close(); err != nil {
		r.fail("group %s: Close (commits the offsets): %v", groupID, err)
	}
	return got
}

// checkSame compares what a group read with what was produced, by partition and offset.
func (r *run) checkSame(what string, got, want map[int32][]record) {
	for p := int32(0); p < partitions; p++ {
		recs := got[p]
		sort.Slice(recs, func(i, j int) bool { return recs[i].offset < recs[j].offset })
		if len(recs) != len(want[p]) {
			r.fail("%s: partition %d: %d records, want %d", what, p, len(recs), len(want[p]))
		}
		for i := range recs {
			if recs[i].offset != want[p][i].offset || recs[i].value != want[p][i].value || recs[i].key != want[p][i].key {
				r.fail("%s: partition %d: read %+v, want %+v", what, p, recs[i], want[p][i])
			}
		}
	}
}

func count(byPartition map[int32][]record) int {
	n := 0
	for _, recs := range byPartition {
		n += len(recs)
	}
	return n
}
